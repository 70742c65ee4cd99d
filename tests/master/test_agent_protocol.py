"""The agent protocol (docs/agent-protocol.md) over loopback with a fake agent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.fake_agent import RESOURCES, FakeAgent
from support.scheduler import Scheduler, launch


@pytest.fixture
async def agent(bare_master, session):
    a = FakeAgent(bare_master.url, session)
    yield a
    await a.disconnect()


async def test_task_runs_on_a_protocol_agent_and_acks_reach_it(bare_master, session, agent):
    await agent.register()
    scheduler = Scheduler(bare_master.url, session)
    try:
        await scheduler.subscribe()
        offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
        assert offer["agent_id"]["value"] == agent.agent_id
        assert offer["hostname"] == "fake"
        assert await scheduler.call(launch(offer, "t1", ports=(31001, 31001))) == 202
        run = await agent.next("RUN_TASK")
        assert run["run_task"]["task"]["task_id"]["value"] == "t1"
        assert run["run_task"]["framework_id"]["value"] == scheduler.framework_id

        assert await agent.update(scheduler.framework_id, "t1", "TASK_RUNNING", "dXVpZDE=") == 202
        update = (await scheduler.next("UPDATE"))["update"]["status"]
        assert update["state"] == "TASK_RUNNING"
        assert update["agent_id"]["value"] == agent.agent_id
        # The agent retries before the ack: the framework sees the same update again.
        assert await agent.update(scheduler.framework_id, "t1", "TASK_RUNNING", "dXVpZDE=") == 202
        again = (await scheduler.next("UPDATE"))["update"]["status"]
        assert again["uuid"] == "dXVpZDE="
        ack = {
            "type": "ACKNOWLEDGE",
            "acknowledge": {
                "agent_id": {"value": agent.agent_id},
                "task_id": {"value": "t1"},
                "uuid": "dXVpZDE=",
            },
        }
        assert await scheduler.call(ack) == 202
        acked = (await agent.next("ACKNOWLEDGED"))["acknowledged"]
        assert acked["uuid"] == "dXVpZDE=" and acked["task_id"]["value"] == "t1"

        kill = {"type": "KILL", "kill": {"task_id": {"value": "t1"}}}
        assert await scheduler.call(kill) == 202
        assert (await agent.next("KILL_TASK"))["kill_task"]["task_id"]["value"] == "t1"
    finally:
        await scheduler.close()


async def test_update_for_unknown_task_is_acked_by_the_master(agent):
    await agent.register()
    assert await agent.update("no-such-framework", "t9", "TASK_FINISHED", "dXVpZDk=") == 202
    acked = (await agent.next("ACKNOWLEDGED"))["acknowledged"]
    assert acked["uuid"] == "dXVpZDk="


async def test_lost_connection_then_reregister_keeps_the_agent(bare_master, agent):
    await agent.register()
    agent_id = agent.agent_id
    await agent.disconnect()
    master = bare_master.master

    async def inactive() -> None:
        while master.agents[agent_id].active:
            await asyncio.sleep(0.01)  # polling master state, not synchronising on time

    await asyncio.wait_for(inactive(), 5)
    await agent.register("REREGISTER")
    assert agent.agent_id == agent_id
    assert master.agents[agent_id].active
    assert list(master.agents) == [agent_id]


BAD_CALLS = [
    ({"type": "REGISTER"}, 400, "register: required"),
    ({"type": "REGISTER", "register": {"hostname": "h"}}, 400, "protocol_version"),
    ({"type": "REGISTER", "register": {"protocol_version": 2, "hostname": "h"}}, 409, "speaks 1"),
    ({"type": "REGISTER", "register": {"protocol_version": 1}}, 400, "hostname"),
    (
        {
            "type": "REGISTER",
            "register": {
                "protocol_version": 1,
                "hostname": "h",
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}],
            },
        },
        400,
        "cpus",
    ),
    (
        {
            "type": "REGISTER",
            "register": {"protocol_version": 1, "hostname": "h", "attributes": [{"name": "x"}]},
        },
        400,
        "attributes[0].type: required",
    ),
    (
        {"type": "REREGISTER", "reregister": {"protocol_version": 1, "hostname": "h"}},
        400,
        "agent_id",
    ),
    (
        {
            "type": "REREGISTER",
            "reregister": {
                "protocol_version": 1,
                "hostname": "h",
                "agent_id": {"value": "a1"},
                "executor_infos": [{"executor_id": {"value": "e"}}],
            },
        },
        400,
        "reregister.executor_infos[0].framework_id: required",
    ),
    (
        {
            "type": "REREGISTER",
            "reregister": {
                "protocol_version": 1,
                "hostname": "h",
                "agent_id": {"value": "a1"},
                "executor_infos": [
                    {"executor_id": {"value": "e"}, "framework_id": {"value": "f"}},
                    {"executor_id": {"value": "e"}, "framework_id": {"value": "f"}},
                ],
            },
        },
        400,
        "executor 'e' of framework 'f' is listed twice",
    ),
    ({"type": "HEARTBEAT", "agent_id": {"value": "nope"}}, 404, "not registered"),
    ({"type": "HEARTBEAT"}, 400, "agent_id"),
    ({"type": "FLY", "agent_id": {"value": "nope"}}, 400, "'FLY' is not one of"),
]


@pytest.mark.parametrize(("call", "status", "text"), BAD_CALLS)
async def test_bad_agent_calls(bare_master, session, call, status, text):
    async with session.post(f"{bare_master.url}/api/v1/agent", json=call) as response:
        assert response.status == status
        assert text in await response.text()
    assert bare_master.master.agents == {}


async def test_bad_calls_of_a_registered_agent_change_nothing(bare_master, agent):
    await agent.register()
    assert (await agent.call({"type": "FLY"}))[0] == 400
    assert (await agent.call({"type": "UPDATE", "update": {}}))[0] == 400
    bad_uuid = {
        "type": "UPDATE",
        "update": {"framework_id": {"value": "f"}, "status": {"task_id": {"value": "t"}}},
    }
    assert (await agent.call(bad_uuid))[0] == 400
    assert (await agent.call({"type": "HEARTBEAT"}))[0] == 202
    async with agent.session.post(
        f"{bare_master.url}/api/v1/agent", data="{", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
    async with agent.session.post(f"{bare_master.url}/api/v1/agent", data="x") as response:
        assert response.status == 415
    # A second REGISTER claiming a connected agent's id is a conflict.
    claim = {
        "type": "REGISTER",
        "register": {"protocol_version": 1, "hostname": "h", "agent_id": {"value": agent.agent_id}},
    }
    async with agent.session.post(f"{bare_master.url}/api/v1/agent", json=claim) as response:
        assert response.status == 409, await response.text()
    assert len(bare_master.master.agents) == 1


async def test_a_restarted_master_adopts_the_tasks_a_reregistering_agent_runs(
    master_factory, session
):
    first = await master_factory(allocator="python/drf", simulated_agents=0)
    agent = FakeAgent(first.url, session)
    await agent.register()
    scheduler = Scheduler(first.url, session)
    await scheduler.subscribe(failover_timeout=3600.0)
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    call = launch(offer, "kept", cpus=3.0, ports=(31000, 31001))
    assert await scheduler.call(call) == 202
    task = (await agent.next("RUN_TASK"))["run_task"]
    framework_id = scheduler.framework_id
    await scheduler.close()
    await agent.disconnect()
    await first.stop()

    second = await master_factory(allocator="python/drf", simulated_agents=0)
    agent.url = second.url
    entry = {
        "framework_id": task["framework_id"],
        "task_info": task["task"],
        "state": "TASK_RUNNING",
    }
    bad = FakeAgent(second.url, session)
    bad.agent_id = "other"
    async with session.post(
        f"{second.url}/api/v1/agent",
        json={"type": "REREGISTER", "reregister": {"protocol_version": 1, "hostname": "h",
              "agent_id": {"value": "other"}, "resources": RESOURCES,
              "tasks": [entry, {"framework_id": {"value": "f"}}]}},
    ) as response:  # fmt: skip
        assert response.status == 400
        assert "reregister.tasks[1].task_info: required" in await response.text()
    assert second.master.agents == {} and second.master.frameworks == {}

    await agent.register("REREGISTER", tasks=[entry])
    adopted = second.master.frameworks[framework_id]
    assert not adopted.connected and set(adopted.tasks) == {"kept"}
    again = Scheduler(second.url, session)
    try:
        await again.subscribe(framework_id=framework_id, failover_timeout=3600.0)
        offer = (await again.next("OFFERS"))["offers"]["offers"][0]
        assert await again.call({"type": "RECONCILE", "reconcile": {"tasks": []}}) == 202
        status = (await again.next("UPDATE"))["update"]["status"]
        assert status["task_id"]["value"] == "kept" and status["state"] == "TASK_RUNNING"
        cpus = sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == "cpus")
        assert cpus == 1.0  # 4 on the agent, 3 held by the adopted task
        ports = next(r for r in offer["resources"] if r["name"] == "ports")["ranges"]["range"]
        assert ports == [{"begin": 31002, "end": 31005}]
        # Finishing the adopted task gives its resources back.
        assert await agent.update(framework_id, "kept", "TASK_FINISHED", "dXVpZC0x") == 202
        status = (await again.next("UPDATE"))["update"]["status"]
        assert status["state"] == "TASK_FINISHED"
    finally:
        await again.close()


async def test_an_agent_that_answers_pings_stays_whatever_the_heartbeat_interval(
    master_factory, session
):
    # Pings come every agent_ping_timeout (as Mesos), not every (here far longer)
    # heartbeat_interval, so an agent that answers them is never taken for lost.
    master = await master_factory(
        allocator="python/drf",
        simulated_agents=0,
        heartbeat_interval=60.0,
        agent_ping_timeout=0.1,
        max_agent_ping_timeouts=3,
    )
    live = FakeAgent(master.url, session)
    await live.register()
    record = master.master.agents[live.agent_id]
    for _ in range(8):  # 8 pings answered: longer than 0.1 s x 3 in all
        await live.next("HEARTBEAT")
        assert (await live.call({"type": "HEARTBEAT"}))[0] == 202
        assert record.active
    await live.disconnect()


async def test_an_agent_that_stops_answering_pings_is_treated_as_lost(master_factory, session):
    master = await master_factory(
        allocator="python/drf",
        simulated_agents=0,
        heartbeat_interval=0.1,
        agent_ping_timeout=0.2,
        max_agent_ping_timeouts=2,
    )
    silent = FakeAgent(master.url, session)
    await silent.register()
    agent = master.master.agents[silent.agent_id]
    deadline = asyncio.get_running_loop().time() + 20
    while agent.active and asyncio.get_running_loop().time() < deadline:
        # A live agent answers every ping; this one only did once.
        await asyncio.sleep(0.05)
    assert not agent.active
    assert silent.agent_id in master.master.agents  # inactive, waiting to re-register
    await silent.disconnect()


def task_entry(framework_id: str, task_id: str, revocable: bool = False) -> dict[str, Any]:
    """A REREGISTER task entry for a task a (previous) master launched."""
    cpus: dict[str, Any] = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}
    if revocable:
        cpus["revocable"] = {}
    info = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "a1"},
        "resources": [cpus],
        "command": {"value": "sleep 600"},
    }
    return {"framework_id": {"value": framework_id}, "task_info": info, "state": "TASK_RUNNING"}


async def test_a_recovered_framework_gets_the_failover_timeout_its_agent_reports(
    bare_master, agent
):
    master = bare_master.master
    agent.agent_id = "a1"
    info = {"id": {"value": "f1"}, "name": "batch", "roles": ["etl"], "failover_timeout": 1.0}
    bad = {**info, "failover_timeout": -1}
    status, text = await agent.call(
        {"type": "REREGISTER", "reregister": {"protocol_version": 1, "hostname": "h",
         "agent_id": {"value": "a1"}, "tasks": [task_entry("f1", "t1")], "frameworks": [bad]}}
    )  # fmt: skip
    assert status == 400 and "reregister.frameworks[0].failover_timeout" in text
    assert master.agents == {} and master.frameworks == {}

    await agent.register("REREGISTER", tasks=[task_entry("f1", "t1")], frameworks=[info])
    recovered = master.frameworks["f1"]
    assert recovered.name == "batch" and recovered.roles == ["etl"]
    assert recovered.tasks["t1"].role == "etl" and not recovered.connected
    # It never comes back: past its failover timeout it is removed and its task killed.
    kill = (await agent.next("KILL_TASK"))["kill_task"]
    assert kill["framework_id"]["value"] == "f1" and kill["task_id"]["value"] == "t1"
    assert "f1" not in master.frameworks


async def test_a_recovered_framework_without_a_timeout_waits_for_teardown(
    bare_master, agent, session
):
    master = bare_master.master
    agent.agent_id = "a1"
    # A revocable task is adopted too, though no oversubscription was reported yet.
    await agent.register("REREGISTER", tasks=[task_entry("f1", "t1", revocable=True)])
    recovered = master.frameworks["f1"]
    assert recovered.removal is None  # no timer: it waits, as Mesos' recovered frameworks
    assert recovered.tasks["t1"].pieces[0][1]  # held as revocable

    url = f"{bare_master.url}/teardown"
    for form, text in [({}, "Missing 'frameworkId'"), ({"frameworkId": "nope"}, "No framework")]:
        async with session.post(url, data=form) as response:
            assert response.status == 400 and text in await response.text()
    async with session.post(url, data={"frameworkId": "f1"}) as response:
        assert response.status == 200
    kill = (await agent.next("KILL_TASK"))["kill_task"]
    assert kill["task_id"]["value"] == "t1"
    assert "f1" not in master.frameworks


async def test_a_known_agent_reregistering_is_reconciled(bare_master, agent, session):
    master = bare_master.master
    await agent.register()
    first, second = Scheduler(bare_master.url, session), Scheduler(bare_master.url, session)
    try:
        await first.subscribe(name="first")
        offer = (await first.next("OFFERS"))["offers"]["offers"][0]
        call = launch(offer, "lost-on-the-way")
        call["accept"]["filters"]["refuse_seconds"] = 3600  # the rest goes to the second
        assert await first.call(call) == 202
        await agent.next("RUN_TASK")
        await second.subscribe(name="second")
        offer = (await second.next("OFFERS"))["offers"]["offers"][0]
        assert await second.call(launch(offer, "orphan")) == 202
        await agent.next("RUN_TASK")

        await agent.disconnect()
        while master.agents[agent.agent_id].active:
            await asyncio.sleep(0.01)  # polling master state, not synchronising on time
        # Torn down while the agent is away: the kill cannot reach it.
        assert await second.call({"type": "TEARDOWN"}) == 202

        # The agent comes back running only "orphan" (it never got the other task).
        await agent.register("REREGISTER", tasks=[task_entry(second.framework_id, "orphan")])
        shutdown = (await agent.next("SHUTDOWN_FRAMEWORK"))["shutdown_framework"]
        assert shutdown["framework_id"]["value"] == second.framework_id
        lost = (await first.next("UPDATE"))["update"]["status"]
        assert lost["task_id"]["value"] == "lost-on-the-way"
        assert lost["state"] == "TASK_LOST" and lost["reason"] == "REASON_RECONCILIATION"
        assert master.agents[agent.agent_id].tasks == {}
    finally:
        await first.close()
        await second.close()


def on_executor(call: dict[str, Any], executor_id: str = "e1") -> dict[str, Any]:
    """The launch ``call`` with its task on a custom executor (0.5 cpus and 32 MB its own)."""
    (task,) = call["accept"]["operations"][0]["launch"]["task_infos"]
    del task["command"]
    task["executor"] = {
        "executor_id": {"value": executor_id},
        "command": {"value": "sleep 600"},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
        ],
    }
    return call


async def test_a_known_agent_reregistering_without_an_executor_frees_what_it_held(
    bare_master, agent, session
):
    """The executor ended while the agent was away (its EXITED_EXECUTOR was lost with the
    connection): the agent no longer lists it, so its resources come back, as Mesos."""
    master = bare_master.master
    await agent.register()
    scheduler = Scheduler(bare_master.url, session)
    try:
        await scheduler.subscribe()
        offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
        assert await scheduler.call(on_executor(launch(offer, "t"))) == 202
        await agent.next("RUN_TASK")
        key = (scheduler.framework_id, agent.agent_id, "e1")
        assert key in master.executors
        await agent.disconnect()
        while master.agents[agent.agent_id].active:
            await asyncio.sleep(0.01)  # polling master state, not synchronising on time

        await agent.register("REREGISTER")
        lost = (await scheduler.next("UPDATE"))["update"]["status"]
        assert lost["task_id"]["value"] == "t" and lost["state"] == "TASK_LOST"
        assert key not in master.executors
        while True:  # the next offer of the agent holds all of it again
            offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
            cpus = [r["scalar"]["value"] for r in offer["resources"] if r["name"] == "cpus"]
            if cpus == [4]:
                break
    finally:
        await scheduler.close()
