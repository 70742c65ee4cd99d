"""LAUNCH_GROUP as Mesos: one executor per group, all or nothing, one update per task."""

from __future__ import annotations

import asyncio
from typing import Any

from support.scheduler import Scheduler, launch

EXECUTOR: dict[str, Any] = {
    "executor_id": {"value": "group"},
    "type": "DEFAULT",
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
    ],
}


def group_call(offer: dict[str, Any], *tasks: dict[str, Any], executor: Any = EXECUTOR) -> dict:
    """One LAUNCH_GROUP with the tasks of single-task LAUNCH calls built by launch()."""
    infos = [t["accept"]["operations"][0]["launch"]["task_infos"][0] for t in tasks]
    body: dict[str, Any] = {"task_group": {"tasks": infos}}
    if executor is not None:
        body["executor"] = executor
    return {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH_GROUP", "launch_group": body}],
            "filters": {"refuse_seconds": 0},
        },
    }


def cpus_on(event: dict[str, Any], agent_id: dict[str, str]) -> float:
    return sum(
        r["scalar"]["value"]
        for o in event["offers"]["offers"]
        if o["agent_id"] == agent_id
        for r in o["resources"]
        if r["name"] == "cpus"
    )


def state_of(event: dict[str, Any]) -> str:
    return event["update"]["status"]["state"]


async def group_errors(scheduler: Scheduler, count: int) -> list[dict[str, Any]]:
    errors = [(await scheduler.next("UPDATE"))["update"]["status"] for _ in range(count)]
    for error in errors:
        assert error["state"] == "TASK_ERROR"
        assert error["source"] == "SOURCE_MASTER"
    return errors


async def test_a_task_group_launches_all_or_nothing(master, scheduler):
    await scheduler.subscribe()
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]
    bad = group_call(offer, launch(offer, "g1"), launch(offer, "g2", cpus=1000))
    assert await scheduler.call(bad) == 202
    errors = await group_errors(scheduler, 2)
    assert {e["task_id"]["value"] for e in errors} == {"g1", "g2"}
    for error in errors:
        assert error["reason"] == "REASON_TASK_GROUP_INVALID"
        assert "Task group is invalid" in error["message"] and "'g2'" in error["message"]
    framework = master.master.frameworks[scheduler.framework_id]
    assert framework.tasks == {} and master.master.executors == {}

    # Nothing of the failed group was taken: the agent's 4 cpus are offered whole.
    event = await scheduler.next("OFFERS", where=lambda e: cpus_on(e, agent_id) == 4.0)
    offer = next(o for o in event["offers"]["offers"] if o["agent_id"] == agent_id)
    good = group_call(offer, launch(offer, "g3", duration=60), launch(offer, "g4", duration=60))
    assert await scheduler.call(good) == 202
    running: set[str] = set()
    while running != {"g3", "g4"}:  # one update per task
        update = (await scheduler.next("UPDATE"))["update"]["status"]
        assert update["state"] in ("TASK_STARTING", "TASK_RUNNING")
        if update["state"] == "TASK_RUNNING":
            running.add(update["task_id"]["value"])
    assert set(framework.tasks) == {"g3", "g4"}
    executor = master.master.executors[(scheduler.framework_id, agent_id["value"], "group")]
    assert executor.task_ids == {"g3", "g4"}
    # 4 cpus - 2 tasks x 1 - the executor's 0.5 are left.
    event = await scheduler.next("OFFERS", where=lambda e: cpus_on(e, agent_id) == 1.5)
    rest = [o["id"] for o in event["offers"]["offers"] if o["agent_id"] == agent_id]
    decline = {"type": "DECLINE", "decline": {"offer_ids": rest}}
    decline["decline"]["filters"] = {"refuse_seconds": 0}
    assert await scheduler.call(decline) == 202

    # The executor ends with its last task and gives its resources back.
    kill = {"type": "KILL", "kill": {"task_id": {"value": "g3"}}}
    assert await scheduler.call(kill) == 202
    assert state_of(await scheduler.next("UPDATE")) == "TASK_KILLED"
    assert executor.task_ids == {"g4"}  # still running for g4
    kill["kill"]["task_id"]["value"] = "g4"
    assert await scheduler.call(kill) == 202
    assert state_of(await scheduler.next("UPDATE")) == "TASK_KILLED"
    assert master.master.executors == {}

    def offered_cpus() -> float:  # over the framework's outstanding offers on that agent
        offers = [master.master.offers[o] for o in framework.offers]
        event = {"offers": {"offers": [master.master._offer_json(o) for o in offers]}}
        return cpus_on(event, agent_id)

    async def all_back() -> None:
        while offered_cpus() != 4.0:
            await asyncio.sleep(0.01)  # polling master state, not synchronising on time

    await asyncio.wait_for(all_back(), 10)


