"""The agent API trusts nobody it need not: calls only on the agent's own connection, a live
agent's id cannot be claimed, --authenticate_agents, and a dropped stream is noticed at once
(issue 12.5 and 12.10)."""

from __future__ import annotations

import asyncio
import base64

import pytest
from support.fake_agent import FakeAgent
from support.scheduler import Scheduler, launch


def state_of(event):
    return event["update"]["status"]["state"]


def update_call(agent_id: str, framework_id: str, task_id: str, state: str) -> dict:
    return {
        "type": "UPDATE",
        "agent_id": {"value": agent_id},
        "update": {
            "framework_id": {"value": framework_id},
            "status": {"task_id": {"value": task_id}, "state": state, "uuid": "Zm9yZ2Vk"},
        },
    }


async def running_task(master, session, agent: FakeAgent) -> tuple[Scheduler, str]:
    """A framework with one task running on ``agent``."""
    scheduler = Scheduler(master.url, session)
    await scheduler.subscribe()

    def on_agent(event):
        return any(o["agent_id"]["value"] == agent.agent_id for o in event["offers"]["offers"])

    offers = await scheduler.next("OFFERS", where=on_agent)
    offer = next(o for o in offers["offers"]["offers"] if o["agent_id"]["value"] == agent.agent_id)
    assert await scheduler.call(launch(offer, "t1")) == 202
    run = await agent.next("RUN_TASK")
    assert run["run_task"]["task"]["task_id"]["value"] == "t1"
    assert await agent.update(scheduler.framework_id, "t1", "TASK_RUNNING", "dXVpZDE=") == 202
    await scheduler.next("UPDATE", where=lambda e: state_of(e) == "TASK_RUNNING")
    return scheduler, scheduler.framework_id


async def test_an_update_is_taken_only_on_the_agents_own_connection(bare_master, session):
    agent = FakeAgent(bare_master.url, session)
    await agent.register()
    scheduler, framework_id = await running_task(bare_master, session, agent)
    url = f"{bare_master.url}/api/v1/agent"
    forged = update_call(agent.agent_id, framework_id, "t1", "TASK_FINISHED")
    # anonymous: no token, a wrong token
    async with session.post(url, json=forged) as response:
        assert response.status == 400, await response.text()
    async with session.post(url, json=forged, headers={"Mesos-Stream-Id": "guess"}) as response:
        assert response.status == 403, await response.text()
    await scheduler.none_of("UPDATE", within=0.5)
    task = bare_master.master.frameworks[framework_id].tasks["t1"]
    assert str(task.state) == "TASK_RUNNING"
    # the agent itself, on its connection, is heard
    assert await agent.update(framework_id, "t1", "TASK_FINISHED", "dXVpZDI=") == 202
    await scheduler.next("UPDATE", where=lambda e: state_of(e) == "TASK_FINISHED")
    await scheduler.close()
    await agent.disconnect()


async def test_a_second_agent_cannot_claim_a_live_agents_id(bare_master, session):
    agent = FakeAgent(bare_master.url, session)
    await agent.register()
    scheduler, framework_id = await running_task(bare_master, session, agent)
    for kind in ("REGISTER", "REREGISTER"):
        impostor = FakeAgent(bare_master.url, session)
        impostor.agent_id = agent.agent_id
        body = {"protocol_version": 1, "hostname": "evil", "agent_id": {"value": agent.agent_id}}
        async with session.post(
            f"{bare_master.url}/api/v1/agent", json={"type": kind, kind.lower(): body}
        ) as response:
            assert response.status == 409, await response.text()
    master = bare_master.master
    assert master.agents[agent.agent_id].hostname == "fake" and master.agents[agent.agent_id].active
    assert str(master.frameworks[framework_id].tasks["t1"].state) == "TASK_RUNNING"
    await scheduler.none_of("UPDATE", within=0.5)  # no TASK_LOST
    # The agent itself may replace its connection (it shows the connection's token).
    await agent.register("REREGISTER", tasks=[])
    await scheduler.close()
    await agent.disconnect()


