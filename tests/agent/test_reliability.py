"""Updates survive a framework that does not acknowledge and a master that goes away."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from aiohttp import web
from support.agent_tasks import (
    ack,
    agent_args,
    follow,
    launch,
    master_args,
    task_info,
    until,
)
from support.scheduler import Scheduler

from pymesos_modules import metrics
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.agent.registration import complete_records
from pymesos_modules.http.server import AGENTS
from pymesos_modules.jsonio import record as recordio
from pymesos_modules.master.cli import start_master


async def test_unacknowledged_update_is_resent_and_later_ones_wait(agent, scheduler):
    await launch(scheduler, lambda o: task_info(o, "quick", "true"))
    first = await follow(scheduler, "quick", until="TASK_STARTING", acknowledge=False)
    again = await follow(scheduler, "quick", until="TASK_STARTING", acknowledge=False)
    # Same update (same uuid) resent; RUNNING and FINISHED wait behind it.
    assert [s["state"] for s in first + again] == ["TASK_STARTING", "TASK_STARTING"]
    assert first[0]["uuid"] == again[0]["uuid"]
    a = agent.agent
    await until(lambda: a.find(scheduler.framework_id, "quick").finished.is_set())
    assert a.updates.pending(scheduler.framework_id, "quick") == 3
    assert a.updates.retries >= 1
    await ack(scheduler, first[0])
    rest = await follow(scheduler, "quick")
    assert [s["state"] for s in rest] == ["TASK_RUNNING", "TASK_FINISHED"]
    await until(lambda: a.find(scheduler.framework_id, "quick") is None, what="forgetting the task")
    assert [c.task_id for c in a.completed] == ["quick"]


async def test_agent_keeps_tasks_and_updates_while_the_master_is_away(agent_factory, session):
    master = await start_master(master_args())
    running = await agent_factory(master.url)
    a = running.agent
    port = int(master.url.rsplit(":", 1)[1])
    scheduler = Scheduler(master.url, session)
    await scheduler.subscribe(failover_timeout=600)
    framework_id = scheduler.framework_id
    await launch(
        scheduler, lambda o: task_info(o, "long", "while [ ! -e go ]; do sleep 0.05; done")
    )
    await follow(scheduler, "long", until="TASK_RUNNING")
    container = a.find(framework_id, "long")
    agent_id = a.agent_id

    await scheduler.close()
    await master.stop()
    await until(lambda: not a.registered, what="the agent to notice the master is gone")
    (container.sandbox / "go").touch()
    await until(lambda: container.finished.is_set(), what="the task to finish")
    held = a.updates.unacknowledged(framework_id, "long")
    assert [s["state"] for s in held] == ["TASK_FINISHED"]

    restarted = await start_master(master_args(port=port))
    again = Scheduler(restarted.url, session)
    try:
        await until(lambda: a.registered, what="re-registration with the new master")
        assert a.agent_id == agent_id
        assert agent_id in restarted.master.agents
        # The framework comes back under its id and gets the update held meanwhile: none lost.
        await again.subscribe(failover_timeout=600, framework_id=framework_id)
        (finished,) = await follow(again, "long")
        assert finished["state"] == "TASK_FINISHED"
        assert finished["uuid"] == held[0]["uuid"]
        await until(lambda: a.find(framework_id, "long") is None, what="the acked task forgotten")
        assert a.updates.pending() == 0
    finally:
        await again.close()
        await restarted.stop()


async def test_a_silent_master_is_left_and_its_updates_resent_after_reregistering(tmp_path):
    """A master that stops sending (no HEARTBEAT for 3 intervals) counts as gone; the
    agent re-registers with the task it runs and resends the same unacknowledged update."""
    calls: list[dict] = []
    task = {
        "name": "t",
        "task_id": {"value": "t"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
        "command": {"value": "sleep 600"},
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        call = await request.json()
        calls.append(call)
        if call["type"] not in ("REGISTER", "REREGISTER"):
            return web.Response(status=202)  # never acknowledged
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        registered = {
            "type": "REGISTERED",
            "registered": {
                "agent_id": {"value": "silent-S0"},
                "master_id": "silent",
                "protocol_version": 1,
                "heartbeat_interval_seconds": 0.2,
            },
        }
        await response.write(recordio(registered))
        if call["type"] == "REGISTER":
            run = {"framework_id": {"value": "fw"}, "framework_info": {}, "task": task}
            await response.write(recordio({"type": "RUN_TASK", "run_task": run}))
        await asyncio.sleep(3600)  # and never a heartbeat
        return response

    app = web.Application()
    app.router.add_post("/api/v1/agent", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"127.0.0.1:{runner.addresses[0][1]}"
    agent = await agent_cli.start_agent(
        agent_args(url, str(tmp_path / "a"), status_update_retry_interval_min=600.0),
        registry=metrics.MetricsRegistry(),
    )
    try:
        kinds = lambda: [c["type"] for c in calls]  # noqa: E731
        await until(lambda: kinds().count("REREGISTER") >= 2, what="re-registrations")
        assert kinds()[0] == "REGISTER"
        latest = tmp_path / "a" / "meta" / "slaves" / "latest"
        assert os.readlink(latest) == "silent-S0"
        assert json.loads((latest / "slave.info").read_text())["id"] == {"value": "silent-S0"}
        assert reregister_frameworks(calls) == [[{"id": {"value": "fw"}}]]
        reregister = next(c for c in calls if c["type"] == "REREGISTER")["reregister"]
        assert reregister["agent_id"] == {"value": "silent-S0"}
        (listed,) = reregister["tasks"]
        assert listed["framework_id"] == {"value": "fw"}
        assert listed["task_info"]["task_id"] == {"value": "t"}
        assert listed["state"] in ("TASK_STARTING", "TASK_RUNNING")
        # The retry interval is 10 minutes: every resend here follows a re-registration,
        # and it is the same STARTING update (RUNNING waits behind it).
        updates = [c["update"]["status"] for c in calls if c["type"] == "UPDATE"]
        assert len(updates) >= 2
        assert {u["state"] for u in updates} == {"TASK_STARTING"}
        assert len({u["uuid"] for u in updates}) == 1
        assert agent.agent.find("fw", "t").running  # the task kept running throughout
    finally:
        await agent.stop()
        await runner.cleanup()


async def test_restarted_agent_keeps_its_id(master, agent_factory, tmp_path):
    first = await agent_factory(work_dir=tmp_path / "same")
    agent_id = first.agent.agent_id
    await first.stop()
    second = await agent_factory(work_dir=tmp_path / "same")
    assert second.agent.agent_id == agent_id
    assert list(master.master.agents) == [agent_id]
    assert master.master.agents[agent_id].active


async def test_a_registration_the_master_refuses_stops_the_agent(master, tmp_path):
    # The master's agent API takes TEXT and SCALAR attributes only (docs/agent.md).
    running = await agent_cli.start_agent(
        agent_args(master.url, str(tmp_path), attributes="ids:[1-3]"),
        registry=metrics.MetricsRegistry(),
    )
    try:
        await until(running.agent.failed.is_set, what="the refusal")
        assert "refused REGISTER (400)" in running.agent.failure
        assert "register.attributes[0].type" in running.agent.failure
    finally:
        await running.stop()


async def test_a_live_agent_answers_pings_and_stays_connected(agent_factory):
    master = await start_master(
        master_args(heartbeat_interval=0.05, agent_ping_timeout=0.1, max_agent_ping_timeouts=3)
    )
    try:
        running = await agent_factory(master.url)
        registered = master.master.agents[running.agent.agent_id]
        last_seen = master.runner.app[AGENTS].last_seen
        pongs = 0
        for _ in range(600):  # 20 pings answered: far past the 0.3 s a silent agent gets
            seen = last_seen[running.agent.agent_id]
            await asyncio.sleep(0.05)
            pongs += last_seen[running.agent.agent_id] != seen
            assert registered.active
            if pongs >= 20:
                break
        assert pongs >= 20
    finally:
        await master.stop()


def reregister_frameworks(calls: list[dict]) -> list[list[dict]]:
    """The FrameworkInfo lists the REREGISTER calls carried."""
    return [c["reregister"]["frameworks"] for c in calls if c["type"] == "REREGISTER"][:1]


def test_reregister_task_entries_carry_the_role_the_task_was_offered_in(tmp_path):
    from pymesos_modules.agent.records import Container
    from pymesos_modules.agent.registration import task_entry

    cpus = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}
    info = {"task_id": {"value": "t"}, "resources": [{**cpus, "allocation_info": {"role": "web"}}]}
    container = Container("fw", "t", "c", info, {}, tmp_path, {"cpus": 1.0}, [], False)
    entry = task_entry(container)
    assert entry == {
        "framework_id": {"value": "fw"},
        "task_info": info,
        "state": "TASK_STAGING",
        "role": "web",
    }
    container.info = {"task_id": {"value": "t"}, "resources": [cpus]}
    assert "role" not in task_entry(container)


def test_the_masters_stream_may_cut_records_anywhere():
    stream = b"".join(b"%d\n%b" % (len(d), d) for d in (b'{"a":1}', b"\n[2]", b'"three"'))
    for cut in range(len(stream) + 1):
        pending, seen = bytearray(), []
        for part in (stream[:cut], stream[cut:]):
            pending += part
            seen += complete_records(pending)
        assert seen == [b'{"a":1}', b"\n[2]", b'"three"'] and not pending, cut
    with pytest.raises(ValueError, match="bad RecordIO length b'x'"):
        complete_records(bytearray(b"x\n{}"))
