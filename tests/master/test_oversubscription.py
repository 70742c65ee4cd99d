"""UPDATE_OVERSUBSCRIBED end to end: revocable resources from an agent to the right frameworks."""

from __future__ import annotations

from typing import Any

import pytest
from support.fake_agent import FakeAgent
from support.scheduler import REVOCABLE, Scheduler


def cpus(offer: dict[str, Any], revocable: bool) -> float:
    """The cpus of an offer that are (or are not) marked revocable."""
    return sum(
        r["scalar"]["value"]
        for r in offer["resources"]
        if r["name"] == "cpus" and ("revocable" in r) == revocable
    )


def offers(event: dict[str, Any]) -> list[dict[str, Any]]:
    return event["offers"]["offers"]


def any_revocable(event: dict[str, Any]) -> bool:
    return any("revocable" in r for o in offers(event) for r in o["resources"])


async def oversubscribe(agent: FakeAgent, amount: float) -> int:
    """Report ``amount`` revocable cpus (0: withdraw them) as the agent's estimator would."""
    items = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": amount}}] if amount else []
    status, text = await agent.call(
        {"type": "UPDATE_OVERSUBSCRIBED", "update_oversubscribed": {"resources": items}}
    )
    assert status == 202, text
    return status


def revocable_task(offer: dict[str, Any], task_id: str, amount: float) -> dict[str, Any]:
    resources = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": amount}, "revocable": {}},
    ]
    info = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": resources,
        "command": {"value": "sleep 60"},
    }
    return {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [info]}}],
            "filters": {"refuse_seconds": 0},
        },
    }


@pytest.fixture(params=["native/drf", "python/drf"])
async def cluster(request, master_factory, session):
    running = await master_factory(allocator=request.param, simulated_agents=0)
    agent = FakeAgent(running.url, session)
    await agent.register()
    yield running, agent
    await agent.disconnect()


async def test_revocable_resources_reach_only_revocable_frameworks_and_are_withdrawn(
    cluster, session
):
    master, agent = cluster
    await oversubscribe(agent, 2)
    plain, revocable = Scheduler(master.url, session), Scheduler(master.url, session)
    try:
        # The framework without the capability is offered the regular cpus only,
        # though 2 revocable ones are free, again after it declines.
        await plain.subscribe(name="plain")
        first = offers(await plain.next("OFFERS"))[0]
        assert cpus(first, revocable=False) == 4 and cpus(first, revocable=True) == 0
        decline = {"type": "DECLINE", "decline": {"offer_ids": [first["id"]]}}
        decline["decline"]["filters"] = {"refuse_seconds": 0}
        assert await plain.call(decline) == 202
        held = offers(await plain.next("OFFERS"))[0]  # held from now on
        assert cpus(held, revocable=False) == 4

        await revocable.subscribe(name="revocable", capabilities=REVOCABLE)
        (offer,) = offers(await revocable.next("OFFERS"))
        assert all(r["revocable"] == {} for r in offer["resources"])
        assert cpus(offer, revocable=True) == 2

        # A revocable task takes 1 of them; the other comes back in a new offer.
        assert await revocable.call(revocable_task(offer, "spare", 1.0)) == 202
        run = (await agent.next("RUN_TASK"))["run_task"]["task"]
        assert run["resources"][0]["revocable"] == {}
        again = offers(await revocable.next("OFFERS", where=any_revocable))[0]
        assert cpus(again, revocable=True) == 1

        # Withdrawing them rescinds the outstanding revocable offer; the running
        # task keeps what it holds, and nothing revocable is free any more.
        await oversubscribe(agent, 0)
        rescind = await revocable.next("RESCIND")
        assert rescind["rescind"]["offer_id"] == again["id"]
        assert again["id"]["value"] not in master.master.offers
        assert "spare" in master.master.agents[agent.agent_id].tasks

        # A new report is offered afresh: 2 minus the 1 the task holds.
        await oversubscribe(agent, 2)
        fresh = offers(await revocable.next("OFFERS", where=any_revocable))[0]
        assert cpus(fresh, revocable=True) == 1
        assert held["id"]["value"] in master.master.offers  # regular offers are not rescinded
    finally:
        seen_by_plain = []
        while not plain.events.empty():
            seen_by_plain.append(plain.events.get_nowait())
        await plain.close()
        await revocable.close()
    assert not any(any_revocable(e) for e in seen_by_plain if e["type"] == "OFFERS")


