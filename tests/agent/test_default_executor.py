"""Task groups (LAUNCH_GROUP) on the default executor of a real agent, as Mesos'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.agent_tasks import follow_all, task_info, until
from support.executor_tasks import accept_group, launch_group, sandbox_of
from support.served_files import tar_gz

from pymesos_modules.agent.health import CHECK_REASON as CHECK
from pymesos_modules.agent.health import REASON as HEALTH

FAST = {"delay_seconds": 0, "interval_seconds": 0.1, "timeout_seconds": 5}


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
    sandbox = sandbox_of(agent, scheduler.framework_id)
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
    await accept_group(scheduler, offer, [checked, other])
    seen = await follow_all(scheduler, {"checked"}, "TASK_RUNNING")
    while "healthy" not in seen["checked"][-1]:
        seen["checked"] += (await follow_all(scheduler, {"checked"}, "TASK_RUNNING"))["checked"]
    assert seen["checked"][-1]["healthy"] is True
    executor = agent.agent.executor_room.find(scheduler.framework_id, "group-executor")
    (executor.container.sandbox / "tasks" / "checked" / "healthy").unlink()
    ended = await follow_all(scheduler, {"checked", "other"}, "TASK_KILLED")
    assert ended["checked"][-1]["healthy"] is False


async def running_until(scheduler: Any, task_id: str, done: Any) -> dict[str, Any]:
    """The task's TASK_RUNNING updates, up to the first that ``done(status)``."""
    while True:
        (status,) = (await follow_all(scheduler, {task_id}, "TASK_RUNNING"))[task_id][-1:]
        if done(status):
            return status


async def test_a_groups_uris_are_fetched_into_each_tasks_sandbox_and_checks_run(
    agent, scheduler, files
):
    """As Mesos' agent fetches a nested container's URIs into its sandbox under the
    executor's; the task's general check runs beside its health check, and a check update
    carries the latest health (and a health update the latest check status)."""
    content, served, base = files
    content["tools.tar.gz"] = tar_gz({"tools/a.txt": b"from tar\n"})
    content["data.txt"] = b"cached\n"
    command = {
        "shell": True,
        "value": "cat tools/a.txt data.txt > all.txt; echo 0 > code; touch healthy; exec sleep 600",
        "uris": [
            {"value": f"{base}/tools.tar.gz"},
            {"value": f"{base}/data.txt", "cache": True, "extract": False},
        ],
    }
    offer = (await scheduler.next("OFFERS", 20))["offers"]["offers"][0]
    task = task_info(offer, "fetched", command, cpus=0.1, mem=32)
    task["health_check"] = {
        "type": "COMMAND",
        "command": {"value": "test -e healthy"},
        "grace_period_seconds": 60,
        "consecutive_failures": 1000,  # never killed here
        **FAST,
    }
    task["check"] = {
        "type": "COMMAND",
        "command": {"command": {"value": "exit $(cat code)"}},
        **FAST,
    }
    await accept_group(scheduler, offer, [task])
    (starting,) = (await follow_all(scheduler, {"fetched"}, "TASK_STARTING"))["fetched"]
    assert starting["check_status"] == {"type": "COMMAND", "command": {}}  # no result yet
    first = await running_until(
        scheduler,
        "fetched",
        lambda s: (
            s.get("healthy") is True
            and s.get("check_status", {}).get("command") == {"exit_code": 0}
        ),
    )
    assert first["reason"] in (CHECK, HEALTH)
    sandbox = sandbox_of(agent, scheduler.framework_id) / "tasks" / "fetched"
    assert (sandbox / "all.txt").read_text() == "from tar\ncached\n"
    # The agent's cache served the executor too.
    assert served == {"tools.tar.gz": 1, "data.txt": 1}
    assert len(list(Path(agent.agent.fetcher.cache_dir).iterdir())) == 1
    (sandbox / "code").write_text("3\n")
    checked = await running_until(scheduler, "fetched", lambda s: s.get("reason") == CHECK)
    assert checked["check_status"] == {"type": "COMMAND", "command": {"exit_code": 3}}
    assert checked["healthy"] is True
    (sandbox / "healthy").unlink()
    unhealthy = await running_until(scheduler, "fetched", lambda s: s.get("reason") == HEALTH)
    assert unhealthy["healthy"] is False
    assert unhealthy["check_status"] == {"type": "COMMAND", "command": {"exit_code": 3}}


async def test_a_uri_that_cannot_be_fetched_fails_the_whole_group_before_it_runs(
    agent, scheduler, files
):
    _, _, base = files
    missing = {"shell": True, "value": "touch ran", "uris": [{"value": f"{base}/missing.txt"}]}
    await launch_group(scheduler, ("fetching", missing), ("beside", "touch ran"))
    seen = await follow_all(scheduler, {"fetching", "beside"}, "TASK_FAILED")
    for task_id, statuses in seen.items():
        assert [s["state"] for s in statuses] == ["TASK_FAILED"], task_id
        assert statuses[-1]["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert f"{base}/missing.txt" in statuses[-1]["message"]
        assert "HTTP 404" in statuses[-1]["message"]
        assert statuses[-1]["source"] == "SOURCE_EXECUTOR"
    assert not list(sandbox_of(agent, scheduler.framework_id).glob("tasks/*/ran"))
