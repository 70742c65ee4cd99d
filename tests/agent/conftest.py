"""A real master on a loopback port, real agents against it, and a plain-HTTP scheduler."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
import pytest
from support.scheduler import Scheduler

from pymesos_modules import metrics
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.master.cli import FLAGS as MASTER_FLAGS
from pymesos_modules.master.cli import start_master


def master_args(**overrides: Any) -> argparse.Namespace:
    values = {name: default for name, _, default, _ in MASTER_FLAGS}
    values.update(
        port=0,
        allocation_interval=0.05,
        heartbeat_interval=0.5,
        allocator="python/drf",
        agent_reregister_timeout=60.0,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def agent_args(master_url: str, work_dir: str, **overrides: Any) -> argparse.Namespace:
    values = {name: default for name, _, default, _ in agent_cli.FLAGS}
    values.update(
        master=master_url.removeprefix("http://"),
        work_dir=work_dir,
        port=0,
        hostname="agent-host",
        resources="cpus:4;mem:4096;disk:4096;ports:[31000-31009]",
        executor_shutdown_grace_period=3.0,
        registration_backoff_factor=0.1,
        status_update_retry_interval_min=0.5,
        status_update_retry_interval_max=2.0,
        container_watch_interval=0.1,
        allow_insecure_modules=False,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


async def until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll state until ``predicate()`` holds (no timing assertions, just a generous bound)."""

    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


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
