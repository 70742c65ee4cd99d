"""``/state`` is built once per change, shared by concurrent pollers, built in slices that
let the event loop run, and holds exactly what ``Master.state()`` holds (issue 14).

Everything is observed through the master's own calls and counters, never through timing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import pytest

from pymesos_modules.allocators.drf import DRFAllocator
from pymesos_modules.master import views
from pymesos_modules.master.master import CallError, Master, MasterFlags
from pymesos_modules.master.resources import parse_resources
from pymesos_modules.master.simulated import InProcessFramework, SimulatedAgent

EXECUTOR: dict[str, Any] = {
    "executor_id": {"value": "group"},
    "type": "DEFAULT",
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
    ],
}


def task(offer: dict[str, Any], task_id: str, finishes: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.25}}],
        "command": {"shell": True, "value": "true"},
    }
    if finishes:
        info["labels"] = {"labels": [{"key": "pmm.duration", "value": "0"}]}
    return info


def busy_cluster(agents: int = 3) -> tuple[Master, InProcessFramework]:
    """Agents with running, finished and grouped tasks, and outstanding offers."""
    master = Master(DRFAllocator(), MasterFlags(allocation_interval=3600.0))
    for index in range(agents):
        agent = SimulatedAgent(master, call_later=lambda _delay, callback: callback())
        agent.agent_id = master.register_agent(
            agent, f"host{index}", parse_resources("cpus:4;mem:1024;ports:[31000-31009]")
        )
    framework = InProcessFramework(master, {"user": "u", "name": "fw", "roles": ["*"]})
    framework.subscribe()
    master.allocate_pending()
    for index, offer in enumerate(framework.of_type("OFFERS")[-1]["offers"]["offers"]):
        launches = [task(offer, f"t{index}-{k}", finishes=k % 2 == 0) for k in range(4)]
        group = {"executor": EXECUTOR, "task_group": {"tasks": [task(offer, f"g{index}", False)]}}
        framework.call(
            {
                "type": "ACCEPT",
                "accept": {
                    "offer_ids": [offer["id"]],
                    "operations": [
                        {"type": "LAUNCH", "launch": {"task_infos": launches}},
                        {"type": "LAUNCH_GROUP", "launch_group": group},
                    ],
                },
            }
        )
    master.allocate_pending()  # what the tasks left is offered again
    return master, framework


async def view_of(master: Master) -> tuple[bytes, dict[str, Any]]:
    """The served bytes and the dict view of the same state version."""
    body = await master.state_json()
    assert master._state_cache is not None and master._state_cache[1] is body
    return body, master.state()


async def test_the_bytes_hold_exactly_the_dict_view(monkeypatch):
    master, _ = busy_cluster()
    monkeypatch.setattr(views, "PIECE", 2)  # lists split over several pieces
    body, view = await view_of(master)
    framework = view["frameworks"][0]
    # The cluster exercises every part: running, completed and grouped tasks, executors,
    # offers, agents.
    assert len(framework["tasks"]) >= 6 and len(framework["completed_tasks"]) >= 6
    assert framework["executors"] and framework["offers"] and len(view["slaves"]) == 3
    assert {t["executor_id"] for t in framework["tasks"]} == {"", "group"}
    assert json.loads(body) == view


async def test_pollers_share_one_build_until_the_state_changes(monkeypatch):
    master, framework = busy_cluster()
    builds = []
    pieces = master.state_pieces

    def counted():
        builds.append(master.state_version)
        return pieces()

    monkeypatch.setattr(master, "state_pieces", counted)
    bodies = await asyncio.gather(*(master.state_json() for _ in range(20)))
    assert len(builds) == 1 and all(b is bodies[0] for b in bodies)
    assert await master.state_json() is bodies[0]  # nothing changed: the same bytes
    # A call that changes the state (a public master method) is seen by the next poll.
    framework.call({"type": "SUPPRESS", "suppress": {"roles": ["*"]}})
    offer = next(iter(master.offers))
    framework.call({"type": "DECLINE", "decline": {"offer_ids": [{"value": offer}]}})
    body, view = await view_of(master)
    assert len(builds) == 2 and json.loads(body) == view
    assert offer not in {o["id"]["value"] for o in view["frameworks"][0]["offers"]}


async def test_a_poll_during_a_build_of_an_older_state_gets_the_newer_one(monkeypatch):
    master, _ = busy_cluster()
    monkeypatch.setattr(views, "PIECE", 1)
    monkeypatch.setattr(views, "SLICE_SECONDS", 0.0)  # yield after every piece
    first = asyncio.ensure_future(master.state_json())
    for _ in range(5):  # past the point where the build took its list of frameworks
        await asyncio.sleep(0)
    assert master._state_build is not None  # the build is under way
    other = InProcessFramework(master, {"user": "u", "name": "late", "roles": ["*"]})
    late_id = other.subscribe()
    body, view = await view_of(master)
    assert late_id in {f["id"] for f in json.loads(body)["frameworks"]}
    assert json.loads(body) == view
    assert late_id not in {f["id"] for f in json.loads(await first)["frameworks"]}


async def test_a_build_lets_the_event_loop_run_between_pieces(monkeypatch):
    master, _ = busy_cluster(agents=6)
    monkeypatch.setattr(views, "PIECE", 1)
    monkeypatch.setattr(views, "SLICE_SECONDS", 0.0)
    turns = 0
    build = asyncio.ensure_future(master.state_json())
    while not build.done():
        turns += 1
        await asyncio.sleep(0)
    # One turn at least per task and agent piece: the loop was never held for the build.
    view = master.state()
    tasks = sum(len(f["tasks"]) + len(f["completed_tasks"]) for f in view["frameworks"])
    assert turns >= tasks + len(view["slaves"])


def test_every_master_method_but_the_read_only_ones_bumps_the_version():
    for name in views.READ_ONLY:
        assert hasattr(Master, name), f"READ_ONLY names {name}, which the master lacks"
    for name, member in inspect.getmembers(Master, inspect.isfunction):
        changes = getattr(member, "__changes_state__", False)
        if name in views.PRIVATE_CHANGES or not (name.startswith("_") or name in views.READ_ONLY):
            assert changes, name
        else:
            assert not changes, name


def test_a_call_that_fails_still_bumps_the_version():
    master, framework = busy_cluster()
    before = master.state_version
    with pytest.raises(CallError):
        framework.call({"type": "BOGUS"})
    assert master.state_version > before


async def test_an_async_call_bumps_the_version_when_it_starts_and_when_it_ends():
    master, _ = busy_cluster()
    agent_id = next(iter(master.agents))
    master.disconnect_agent(agent_id)
    before = master.state_version
    marking = asyncio.ensure_future(master.mark_unreachable(agent_id))
    await asyncio.sleep(0)  # it awaits the registry
    during = master.state_version
    await marking
    # A view built while it awaited the registry is stale once it is done.
    assert before < during < master.state_version
    assert agent_id in {a["id"] for a in master.state()["unreachable_slaves"]}


async def test_a_changed_task_is_encoded_again_and_the_others_are_reused(monkeypatch):
    master, framework = busy_cluster()
    await master.state_json()
    kept = dict(master._task_fragments)
    running = next(t for f in master.frameworks.values() for t in f.tasks.values())
    framework.call({"type": "KILL", "kill": {"task_id": {"value": running.task_id}}})
    body, view = await view_of(master)
    assert json.loads(body) == view
    (killed,) = [t for t in view["frameworks"][0]["completed_tasks"] if t["id"] == running.task_id]
    assert killed["state"] == "TASK_KILLED"
    key = (running.framework_id, running.task_id)
    assert master._task_fragments[key][4] is not kept[key][4]
    others = [k for k in kept if k != key]
    assert others and all(master._task_fragments[k][4] is kept[k][4] for k in others)


def test_an_idle_allocation_cycle_leaves_the_version_alone():
    master, framework = busy_cluster()
    before = master.state_version
    master._allocate_in_thread(None)  # what the loop runs: everything is offered already
    master._deliver(master._pending_batch)
    master._expire_offers()
    assert master.state_version == before
    offer = next(iter(master.offers))
    framework.call({"type": "DECLINE", "decline": {"offer_ids": [{"value": offer}],
                                                   "filters": {"refuse_seconds": 0}}})  # fmt: skip
    declined = master.state_version
    master._allocate_in_thread(None)  # the declined resources are offered again
    master._deliver(master._pending_batch)
    assert master.state_version > declined
