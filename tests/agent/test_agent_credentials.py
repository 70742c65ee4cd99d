"""A real agent against a master with --authenticate_agents (issue 12.5): with its
--credential it registers and its calls are heard; without, it stops with the refusal."""

from __future__ import annotations

import pytest
from support.agent_tasks import agent_args, follow, launch, master_args, task_info, until
from support.scheduler import Scheduler

from pymesos_modules import metrics
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.master.cli import start_master


@pytest.fixture
async def secured(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("agent-1 s3cret\n")
    running = await start_master(
        master_args(authenticate_agents=True, credentials=str(credentials))
    )
    yield running
    await running.stop()


async def test_an_agent_with_its_credential_registers_and_is_heard(secured, tmp_path, session):
    credential = tmp_path / "credential"
    credential.write_text('{"credentials": [{"principal": "agent-1", "secret": "s3cret"}]}')
    running = await agent_cli.start_agent(
        agent_args(secured.url, str(tmp_path / "work"), credential=str(credential)),
        registry=metrics.MetricsRegistry(),
    )
    scheduler = Scheduler(secured.url, session)
    try:
        await until(lambda: running.agent.registered, what="agent registration")
        await scheduler.subscribe()
        await launch(scheduler, lambda o: task_info(o, "t", "true"))
        states = [s["state"] for s in await follow(scheduler, "t")]
        assert states[-1] == "TASK_FINISHED"
        async with session.get(f"{running.url}/flags") as response:
            flags = (await response.json())["flags"]
        assert flags["credential"] == str(credential) and "s3cret" not in str(flags)
    finally:
        await scheduler.close()
        await running.stop()


async def test_an_agent_without_credentials_stops_with_the_refusal(secured, tmp_path):
    running = await agent_cli.start_agent(
        agent_args(secured.url, str(tmp_path / "work")), registry=metrics.MetricsRegistry()
    )
    try:
        await until(running.agent.failed.is_set, what="the refusal")
        assert "refused REGISTER (401)" in running.agent.failure
        assert secured.master.agents == {}
    finally:
        await running.stop()


def test_a_credential_file_must_hold_one_principal(tmp_path):
    credential = tmp_path / "credential"
    credential.write_text("a x\nb y\n")
    args = agent_args("127.0.0.1:1", str(tmp_path / "work"), credential=str(credential))
    with pytest.raises(ValueError, match="exactly one principal"):
        agent_cli.agent_flags(args)
