"""Agent recovery: a restarted agent takes over the tasks, updates and id its checkpoint holds."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.agent_tasks import (
    ack,
    agent_args,
    follow,
    launch,
    python_modules,
    start_command,
    task_info,
    until,
)
from support.scheduler import Scheduler

from pymesos_modules import cli, metrics
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.agent.agent import Agent, Container
from pymesos_modules.agent.checkpoint import CheckpointError, MetaDir
from pymesos_modules.agent.launcher import ProcessId, is_alive

WAIT_FOR_GO = "while [ ! -e go ]; do sleep 0.05; done"


class Updates:
    """Every UPDATE a framework gets, in order, acknowledged as it comes."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.seen: list[dict[str, Any]] = []

    async def until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        while not done():
            event = await self.scheduler.next("UPDATE", timeout)
            status = event["update"]["status"]
            self.seen.append(status)
            await ack(self.scheduler, status)

    def states(self, task_id: str) -> list[str]:
        return [s["state"] for s in self.seen if s["task_id"]["value"] == task_id]

    def has(self, task_id: str, state: str) -> bool:
        return state in self.states(task_id)


async def subprocess_agent(
    master_url: str, work_dir: Path
) -> tuple[asyncio.subprocess.Process, str]:
    """`pymesos-modules agent` in a process of its own (to be SIGKILLed); its URL."""
    return await start_command(
        "agent",
        f"--master={master_url.removeprefix('http://')}",
        f"--work_dir={work_dir}",
        "--port=0",
        "--hostname=agent-host",
        "--resources=cpus:4;mem:4096;disk:4096;ports:[31000-31009]",
        "--registration_backoff_factor=0.1",
        "--status_update_retry_interval_min=0.5",
        "--status_update_retry_interval_max=2",
        banner="agent listening on http://",
    )


async def pending_updates(session, url: str) -> float:
    async with session.get(f"{url}/metrics/snapshot") as response:
        return (await response.json())["slave/status_updates_pending"]


def run_dir(work_dir: Path, agent_id: str, framework_id: str, task_id: str) -> Path:
    """The checkpoint folder of a command task's (only) run."""
    runs = MetaDir(work_dir).executor_dir(agent_id, framework_id, task_id) / "runs"
    (only,) = runs.iterdir()
    return only


async def left_running(
    agent_factory: Any,
    scheduler: Scheduler,
    work_dir: Path,
    task_id: str,
    command: str = "exec sleep 600",
    ready: bool = False,
    flags: dict[str, Any] | None = None,
    **task: Any,
) -> tuple[Agent, Container]:
    """An agent runs ``task_id``, then goes away leaving it running (as before an upgrade).

    ``ready``: also wait for the task to create ``ready`` in its sandbox."""
    running = await agent_factory(work_dir=work_dir, **(flags or {}))
    await launch(scheduler, lambda o: task_info(o, task_id, command, **task))
    await follow(scheduler, task_id, until="TASK_RUNNING")
    container = running.agent.find(scheduler.framework_id, task_id)
    if ready:
        await until(lambda: (container.sandbox / "ready").exists(), what=f"{task_id} to be ready")
    await running.stop(kill_tasks=False)
    return running.agent, container


def task_process(run: Path) -> ProcessId:
    document = json.loads((run / "pids" / "task.pid").read_text())
    return ProcessId(document["pid"], document["start_time"])


async def test_a_killed_agent_restarts_with_its_id_its_running_task_and_one_that_ended(
    master, scheduler, agent_factory, session, tmp_path
):
    work_dir = tmp_path / "agent"
    framework_id = scheduler.framework_id
    updates = Updates(scheduler)
    process, url = await subprocess_agent(master.url, work_dir)
    try:
        await until(lambda: len(master.master.agents) == 1, what="the agent to register")
        (agent_id,) = master.master.agents
        await launch(
            scheduler,
            lambda o: task_info(o, "long", "exec sleep 600"),
            lambda o: task_info(o, "short", WAIT_FOR_GO),
        )
        await updates.until(lambda: updates.has("long", "TASK_RUNNING"))
        await updates.until(lambda: updates.has("short", "TASK_RUNNING"))
        # Every acknowledgement has reached the agent: all short has left to say is its end.
        for _ in range(1000):
            if await pending_updates(session, url) == 0:
                break
            await asyncio.sleep(0.02)
        assert await pending_updates(session, url) == 0
    finally:
        process.kill()
        await process.wait()

    short_run = run_dir(work_dir, agent_id, framework_id, "short")
    long_run = run_dir(work_dir, agent_id, framework_id, "long")
    sandbox = work_dir / "slaves" / agent_id / "frameworks" / framework_id / "executors"
    (sandbox / "short" / "runs" / short_run.name / "go").touch()
    await until(lambda: (short_run / "termination").exists(), what="the short task's recorded end")
    long_process = task_process(long_run)
    assert is_alive(long_process)  # the agent died, its task did not

    restarted = await agent_factory(work_dir=work_dir, status_update_retry_interval_min=60.0)
    agent = restarted.agent
    assert agent.agent_id == agent_id
    assert list(master.master.agents) == [agent_id]
    long = agent.find(framework_id, "long")
    assert long.recovered and long.running and long.process == long_process
    await updates.until(lambda: updates.has("short", "TASK_FINISHED"))
    assert master.master.frameworks[framework_id].tasks["long"].state == "TASK_RUNNING"

    kill = {"type": "KILL", "kill": {"task_id": {"value": "long"}}}
    assert await scheduler.call(kill) == 202
    await updates.until(lambda: updates.has("long", "TASK_KILLED"))
    # Ordered behind the kill on the master's stream: a second FINISHED would be here by now.
    assert updates.states("short") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    finished = next(s for s in updates.seen if s["state"] == "TASK_FINISHED")
    assert finished["message"] == "Command exited with status 0"
    assert not is_alive(long_process)
    await until(lambda: not agent.containers, what="both tasks forgotten")
    assert not MetaDir(work_dir).framework_dir(agent_id, framework_id).exists()


