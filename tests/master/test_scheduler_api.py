"""End to end over loopback: a plain-HTTP scheduler against the master's v1 API."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from support.scheduler import Scheduler, launch


def state_of(event):
    return event["update"]["status"]["state"]


async def get_json(session, url):
    async with session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_subscribe_offer_launch_update_acknowledge(master, scheduler, session):
    subscribed = await scheduler.subscribe()
    assert subscribed["subscribed"]["heartbeat_interval_seconds"] == 0.3
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    names = {r["name"] for r in offer["resources"]}
    assert names == {"cpus", "mem", "ports"}
    assert offer["hostname"].startswith("simulated-")
    assert await scheduler.call(launch(offer, "t1", duration=0.05, ports=(31000, 31001))) == 202
    states = []
    for _ in range(3):
        update = await scheduler.next("UPDATE")
        states.append(state_of(update))
        status = update["update"]["status"]
        ack = {"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": status["agent_id"],
               "task_id": status["task_id"], "uuid": status["uuid"]}}  # fmt: skip
        assert await scheduler.call(ack) == 202
    assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    metrics = await get_json(session, f"{master.url}/metrics/snapshot")
    assert metrics["master/tasks_finished"] == 1.0
    assert metrics["master/frameworks_active"] == 1.0
    assert metrics["allocator/mesos/allocation_runs"] >= 1
    await scheduler.next("HEARTBEAT", timeout=2)


async def test_decline_with_filter_then_revive(master, scheduler):
    await scheduler.subscribe()
    offers = []
    while len({o["agent_id"]["value"] for o in offers}) < 2:
        offers += (await scheduler.next("OFFERS"))["offers"]["offers"]
    decline = {"type": "DECLINE", "decline": {"offer_ids": [o["id"] for o in offers],
                                              "filters": {"refuse_seconds": 3600}}}  # fmt: skip
    assert await scheduler.call(decline) == 202
    await scheduler.none_of("OFFERS", within=0.5)
    assert await scheduler.call({"type": "REVIVE", "revive": {"roles": ["*"]}}) == 202
    await scheduler.next("OFFERS", timeout=2)


async def test_suppress_stops_offers_and_revive_resumes(master, scheduler):
    await scheduler.subscribe()
    # Suppress once offers came: a SUPPRESS racing the subscription's first cycle
    # may win it, and then no offer ever comes to decline.
    offers = (await scheduler.next("OFFERS"))["offers"]["offers"]
    assert await scheduler.call({"type": "SUPPRESS", "suppress": {}}) == 202
    decline = {"type": "DECLINE", "decline": {"offer_ids": [o["id"] for o in offers],
                                              "filters": {"refuse_seconds": 0}}}  # fmt: skip
    await scheduler.call(decline)
    # drain offers made before the suppression took effect
    await asyncio.sleep(0)
    while not scheduler.events.empty():
        scheduler.events.get_nowait()
    await scheduler.none_of("OFFERS", within=0.4)
    assert await scheduler.call({"type": "REVIVE", "revive": {}}) == 202
    await scheduler.next("OFFERS", timeout=2)


async def test_kill_and_reconcile(master, scheduler):
    await scheduler.subscribe()
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    await scheduler.call(launch(offer, "long"))
    await scheduler.next("UPDATE", where=lambda e: state_of(e) == "TASK_RUNNING")
    assert await scheduler.call({"type": "RECONCILE", "reconcile": {"tasks": []}}) == 202
    implicit = await scheduler.next(
        "UPDATE", where=lambda e: e["update"]["status"].get("reason") == "REASON_RECONCILIATION"
    )
    assert state_of(implicit) == "TASK_RUNNING"
    explicit = {"type": "RECONCILE", "reconcile": {"tasks": [{"task_id": {"value": "ghost"}}]}}
    assert await scheduler.call(explicit) == 202
    ghost = await scheduler.next(
        "UPDATE", where=lambda e: e["update"]["status"]["task_id"]["value"] == "ghost"
    )
    assert state_of(ghost) == "TASK_LOST"
    kill = {"type": "KILL", "kill": {"task_id": {"value": "long"}, "agent_id": offer["agent_id"]}}
    assert await scheduler.call(kill) == 202
    killed = await scheduler.next("UPDATE", where=lambda e: state_of(e) == "TASK_KILLED")
    assert killed["update"]["status"]["task_id"]["value"] == "long"


async def test_invalid_launches_become_task_updates(master, scheduler):
    await scheduler.subscribe()
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    too_big = launch(offer, "big", cpus=1000)
    assert await scheduler.call(too_big) == 202
    error = await scheduler.next("UPDATE")
    assert state_of(error) == "TASK_ERROR"
    assert error["update"]["status"]["reason"] == "REASON_TASK_INVALID"
    assert "more resources" in error["update"]["status"]["message"]
    # the offer is gone now: using it again drops the task
    assert await scheduler.call(launch(offer, "late")) == 202
    dropped = await scheduler.next("UPDATE")
    assert state_of(dropped) == "TASK_DROPPED"
    assert dropped["update"]["status"]["reason"] == "REASON_INVALID_OFFERS"


async def test_failover_within_timeout_keeps_the_framework(master, session):
    first = Scheduler(master.url, session)
    await first.subscribe(failover_timeout=30)
    offer = (await first.next("OFFERS"))["offers"]["offers"][0]
    await first.call(launch(offer, "survivor"))
    await first.next("UPDATE", where=lambda e: state_of(e) == "TASK_RUNNING")
    framework_id = first.framework_id
    await first.close()

    async def disconnected():
        while True:
            state = await get_json(session, f"{master.url}/state")
            [fw] = state["frameworks"]
            if not fw["connected"]:
                return fw
            await asyncio.sleep(0.02)

    fw = await asyncio.wait_for(disconnected(), 5)
    assert [t["id"] for t in fw["tasks"]] == ["survivor"]
    second = Scheduler(master.url, session)
    await second.subscribe(failover_timeout=30, framework_id=framework_id)
    assert second.framework_id == framework_id
    state = await get_json(session, f"{master.url}/state")
    assert [t["id"] for t in state["frameworks"][0]["tasks"]] == ["survivor"]
    await second.close()


async def test_framework_is_removed_after_its_failover_timeout(master, session):
    s = Scheduler(master.url, session)
    await s.subscribe(failover_timeout=0.2)
    await s.close()

    async def removed():
        while (await get_json(session, f"{master.url}/state"))["frameworks"]:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(removed(), 5)
    # the old id cannot come back
    again = Scheduler(master.url, session)
    call = {"type": "SUBSCRIBE", "framework_id": {"value": s.framework_id}, "subscribe": {
        "framework_info": {"user": "u", "name": "x", "roles": ["*"]}}}  # fmt: skip
    async with session.post(f"{master.url}/api/v1/scheduler", json=call) as response:
        assert response.status == 403
    await again.close()


async def test_bad_requests_get_mesos_statuses_and_change_nothing(master, scheduler, session):
    await scheduler.subscribe()
    before = await get_json(session, f"{master.url}/state")
    url = f"{master.url}/api/v1/scheduler"
    cases = [
        ({"data": "{}", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"data": json.dumps({"type": "EXPLODE", "framework_id": {"value": scheduler.framework_id}}),
          "headers": {"Content-Type": "application/json", "Mesos-Stream-Id": scheduler.stream_id}}, 400),
        ({"data": json.dumps({"type": "REVIVE", "framework_id": {"value": scheduler.framework_id}}),
          "headers": {"Content-Type": "application/json"}}, 400),
        ({"data": json.dumps({"type": "REVIVE", "framework_id": {"value": scheduler.framework_id}}),
          "headers": {"Content-Type": "application/json", "Mesos-Stream-Id": "wrong"}}, 400),
        ({"data": json.dumps({"type": "REVIVE", "framework_id": {"value": "someone-else"}}),
          "headers": {"Content-Type": "application/json", "Mesos-Stream-Id": scheduler.stream_id}}, 403),
        ({"data": json.dumps({"type": "DECLINE", "framework_id": {"value": scheduler.framework_id},
                              "decline": {"offer_ids": [{"value": "x"}], "filters": {"refuse_seconds": -1}}}),
          "headers": {"Content-Type": "application/json", "Mesos-Stream-Id": scheduler.stream_id}}, 400),
        ({"data": json.dumps({"type": "SUBSCRIBE", "subscribe": {}}),
          "headers": {"Content-Type": "application/json"}}, 400),
        ({"data": "x" * (5 * 1024 * 1024), "headers": {"Content-Type": "application/json"}}, 400),
    ]  # fmt: skip
    for kwargs, status in cases:
        async with session.post(url, **kwargs) as response:
            assert response.status == status, (kwargs.get("data", "")[:80], await response.text())
    after = await get_json(session, f"{master.url}/state")
    assert [f["id"] for f in after["frameworks"]] == [f["id"] for f in before["frameworks"]]
    assert [a["id"] for a in after["slaves"]] == [a["id"] for a in before["slaves"]]


async def test_operator_endpoints(master, session):
    version = await get_json(session, f"{master.url}/version")
    assert "version" in version
    flags = await get_json(session, f"{master.url}/flags")
    assert flags["flags"]["allocation_interval"] == "0.05"
    modules = await get_json(session, f"{master.url}/modules")
    allocator = [m["name"] for m in modules["modules"]]
    assert allocator in ([], ["org_pymesos_DRFAllocator"])
    async with session.get(f"{master.url}/health") as response:
        assert response.status == 200
    async with session.get(f"{master.url}/metrics") as response:
        text = await response.text()
    assert "mesos_master_slaves_active 2.0" in text
    state = await get_json(session, f"{master.url}/state")
    assert len(state["slaves"]) == 2 and state["slaves"][0]["resources"]["cpus"] == 4.0


async def test_client_disconnect_mid_stream_is_harmless(master, session):
    s = Scheduler(master.url, session)
    await s.subscribe()
    await s.close()
    other = Scheduler(master.url, session)
    await other.subscribe()
    await other.next("OFFERS", timeout=3)
    await other.close()


__all__ = ["aiohttp"]
