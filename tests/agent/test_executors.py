"""Custom executors (TaskInfo.executor) on a real agent: the v1 executor API end to end.

The executor is tests/support/pymesos_executor.py on the unmodified pymesos 0.3.15
MesosExecutorDriver; the framework is the plain-HTTP scheduler of the tests.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from support.agent_tasks import (
    follow,
    follow_all,
    launch,
    master_args,
    restarted,
    task_info,
    until,
)
from support.executor_tasks import (
    environment_of,
    executor_info,
    message_executor,
    on_executor,
    shutdown_executor,
    waiting_on_executor,
)
from support.scheduler import Scheduler

from pymesos_modules.agent.launcher import is_alive
from pymesos_modules.master.cli import start_master


def calls(sandbox: Path) -> list[str]:
    log = sandbox / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


async def test_tasks_of_one_executor_run_on_it_and_finish(agent, scheduler):
    await launch(
        scheduler,
        lambda o: on_executor(o, "t1", "finish"),
        lambda o: on_executor(o, "t2", "finish"),
    )
    seen = await follow_all(scheduler, {"t1", "t2"}, "TASK_FINISHED")
    for task_id, statuses in seen.items():
        assert [s["state"] for s in statuses] == ["TASK_RUNNING", "TASK_FINISHED"], task_id
        assert all(s["source"] == "SOURCE_EXECUTOR" for s in statuses)
        assert statuses[-1]["executor_id"]["value"] == "pyexec"
    executor = agent.agent.executor_room.find(scheduler.framework_id, "pyexec")
    assert executor is not None and executor.state == "RUNNING"
    log = calls(executor.container.sandbox)
    assert sum(line.startswith("registered pyexec") for line in log) == 1
    assert {"launch t1 finish", "launch t2 finish"} <= set(log)
    # The executor got the framework's acknowledgements: pymesos forgets acked tasks.
    state = agent.agent.state()
    (framework,) = state["frameworks"]
    (entry,) = [e for e in framework["executors"] if e["id"] == "pyexec"]
    assert entry["state"] == "RUNNING"
    assert entry["directory"] == str(executor.container.sandbox)
    # Mesos' executor environment, as the executor's process has it.
    assert executor.container.process is not None
    env = environment_of(executor.container.process.pid)
    sandbox = str(executor.container.sandbox)
    assert {
        "MESOS_FRAMEWORK_ID": scheduler.framework_id,
        "MESOS_EXECUTOR_ID": "pyexec",
        "MESOS_DIRECTORY": sandbox,
        "MESOS_SANDBOX": sandbox,
        "MESOS_CONTAINER_ID": executor.container.container_id,
        "MESOS_AGENT_ID": agent.agent.agent_id,
        "MESOS_AGENT_ENDPOINT": agent.agent.endpoint,
        "MESOS_CHECKPOINT": "1",  # the test framework checkpoints
        "MESOS_HTTP_COMMAND_EXECUTOR": "0",
        "MESOS_RECOVERY_TIMEOUT": "900secs",
        "MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "3secs",
    }.items() <= env.items()
    assert "MESOS_EXECUTOR_AUTHENTICATION_TOKEN" not in env  # no --executor_secret_key


async def test_framework_messages_reach_the_executor_and_kills_are_its_to_do(agent, scheduler):
    await waiting_on_executor(scheduler, "waiter", "victim")
    executor = agent.agent.executor_room.find(scheduler.framework_id, "pyexec")
    assert executor is not None
    await message_executor(scheduler, agent.agent.agent_id, b"finish waiter")
    (finished,) = [s for s in await follow(scheduler, "waiter") if s["state"] == "TASK_FINISHED"]
    assert finished["message"] == "finished on request"
    kill = {"type": "KILL", "kill": {"task_id": {"value": "victim"}}}
    assert await scheduler.call(kill) == 202, scheduler.last_text
    statuses = await follow(scheduler, "victim")
    assert statuses[-1]["state"] == "TASK_KILLED"
    assert statuses[-1]["message"] == "killed by the executor"
    log = calls(executor.container.sandbox)
    assert "message finish waiter" in log and "kill victim" in log


async def test_an_executor_that_never_subscribes_is_destroyed_and_its_task_fails(
    agent_factory, scheduler
):
    running = await agent_factory(executor_registration_timeout=0.5)
    silent = executor_info("silent")
    silent["command"] = {"value": "sleep 600"}
    await launch(scheduler, lambda o: {**on_executor(o, "t", "finish"), "executor": silent})
    statuses = await follow(scheduler, "t")
    assert statuses[-1]["state"] == "TASK_FAILED"
    assert statuses[-1]["reason"] == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    assert statuses[-1]["source"] == "SOURCE_SLAVE"
    assert "did not register within 0.5secs" in statuses[-1]["message"]
    await until(
        lambda: running.agent.executor_room.find(scheduler.framework_id, "silent") is None,
        what="the executor to be gone",
    )


async def test_an_executor_that_sends_garbage_is_refused_each_time_then_destroyed(
    agent_factory, scheduler
):
    running = await agent_factory(executor_registration_timeout=10.0)
    garbage = executor_info("garbage")
    script = Path(__file__).resolve().parent.parent / "support" / "garbage_executor.py"
    garbage["command"] = {
        "shell": False,
        "value": sys.executable,
        "arguments": [sys.executable, "-I", str(script)],
    }
    await launch(scheduler, lambda o: {**on_executor(o, "t", "finish"), "executor": garbage})
    room = running.agent.executor_room
    await until(lambda: room.find(scheduler.framework_id, "garbage") is not None, what="launch")
    executor = room.find(scheduler.framework_id, "garbage")
    answers = executor.container.sandbox / "answers.txt"
    await until(answers.exists, what="the executor's answers")
    # Not JSON, cut short, a bad subscribe, another executor's SUBSCRIBE, then calls
    # before subscribing: each refused, none of them taken as a subscription.
    assert answers.read_text().split() == ["400", "400", "400", "400", "403", "403"]
    assert executor.state == "REGISTERING" and executor.sink is None
    statuses = await follow(scheduler, "t")
    assert statuses[-1]["state"] == "TASK_FAILED"
    assert statuses[-1]["reason"] == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    assert running.agent.registered  # the agent itself is unharmed


async def test_an_executor_that_exits_fails_its_unfinished_tasks(agent, scheduler):
    await waiting_on_executor(scheduler, "left")
    executor = agent.agent.executor_room.find(scheduler.framework_id, "pyexec")
    assert executor is not None and executor.container.process is not None
    os.killpg(executor.container.process.pid, signal.SIGKILL)
    statuses = await follow(scheduler, "left")
    assert statuses[-1]["state"] == "TASK_FAILED"
    assert statuses[-1]["reason"] == "REASON_EXECUTOR_TERMINATED"
    assert statuses[-1]["source"] == "SOURCE_SLAVE"
    assert "Executor terminated" in statuses[-1]["message"]


async def test_teardown_shuts_the_executor_down(agent, scheduler):
    await waiting_on_executor(scheduler, "t")
    executor = agent.agent.executor_room.find(scheduler.framework_id, "pyexec")
    assert executor is not None
    assert await scheduler.call({"type": "TEARDOWN"}) == 202, scheduler.last_text
    await until(lambda: executor.container.finished.is_set(), what="the executor to end")
    assert "shutdown" in calls(executor.container.sandbox)
    assert executor.state == "TERMINATED"


async def test_bad_executor_calls_get_4xx_and_change_nothing(agent, scheduler, session):
    await waiting_on_executor(scheduler, "t")
    a = agent.agent
    executor = a.executor_room.find(scheduler.framework_id, "pyexec")
    assert executor is not None
    url = f"{agent.url}/api/v1/executor"
    ids = {
        "framework_id": {"value": scheduler.framework_id},
        "executor_id": {"value": "pyexec"},
    }
    good_uuid = base64.b64encode(os.urandom(16)).decode()

    def update(**status: Any) -> dict[str, Any]:
        body = {"task_id": {"value": "t"}, "state": "TASK_FINISHED", "uuid": good_uuid}
        return {**ids, "type": "UPDATE", "update": {"status": {**body, **status}}}

    cases: list[tuple[Any, int, str]] = [
        (b"{not json", 400, ""),
        ({"type": "UPDATE"}, 400, "framework_id"),
        ({**ids, "type": "NO_SUCH_CALL"}, 400, "NO_SUCH_CALL"),
        ({**ids, "framework_id": {"value": "nobody"}, "type": "MESSAGE"}, 400, "Framework"),
        ({**ids, "executor_id": {"value": "nobody"}, "type": "MESSAGE"}, 400, "Executor"),
        ({**ids, "type": "UPDATE"}, 400, "update"),
        (update(uuid="short"), 400, "uuid"),
        (update(state="TASK_STAGING"), 400, "TASK_STAGING"),
        (update(state="TASK_NONSENSE"), 400, "TASK_NONSENSE"),
        (update(source="SOURCE_MASTER"), 400, "SOURCE_EXECUTOR"),
        (update(executor_id={"value": "other"}), 400, "does not match"),
        (update(task_id={"value": "not-its-task"}), 400, "not-its-task"),
        ({**ids, "type": "MESSAGE", "message": {"data": "%%%"}}, 400, "base64"),
        ({**ids, "type": "SUBSCRIBE", "subscribe": "x"}, 400, "subscribe"),
    ]
    for body, status, words in cases:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=data, headers=headers) as response:
            text = await response.text()
            assert response.status == status, (body, text)
            assert words in text, (body, text)
    async with session.post(url, data=b"{}", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 415
    async with session.get(url) as r:
        assert r.status == 405
    async with session.post(
        url,
        json={**ids, "type": "SUBSCRIBE", "subscribe": {}},
        headers={"Accept": "application/x-protobuf"},
    ) as r:
        assert r.status == 406
    # Nothing of the above reached the task or the executor's stream.
    assert a.find(scheduler.framework_id, "t").state == "TASK_RUNNING"
    assert executor.state == "RUNNING" and executor.sink is not None


async def test_calls_before_subscribing_are_forbidden(agent_factory, scheduler, session):
    running = await agent_factory(executor_registration_timeout=30.0)
    silent = executor_info("silent")
    silent["command"] = {"value": "sleep 600"}
    await launch(scheduler, lambda o: {**on_executor(o, "t", "finish"), "executor": silent})
    room = running.agent.executor_room
    await until(lambda: room.find(scheduler.framework_id, "silent") is not None, what="launch")
    call = {
        "framework_id": {"value": scheduler.framework_id},
        "executor_id": {"value": "silent"},
        "type": "MESSAGE",
        "message": {"data": ""},
    }
    async with session.post(f"{running.url}/api/v1/executor", json=call) as response:
        assert response.status == 403, await response.text()
    async with session.post(
        f"{running.url}/api/v1/executor", json={**call, "type": "HEARTBEAT"}
    ) as response:
        assert response.status == 202


async def test_a_checkpointed_executor_survives_an_agent_restart_and_subscribes_again(
    agent_factory, tmp_path, scheduler
):
    first = await agent_factory(work_dir=tmp_path / "a")
    await waiting_on_executor(scheduler, "t")
    old = first.agent.executor_room.find(scheduler.framework_id, "pyexec")
    assert old is not None and old.container.process is not None
    second = await restarted(agent_factory, first)
    room = second.agent.executor_room
    executor = room.find(scheduler.framework_id, "pyexec")
    assert executor is not None and executor.recovered
    await until(lambda: executor.state == "RUNNING", what="the executor to subscribe again")
    assert executor.container.process == old.container.process  # the same process
    # The agent counts the executor subscribed when SUBSCRIBE arrives; the executor
    # logs its reregistered() callback only once SUBSCRIBED reaches it, a moment later.
    sandbox = executor.container.sandbox
    await until(lambda: "reregistered" in calls(sandbox), what="reregistered()")
    await message_executor(scheduler, second.agent.agent_id, b"finish t")
    statuses = await follow(scheduler, "t")
    assert statuses[-1]["state"] == "TASK_FINISHED"


async def test_without_checkpointing_a_restarted_agent_kills_executors_and_tasks_are_lost(
    agent_factory, master, session, tmp_path
):
    scheduler = Scheduler(master.url, session)
    await scheduler.subscribe(checkpoint=False)
    try:
        first = await agent_factory(work_dir=tmp_path / "a")
        await launch(
            scheduler,
            lambda o: on_executor(o, "on-executor", "wait"),
            lambda o: task_info(o, "command", "exec sleep 600"),
        )
        for task_id in ("on-executor", "command"):
            await follow(scheduler, task_id, until="TASK_RUNNING")
        executor = first.agent.executor_room.find(scheduler.framework_id, "pyexec")
        command = first.agent.find(scheduler.framework_id, "command")
        processes = [executor.container.process, command.process]
        await restarted(agent_factory, first)
        for task_id in ("on-executor", "command"):
            statuses = await follow(scheduler, task_id)
            assert statuses[-1]["state"] == "TASK_LOST", statuses[-1]
            assert statuses[-1]["reason"] == "REASON_SLAVE_RESTARTED"
            assert "does not checkpoint" in statuses[-1]["message"]
        await until(lambda: not any(is_alive(p) for p in processes), what="the kills")
    finally:
        await scheduler.close()


async def test_the_schedulers_shutdown_call_shuts_one_executor_down(master, agent, scheduler):
    await waiting_on_executor(scheduler, "t")
    key = (scheduler.framework_id, agent.agent.agent_id, "pyexec")
    assert key in master.master.executors  # it holds its resources in the master
    executor = agent.agent.executor_room.find(scheduler.framework_id, "pyexec")
    assert executor is not None
    await shutdown_executor(scheduler, agent.agent.agent_id)
    statuses = await follow(scheduler, "t")
    assert statuses[-1]["state"] == "TASK_FAILED"
    assert statuses[-1]["reason"] == "REASON_EXECUTOR_TERMINATED"
    assert "shutdown" in calls(executor.container.sandbox)
    # The agent reported the exit: the master gave the executor's resources back.
    await until(lambda: key not in master.master.executors, what="the executor's release")


async def test_an_executor_that_ignores_shutdown_is_killed_after_its_grace_period(agent, scheduler):
    grace = {"nanoseconds": 500_000_000}  # ExecutorInfo.shutdown_grace_period wins
    await launch(scheduler, lambda o: on_executor(o, "t", "stubborn", shutdown_grace_period=grace))
    await follow(scheduler, "t", until="TASK_RUNNING")
    executor = agent.agent.executor_room.find(scheduler.framework_id, "pyexec")
    assert executor is not None
    assert executor.container.process is not None
    process = executor.container.process
    await shutdown_executor(scheduler, agent.agent.agent_id)
    await follow(scheduler, "t")
    await until(lambda: executor.container.finished.is_set(), what="the executor to end")
    assert "shutdown" in calls(executor.container.sandbox)  # it heard SHUTDOWN, and stayed
    # Ended by the agent's signal, not by itself.
    assert executor.container.returncode in (-signal.SIGTERM, -signal.SIGKILL)
    assert not is_alive(process)


def offered(offer: dict[str, Any], name: str) -> float:
    return sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == name)


async def test_a_restarted_master_accounts_the_executor_an_agent_reregisters_with(
    agent_factory, session
):
    """As Mesos' ReregisterSlaveMessage.executor_infos: the new master holds the executor's
    resources (not only its task's) for as long as it runs, and shows it in /state."""
    master = await start_master(master_args())
    port = int(master.url.rsplit(":", 1)[1])
    running = await agent_factory(master.url)
    a = running.agent
    scheduler = Scheduler(master.url, session)
    await scheduler.subscribe(failover_timeout=600)
    framework_id = scheduler.framework_id
    await waiting_on_executor(scheduler, "t")
    await scheduler.close()
    await master.stop()
    await until(lambda: not a.registered, what="the agent to notice the master is gone")

    restarted = await start_master(master_args(port=port))
    again = Scheduler(restarted.url, session)
    try:
        await until(lambda: a.registered, what="re-registration with the new master")
        key = (framework_id, a.agent_id, "pyexec")
        assert restarted.master.executors[key].task_ids == {"t"}
        await again.subscribe(failover_timeout=600, framework_id=framework_id)
        (offer,) = (await again.next("OFFERS"))["offers"]["offers"]
        # 4 cpus and 4096 MB on the agent; the task holds 0.2 and 32, its executor 0.1 and 32.
        assert offered(offer, "cpus") == pytest.approx(3.7)
        assert offered(offer, "mem") == pytest.approx(4096 - 64)
        async with session.get(f"{restarted.url}/state") as response:
            (framework,) = (await response.json())["frameworks"]
        (executor,) = framework["executors"]
        assert executor["executor_id"] == {"value": "pyexec"}
        assert executor["slave_id"] == a.agent_id and executor["tasks"] == ["t"]
        assert executor["resources"]["cpus"] == pytest.approx(0.1)
        # Shut down, the executor ends and the agent says so: its resources come back.
        await shutdown_executor(again, a.agent_id)
        await follow(again, "t")
        await until(lambda: key not in restarted.master.executors, what="the executor's release")
    finally:
        await again.close()
        await restarted.stop()