BAD_EXECUTORS = [
    (None, "launch_group.executor (an ExecutorInfo) must be set"),
    ({"executor_id": {"value": "e"}}, "'ExecutorInfo.type' must be set"),
    ({"executor_id": {"value": "e"}, "type": "UNKNOWN"}, "Unknown executor type 'UNKNOWN'"),
    ({"type": "DEFAULT"}, "launch_group.executor.executor_id"),
    (
        {**EXECUTOR, "resources": EXECUTOR["resources"][:1]},
        "Executor 'group' uses less mem (0) than the minimum required (32)",
    ),
    (
        {**EXECUTOR, "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]},
        "must be finite and >= 0",
    ),
]


async def test_a_bad_executor_fails_the_whole_group(master, scheduler):
    await scheduler.subscribe()
    for executor, message in BAD_EXECUTORS:
        offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
        call = group_call(offer, launch(offer, "a"), launch(offer, "b"), executor=executor)
        assert await scheduler.call(call) == 202
        for error in await group_errors(scheduler, 2):
            assert error["reason"] == "REASON_TASK_GROUP_INVALID"
            assert message in error["message"], error["message"]
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    task = launch(offer, "c")
    task["accept"]["operations"][0]["launch"]["task_infos"][0]["executor"] = {
        **EXECUTOR,
        "executor_id": {"value": "other"},
    }
    assert await scheduler.call(group_call(offer, launch(offer, "d"), task)) == 202
    for error in await group_errors(scheduler, 2):
        assert "ExecutorInfo of task 'c' is different from executor 'group'" in error["message"]
    assert master.master.frameworks[scheduler.framework_id].tasks == {}
    assert master.master.executors == {}


async def test_a_second_group_joins_the_running_executor(master, scheduler):
    await scheduler.subscribe()
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    agent_id = offer["agent_id"]

    async def offer_with(amount: float) -> dict[str, Any]:
        event = await scheduler.next("OFFERS", where=lambda e: cpus_on(e, agent_id) == amount)
        return next(o for o in event["offers"]["offers"] if o["agent_id"] == agent_id)

    assert await scheduler.call(group_call(offer, launch(offer, "x1", duration=60))) == 202
    offer = await offer_with(2.5)  # 4 - 1 - the executor's 0.5
    # The same executor again: only the task's cpu is taken, not the executor's again.
    assert await scheduler.call(group_call(offer, launch(offer, "x2", duration=60))) == 202
    offer = await offer_with(1.5)
    key = (scheduler.framework_id, agent_id["value"], "group")
    assert master.master.executors[key].task_ids == {"x1", "x2"}
    # /state shows the executor once, where it runs and what it holds, and the
    # tasks name it.
    (framework,) = master.master.state()["frameworks"]
    (shown,) = framework["executors"]
    assert shown["executor_id"] == {"value": "group"} and shown["slave_id"] == agent_id["value"]
    assert shown["resources"]["cpus"] == 0.5 and shown["resources"]["mem"] == 32
    assert shown["tasks"] == ["x1", "x2"]
    assert {t["id"]: t["executor_id"] for t in framework["tasks"]} == {"x1": "group", "x2": "group"}
    # Another ExecutorInfo under the running executor's id is refused, though it would fit.
    changed = {**EXECUTOR, "type": "CUSTOM"}
    assert await scheduler.call(group_call(offer, launch(offer, "x3"), executor=changed)) == 202
    (error,) = await group_errors(scheduler, 1)
    assert error["reason"] == "REASON_TASK_GROUP_INVALID"
    assert "executor 'group' already runs on agent" in error["message"]
    assert set(master.master.frameworks[scheduler.framework_id].tasks) == {"x1", "x2"}
