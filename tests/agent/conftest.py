"""A real master on a loopback port, real agents against it, and a plain-HTTP scheduler."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from support.agent_tasks import agent_args, master_args, until
from support.scheduler import Scheduler
from support.served_files import served_files

from pymesos_modules import metrics
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.master.cli import start_master


@pytest.fixture
async def master():
    running = await start_master(master_args())
    yield running
    await running.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def agent_factory(master, tmp_path):
    """``await agent_factory(**flags)`` starts an agent against ``master``; stopped after."""
    started = []

    async def make(master_url: str | None = None, work_dir=None, **overrides: Any):
        args = agent_args(
            master_url or master.url,
            str(work_dir or tmp_path / f"agent{len(started)}"),
            **overrides,
        )
        running = await agent_cli.start_agent(args, registry=metrics.MetricsRegistry())
        started.append(running)
        await until(lambda: running.agent.registered, what="agent registration")
        return running

    yield make
    for running in started:
        await running.stop()


@pytest.fixture
async def agent(agent_factory):
    return await agent_factory()


@pytest.fixture
async def scheduler(master, session):
    s = Scheduler(master.url, session)
    await s.subscribe()
    yield s
    await s.close()


@pytest.fixture
async def files():
    """(content, served, base URL) of a loopback HTTP file server (support/served_files.py)."""
    async with served_files() as served:
        yield served
