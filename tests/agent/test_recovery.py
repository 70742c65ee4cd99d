"""Agent recovery: tasks outlive their agent, and a restarted agent takes them over.

As Mesos' agent recovery: the agent checkpoints each task under
``work_dir/meta/runs``, tasks run under ``pmm-launcher`` (which records how
they end), and an agent restarted on the same work_dir re-registers with the
same id and the tasks it found.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from support.agent_tasks import agent_args, follow, launch, task_info, until

from pymesos_modules import metrics
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.agent.agent import RecoveryError

WAIT_FOR_GO = "while [ ! -e go ]; do sleep 0.05; done"


def ended(pid: int) -> bool:
    """Gone, or a zombie: in this test the first agent's process is the launcher's parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def states(statuses: list[dict]) -> list[str]:
    return [s["state"] for s in statuses]


async def test_a_restarted_agent_takes_over_running_and_finished_tasks(
    master, agent_factory, scheduler, tmp_path
):
    work_dir = tmp_path / "agent"
    first = await agent_factory(work_dir=work_dir)
    agent_id = first.agent.agent_id
    await launch(
        scheduler,
        lambda o: task_info(o, "long", "sleep 600"),
        lambda o: task_info(o, "short", WAIT_FOR_GO),
    )
    await follow(scheduler, "long", until="TASK_RUNNING")
    await follow(scheduler, "short", until="TASK_RUNNING")
    short = first.agent.find(scheduler.framework_id, "short")
    long = first.agent.find(scheduler.framework_id, "long")
    assert short is not None and long is not None
    launcher_pid = long.process.pid

    # The agent goes away without killing anything; "short" ends meanwhile.
    await first.stop(kill_tasks=False)
    os.kill(launcher_pid, 0)  # still running
    (short.sandbox / "go").touch()
    await until(lambda: (short.run_dir / "status").exists(), what="the launcher's record")

    second = await agent_factory(work_dir=work_dir)
    assert second.agent.agent_id == agent_id
    recovered = second.agent.find(scheduler.framework_id, "long")
    assert recovered is not None and recovered.recovered
    assert recovered.process.pid == launcher_pid

    # The task that ended while no agent ran reports how it ended, once.
    finished = await follow(scheduler, "short")
    assert states(finished) == ["TASK_FINISHED"]
    assert finished[-1]["message"] == "Command exited with status 0"

    # The re-attached one is still killable through the master.
    kill = {"type": "KILL", "kill": {"task_id": {"value": "long"}, "agent_id": {"value": agent_id}}}
    assert await scheduler.call(kill) == 202
    killed = await follow(scheduler, "long")
    assert killed[-1]["state"] == "TASK_KILLED"
    await until(lambda: ended(launcher_pid), what="the launcher to exit")
    await until(lambda: not list((work_dir / "meta" / "runs").iterdir()), what="checkpoints gone")
    # Nothing more about "short" arrived (no second FINISHED).
    later = []
    while not scheduler.events.empty():
        later.append(scheduler.events.get_nowait())
    assert not [
        e
        for e in later
        if e["type"] == "UPDATE" and e["update"]["status"]["task_id"]["value"] == "short"
    ]


async def test_a_corrupt_checkpoint_is_an_error_naming_the_file(master, agent_factory, tmp_path):
    work_dir = tmp_path / "agent"
    first = await agent_factory(work_dir=work_dir)
    await first.stop()
    run = work_dir / "meta" / "runs" / "c1"
    run.mkdir(parents=True)
    (run / "task.json").write_text("{not json")
    args = agent_args(master.url, str(work_dir))
    with pytest.raises(RecoveryError, match=str(run / "task.json")):
        await agent_cli.start_agent(args, registry=metrics.MetricsRegistry())


async def _agent_process(master_url: str, work_dir: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pymesos_modules",
        "agent",
        f"--master={master_url.removeprefix('http://')}",
        f"--work_dir={work_dir}",
        "--port=0",
        "--resources=cpus:2;mem:512;ports:[31000-31001]",
        "--registration_backoff_factor=0.1",
        "--executor_shutdown_grace_period=1",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_a_task_survives_its_agent_process_being_killed(master, scheduler, tmp_path):
    """The real thing: SIGKILL the agent process; a new one takes the task over."""
    work_dir = tmp_path / "agent"
    pidfile = tmp_path / "pid"
    first = await _agent_process(master.url, work_dir)
    second = None
    try:
        await launch(
            scheduler, lambda o: task_info(o, "survivor", f"echo $$ > {pidfile}; exec sleep 600")
        )
        await follow(scheduler, "survivor", until="TASK_RUNNING")
        await until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the pid")
        pid = int(pidfile.read_text())
        (agent_id,) = master.master.agents

        first.send_signal(signal.SIGKILL)
        await first.wait()
        await until(lambda: not master.master.agents[agent_id].active, what="the agent lost")
        assert not ended(pid)  # the task outlived its agent

        second = await _agent_process(master.url, work_dir)
        await until(lambda: master.master.agents[agent_id].active, what="re-registration")
        assert list(master.master.agents) == [agent_id]
        task = master.master.frameworks[scheduler.framework_id].tasks["survivor"]
        assert str(task.state) == "TASK_RUNNING"

        kill = {
            "type": "KILL",
            "kill": {"task_id": {"value": "survivor"}, "agent_id": {"value": agent_id}},
        }
        assert await scheduler.call(kill) == 202
        assert (await follow(scheduler, "survivor"))[-1]["state"] == "TASK_KILLED"
        await until(lambda: ended(pid), what="the task to be gone")
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