async def test_revocable_and_regular_resources_are_matched_by_kind(cluster, session):
    master, agent = cluster
    await oversubscribe(agent, 2)
    framework = Scheduler(master.url, session)
    try:
        await framework.subscribe(capabilities=REVOCABLE)

        def both(event: dict[str, Any]) -> bool:
            return any(cpus(o, True) == 2 and cpus(o, False) == 4 for o in offers(event))

        offer = offers(await framework.next("OFFERS", where=both))[0]
        # Regular cpus never come from revocable ones: 5 do not fit in 4 + 2 revocable.
        regular = revocable_task(offer, "big", 5.0)
        del regular["accept"]["operations"][0]["launch"]["task_infos"][0]["resources"][0][
            "revocable"
        ]
        assert await framework.call(regular) == 202
        error = (await framework.next("UPDATE"))["update"]["status"]
        assert error["state"] == "TASK_ERROR" and "more resources than" in error["message"]
        offer = offers(await framework.next("OFFERS", where=both))[0]
        # A task may not mix revocable and regular cpus.
        mixed = revocable_task(offer, "mixed", 1.0)
        infos = mixed["accept"]["operations"][0]["launch"]["task_infos"]
        infos[0]["resources"].append({"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}})
        assert await framework.call(mixed) == 202
        error = (await framework.next("UPDATE"))["update"]["status"]
        assert error["state"] == "TASK_ERROR"
        assert "mixes revocable and non-revocable cpus" in error["message"]
        # Revocable cpus never come from regular ones: 3 do not fit in 2 revocable.
        offer = offers(await framework.next("OFFERS", where=both))[0]
        assert await framework.call(revocable_task(offer, "greedy", 3.0)) == 202
        error = (await framework.next("UPDATE"))["update"]["status"]
        assert error["state"] == "TASK_ERROR" and "more resources than" in error["message"]
        assert "greedy" not in master.master.frameworks[framework.framework_id].tasks
        # A fitting one takes revocable cpus only: all 4 regular ones are offered again.
        offer = offers(await framework.next("OFFERS", where=both))[0]
        assert await framework.call(revocable_task(offer, "fits", 2.0)) == 202
        await agent.next("RUN_TASK")
        task = master.master.frameworks[framework.framework_id].tasks["fits"]
        assert all(revocable for _, revocable, _ in task.pieces)
        back = offers(await framework.next("OFFERS", where=lambda e: bool(offers(e))))[0]
        assert cpus(back, revocable=False) == 4 and cpus(back, revocable=True) == 0
    finally:
        await framework.close()


async def test_bad_oversubscription_reports_change_nothing(cluster, session):
    master, agent = cluster
    for body, text in [
        ({"type": "UPDATE_OVERSUBSCRIBED"}, "update_oversubscribed: required"),
        (
            {
                "type": "UPDATE_OVERSUBSCRIBED",
                "update_oversubscribed": {
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]
                },
            },
            "cpus must be finite and >= 0",
        ),
    ]:
        status, answer = await agent.call(body)
        assert status == 400 and text in answer
    framework = Scheduler(master.url, session)
    try:  # no revocable pool came of them
        await framework.subscribe(capabilities=REVOCABLE)
        offer = offers(await framework.next("OFFERS"))[0]
        assert cpus(offer, revocable=False) == 4 and cpus(offer, revocable=True) == 0
    finally:
        await framework.close()
