"""A master on a loopback port with simulated agents, and a plain-HTTP scheduler client."""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import pytest
from support.scheduler import Scheduler

from pymesos_modules.master.cli import FLAGS, start_master

STREAM = "Mesos-Stream-Id"


def master_args(**overrides: Any) -> argparse.Namespace:
    values = {name: default for name, _, default, _ in FLAGS}
    values.update(
        port=0,
        allocation_interval=0.05,
        heartbeat_interval=0.3,
        simulated_agents=2,
        simulated_agent_resources="cpus:4;mem:4096;ports:[31000-31010]",
    )
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.fixture(params=["native/drf", "python/drf"])
async def master(request):
    running = await start_master(master_args(allocator=request.param))
    yield running
    await running.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def scheduler(master, session):
    s = Scheduler(master.url, session)
    yield s
    await s.close()


@pytest.fixture
async def bare_master():
    """A master without simulated agents (agents come over the agent protocol)."""
    running = await start_master(
        master_args(allocator="python/drf", simulated_agents=0, agent_reregister_timeout=60.0)
    )
    yield running
    await running.stop()


@pytest.fixture
async def master_factory():
    """``await master_factory(**flags)`` starts a master with those flags; all are stopped after."""
    started = []

    async def make(**overrides: Any):
        running = await start_master(master_args(**overrides))
        started.append(running)
        return running

    yield make
    for running in started:
        await running.stop()