@pytest.fixture
def credentials(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("agent-a secret-a\nagent-b secret-b\n")
    return str(path)


def basic(principal: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_authenticate_agents(master_factory, credentials, session):
    running = await master_factory(
        allocator="python/drf",
        simulated_agents=0,
        authenticate_agents=True,
        credentials=credentials,
    )
    url = f"{running.url}/api/v1/agent"
    call = {"type": "REGISTER", "register": {"protocol_version": 1, "hostname": "h"}}
    async with session.post(url, json=call) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="mesos"'
    async with session.post(url, json=call, headers=basic("agent-a", "wrong")) as response:
        assert response.status == 401
    assert running.master.agents == {}
    agent = FakeAgent(running.url, session)
    agent.headers = basic("agent-a", "secret-a")
    await agent.register()
    assert (await agent.call({"type": "HEARTBEAT"}))[0] == 202
    # Another principal may not take the agent's id, even once its connection is gone.
    await agent.disconnect()
    other = FakeAgent(running.url, session)
    other.headers = basic("agent-b", "secret-b")
    body = {"protocol_version": 1, "hostname": "h", "agent_id": {"value": agent.agent_id}}
    async with session.post(
        url, json={"type": "REREGISTER", "reregister": body}, headers=other.headers
    ) as response:
        assert response.status == 403, await response.text()
    agent.stream_id = None
    await agent.register("REREGISTER")  # its own principal may
    await agent.disconnect()


async def test_a_dropped_agent_stream_is_noticed_at_once(master_factory, session):
    # Pings and heartbeats far apart: only the dropped connection can tell the master.
    running = await master_factory(
        allocator="python/drf",
        simulated_agents=0,
        heartbeat_interval=600.0,
        agent_ping_timeout=600.0,
    )
    agent = FakeAgent(running.url, session)
    await agent.register()
    scheduler = Scheduler(running.url, session)
    await scheduler.subscribe()
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    await agent.disconnect()  # the process dies: its socket closes
    rescind = await scheduler.next("RESCIND", timeout=30)
    assert rescind["rescind"]["offer_id"] == offer["id"]
    assert not running.master.agents[agent.agent_id].active
    await scheduler.close()


async def test_an_update_is_taken_only_from_the_agent_that_holds_the_task(bare_master, session):
    holder, other = FakeAgent(bare_master.url, session), FakeAgent(bare_master.url, session)
    await holder.register()
    await other.register()
    scheduler, framework_id = await running_task(bare_master, session, holder)
    # the other agent, on its own connection, reports on the holder's task
    assert await other.update(framework_id, "t1", "TASK_FINISHED", "b3RoZXI=") == 202
    await scheduler.none_of("UPDATE", within=0.5)
    task = bare_master.master.frameworks[framework_id].tasks["t1"]
    assert str(task.state) == "TASK_RUNNING" and task.agent_id == holder.agent_id
    assert await holder.update(framework_id, "t1", "TASK_FINISHED", "aG9sZGVy") == 202
    await scheduler.next("UPDATE", where=lambda e: state_of(e) == "TASK_FINISHED")
    await scheduler.close()
    await holder.disconnect()
    await other.disconnect()


async def test_agent_ids_are_never_handed_out_twice(master_factory, session):
    running = await master_factory(
        allocator="python/drf", simulated_agents=0, agent_reregister_timeout=0.2
    )
    first, second = FakeAgent(running.url, session), FakeAgent(running.url, session)
    await first.register()
    await second.register()
    await first.disconnect()
    for _ in range(100):  # removed after the re-register timeout
        if first.agent_id not in running.master.agents:
            break
        await asyncio.sleep(0.05)
    assert first.agent_id not in running.master.agents
    third = FakeAgent(running.url, session)
    await third.register()  # was handed the second agent's id, and refused with 409
    ids = [first.agent_id, second.agent_id, third.agent_id]
    assert len(set(ids)) == 3, ids
    assert all(i.startswith(running.master.master_id) for i in ids)
    assert sorted(running.master.agents) == sorted([second.agent_id, third.agent_id])
    await second.disconnect()
    await third.disconnect()
