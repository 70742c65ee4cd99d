"""Task groups (LAUNCH_GROUP) on the default executor of a real agent, as Mesos'."""

from __future__ import annotations

from typing import Any

from support.agent_tasks import follow_all, task_info, until

DEFAULT = {
    "executor_id": {"value": "group-executor"},
    "type": "DEFAULT",
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
    ],
}


async def launch_group(
    scheduler: Any, *tasks: tuple[str, str], offer: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One LAUNCH_GROUP of (task id, shell command) on the default executor, on ``offer`` or
    the next one offered."""
    if offer is None:
        event = await scheduler.next("OFFERS", 20)
        offer = event["offers"]["offers"][0]
    infos = [task_info(offer, task_id, command, cpus=0.1, mem=32) for task_id, command in tasks]
    call = {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [
                {
                    "type": "LAUNCH_GROUP",
                    "launch_group": {"executor": DEFAULT, "task_group": {"tasks": infos}},
                }
            ],
            "filters": {"refuse_seconds": 0},
        },
    }
    assert await scheduler.call(call) == 202, scheduler.last_text
    return offer


def states(seen: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {task_id: [s["state"] for s in statuses] for task_id, statuses in seen.items()}


async def test_a_group_runs_on_the_default_executor_and_finishes(agent, scheduler):
    await launch_group(scheduler, ("a", "echo a > out"), ("b", "echo b > out"))
    seen = await follow_all(scheduler, {"a", "b"}, "TASK_FINISHED")
    assert states(seen) == {
        "a": ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
        "b": ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
    }
    assert all(s["executor_id"]["value"] == "group-executor" for v in seen.values() for s in v)
    executor = agent.agent.executor_room.find(scheduler.framework_id, "group-executor")
    sandbox = (
        executor.container.sandbox
        if executor is not None
        else agent.agent.completed_executors[-1].container.sandbox
    )
    for task_id in ("a", "b"):
        assert (sandbox / "tasks" / task_id / "out").read_text() == f"{task_id}\n"
    # Every task ended and was acknowledged: the default executor exits by itself.
    await until(
        lambda: agent.agent.executor_room.find(scheduler.framework_id, "group-executor") is None,
        what="the default executor to exit",
    )


async def test_a_failed_task_kills_the_rest_of_its_group(agent, scheduler):
    await launch_group(scheduler, ("bad", "exit 3"), ("sleeper", "exec sleep 600"))
    seen = await follow_all(scheduler, {"bad"}, "TASK_FAILED")
    assert seen["bad"][-1]["message"] == "Command exited with status 3"
    killed = await follow_all(scheduler, {"sleeper"}, "TASK_KILLED")
    assert killed["sleeper"][-1]["source"] == "SOURCE_EXECUTOR"


def outstanding_offer(master: Any, framework_id: str) -> dict[str, Any]:
    """An offer the framework holds (its OFFERS event was skipped while following updates)."""
    offer = next(o for o in master.master.offers.values() if o.framework_id == framework_id)
    return {"id": {"value": offer.offer_id}, "agent_id": {"value": offer.agent_id}}


async def test_a_later_group_runs_beside_the_first_on_the_same_executor(master, agent, scheduler):
    await launch_group(scheduler, ("first", "exec sleep 600"))
    await follow_all(scheduler, {"first"}, "TASK_RUNNING")
    room = agent.agent.executor_room
    executor = room.find(scheduler.framework_id, "group-executor")
    assert executor is not None
    await until(lambda: bool(master.master.offers), what="the rest to be offered")
    offer = outstanding_offer(master, scheduler.framework_id)
    await launch_group(scheduler, ("second", "exec sleep 600"), offer=offer)
    await follow_all(scheduler, {"second"}, "TASK_RUNNING")
    assert room.find(scheduler.framework_id, "group-executor") is executor
    assert set(executor.tasks) == {"first", "second"}
    (framework,) = agent.agent.state()["frameworks"]
    (entry,) = framework["executors"]
    assert {t["id"] for t in entry["tasks"]} == {"first", "second"}
    kill = {"type": "KILL", "kill": {"task_id": {"value": "first"}}}
    assert await scheduler.call(kill) == 202
    await follow_all(scheduler, {"first"}, "TASK_KILLED")
    assert agent.agent.find(scheduler.framework_id, "second").state == "TASK_RUNNING"


async def test_the_default_executor_runs_health_checks_and_kills_an_unhealthy_group(
    agent, scheduler
):
    check = {
        "type": "COMMAND",
        "command": {"value": "test -e healthy"},
        "delay_seconds": 0,
        "interval_seconds": 0.1,
        "grace_period_seconds": 30,
        "consecutive_failures": 2,
    }
    offer = (await scheduler.next("OFFERS", 20))["offers"]["offers"][0]
    checked = task_info(offer, "checked", "touch healthy; exec sleep 600", cpus=0.1, mem=32)
    checked["health_check"] = check
    other = task_info(offer, "other", "exec sleep 600", cpus=0.1, mem=32)
    group = {"executor": DEFAULT, "task_group": {"tasks": [checked, other]}}
    call = {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH_GROUP", "launch_group": group}],
            "filters": {"refuse_seconds": 0},
        },
    }
    assert await scheduler.call(call) == 202, scheduler.last_text
    seen = await follow_all(scheduler, {"checked"}, "TASK_RUNNING")
    while "healthy" not in seen["checked"][-1]:
        seen["checked"] += (await follow_all(scheduler, {"checked"}, "TASK_RUNNING"))["checked"]
    assert seen["checked"][-1]["healthy"] is True
    executor = agent.agent.executor_room.find(scheduler.framework_id, "group-executor")
    (executor.container.sandbox / "tasks" / "checked" / "healthy").unlink()
    ended = await follow_all(scheduler, {"checked", "other"}, "TASK_KILLED")
    assert ended["checked"][-1]["healthy"] is False