async def test_unacknowledged_updates_are_resent_in_order_after_a_restart(
    master, scheduler, agent_factory, tmp_path
):
    framework_id = scheduler.framework_id
    first = await agent_factory(work_dir=tmp_path / "a")
    await launch(scheduler, lambda o: task_info(o, "quick", "true"))
    await follow(scheduler, "quick", until="TASK_STARTING", acknowledge=False)
    await until(lambda: first.agent.find(framework_id, "quick").finished.is_set())
    held = first.agent.updates.unacknowledged(framework_id, "quick")
    assert [s["state"] for s in held] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    await first.stop(kill_tasks=False)

    second = await agent_factory(work_dir=tmp_path / "a")
    assert second.agent.updates.unacknowledged(framework_id, "quick") == held
    statuses = await follow(scheduler, "quick")
    # Resends of STARTING from before the restart may come first: once per uuid, in order.
    assert list(dict.fromkeys(s["uuid"] for s in statuses)) == [s["uuid"] for s in held]
    await until(lambda: second.agent.find(framework_id, "quick") is None, what="forgetting it")
    assert second.agent.updates.pending() == 0
    assert not MetaDir(tmp_path / "a").framework_dir(second.agent.agent_id, framework_id).exists()


async def test_a_recovered_task_is_watched_by_the_isolators_and_killed_with_escalation(
    master, scheduler, agent_factory, tmp_path
):
    flags = {"modules": python_modules(("BaseIsolator", "rec", {})), "isolation": "rec"}
    framework_id = scheduler.framework_id
    policy = {"grace_period": {"nanoseconds": 300_000_000}}
    command = "trap 'echo ignoring TERM' TERM; touch ready; while :; do sleep 0.05; done"
    _, old = await left_running(
        agent_factory,
        scheduler,
        tmp_path / "a",
        "stubborn",
        command,
        True,
        flags,
        kill_policy=policy,
    )

    second = await agent_factory(work_dir=tmp_path / "a", **flags)
    container = second.agent.find(framework_id, "stubborn")
    assert container.running and container.process == old.process
    rec = second.agent.modules.isolators[0].module
    cid = container.container_id
    assert rec.calls == [("prepare", cid), ("isolate", cid), ("update", cid)]
    assert await scheduler.call({"type": "KILL", "kill": {"task_id": {"value": "stubborn"}}}) == 202
    final = (await follow(scheduler, "stubborn"))[-1]
    assert final["state"] == "TASK_KILLED"
    assert container.returncode == -9  # SIGKILL after the grace period: the trap ignored SIGTERM
    assert "ignoring TERM" in (container.sandbox / "stdout").read_text()
    assert rec.calls[3:] == [("watch-exit", 9), ("cleanup", cid)]


async def test_a_corrupt_checkpoint_file_stops_the_agent_with_its_name(
    master, scheduler, agent_factory, tmp_path
):
    work_dir = tmp_path / "a"
    framework_id = scheduler.framework_id
    first, container = await left_running(agent_factory, scheduler, work_dir, "long")
    agent_id, run = first.agent_id, container.run_dir
    process = task_process(run)

    meta = MetaDir(work_dir)
    task_dir = run / "tasks" / "long"
    for path in (
        meta.agent_dir(agent_id) / "slave.info",
        meta.framework_dir(agent_id, framework_id) / "framework.info",
        task_dir / "task.info",
        task_dir / "task.updates",
        run / "pids" / "forked.pid",
    ):
        original = path.read_bytes()
        path.write_text('{"cut short": ')
        with pytest.raises(CheckpointError) as error:
            await agent_cli.start_agent(
                agent_args(master.url, str(work_dir)), registry=metrics.MetricsRegistry()
            )
        assert str(error.value).startswith(f"{path}: is not valid JSON")
        assert "--strict=false" in str(error.value)
        path.write_bytes(original)
    assert is_alive(process)  # an agent that refuses to start kills nothing

    # --strict=false: the task whose task.info is unreadable is not recovered but killed
    # (nobody could report on it); the master, not hearing of it, tells the framework.
    (task_dir / "task.info").write_text("garbage")
    await agent_factory(work_dir=work_dir, strict=False)
    (lost,) = await follow(scheduler, "long")
    assert lost["state"] == "TASK_LOST" and lost["reason"] == "REASON_RECONCILIATION"
    await until(lambda: not is_alive(process), what="the unrecoverable task to be killed")


def test_the_agent_command_names_the_corrupt_file_and_exits_1(tmp_path, caplog):
    slave = tmp_path / "meta" / "slaves" / "S1"
    slave.mkdir(parents=True)
    (slave / "slave.info").write_text("{}")
    (slave.parent / "latest").symlink_to("S1")
    info = slave / "frameworks" / "F1" / "framework.info"
    info.parent.mkdir(parents=True)
    info.write_bytes(b"\xff\xfe")
    base = ["agent", "--master", "127.0.0.1:1", "--work_dir", str(tmp_path), "--port", "0"]
    with caplog.at_level(logging.ERROR):
        assert cli.main(base) == 1
    assert f"{info}: is not UTF-8 text" in caplog.text


def test_an_update_stream_out_of_order_is_refused(tmp_path):
    run = MetaDir(tmp_path).run_dir("S1", "F1", "t", "c1")
    updates = run / "tasks" / "t" / "task.updates"
    updates.parent.mkdir(parents=True)
    (updates.parent / "task.info").write_text(json.dumps({"task_id": {"value": "t"}}))
    status = {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "uuid": "u1"}
    updates.write_text(
        json.dumps([{"type": "UPDATE", "status": status}, {"type": "ACK", "uuid": "u2"}])
    )
    (tmp_path / "meta" / "slaves" / "latest").symlink_to("S1")
    (tmp_path / "meta" / "slaves" / "S1" / "slave.info").write_text("{}")
    with pytest.raises(CheckpointError, match="record 1: acknowledges 'u2', not the next update"):
        MetaDir(tmp_path).recover()


async def test_recover_cleanup_kills_the_old_tasks_and_registers_anew(
    master, scheduler, agent_factory, tmp_path
):
    first, container = await left_running(agent_factory, scheduler, tmp_path / "a", "old")
    old_id, process = first.agent_id, container.process

    second = await agent_factory(work_dir=tmp_path / "a", recover="cleanup")
    assert not is_alive(process)
    assert second.agent.agent_id != old_id
    assert second.agent.containers == {}
    assert not MetaDir(tmp_path / "a").agent_dir(old_id).exists()
    assert os.readlink(tmp_path / "a" / "meta" / "slaves" / "latest") == second.agent.agent_id


async def test_a_task_whose_launcher_died_unrecorded_fails_and_is_not_left_running(
    master, scheduler, agent_factory, tmp_path
):
    _, container = await left_running(agent_factory, scheduler, tmp_path / "a", "orphan")
    launcher, process = container.launcher, container.process
    os.kill(launcher.pid, signal.SIGKILL)  # nobody is left to record how the task ends
    await until(lambda: not is_alive(launcher), what="the launcher to die")
    assert is_alive(process)

    await agent_factory(work_dir=tmp_path / "a")
    final = (await follow(scheduler, "orphan"))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["reason"] == "REASON_EXECUTOR_TERMINATED"
    assert final["source"] == "SOURCE_SLAVE"
    assert final["message"] == (
        f"the restarted agent could not recover the task: the task's launcher "
        f"(pid {launcher.pid}) ended without recording its end"
    )
    assert not is_alive(process)


async def test_sigterm_leaves_the_tasks_to_the_next_agent_and_sigusr1_kills_them(
    master, scheduler, tmp_path
):
    work_dir = tmp_path / "agent"
    process, _ = await subprocess_agent(master.url, work_dir)
    try:
        await until(lambda: len(master.master.agents) == 1, what="the agent to register")
        (agent_id,) = master.master.agents
        await launch(scheduler, lambda o: task_info(o, "kept", "exec sleep 600"))
        await follow(scheduler, "kept", until="TASK_RUNNING")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        kept = task_process(run_dir(work_dir, agent_id, scheduler.framework_id, "kept"))
        assert is_alive(kept)

        process, _ = await subprocess_agent(master.url, work_dir)
        await until(lambda: master.master.agents[agent_id].active, what="re-registration")
        process.send_signal(signal.SIGUSR1)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        assert not is_alive(kept)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
