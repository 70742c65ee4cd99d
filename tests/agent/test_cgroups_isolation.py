"""`--isolation=cgroups/cpu,cgroups/mem` on real tasks of a real agent, on real cgroups.

Each test has a --cgroups_root of its own (tests share the machine's hierarchies).
The same tests run inside a real kernel with cgroup v2 too
(tests/isolator/test_cgroups_vm.py): ``LAYOUT`` is what the machine has.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.agent_tasks import follow, launch, restarted, task_info, until
from support.cgroup_roots import LAYOUT, folders, unique_root
from support.executor_tasks import waiting_on_executor

from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.errors import ModuleError

MB = 1024 * 1024
PY = sys.executable
# -S: the tasks need no site-packages (and start several seconds sooner in the VM)
BIG = f"{PY} -S -c 'data = b\"x\" * (600 << 20)'"
LEAK = (
    f"{PY} -S -c 'import time\nx = []\nwhile True: x.append(b\"y\" * (4 << 20)); time.sleep(0.02)'"
)
BUSY = f"{PY} -S -c 'while True: pass'"


@pytest.fixture
def root():
    with unique_root() as name:
        yield name


@pytest.fixture
def cgroups_agent(root, agent_factory):
    """``await cgroups_agent(**flags)``: an agent isolating with cgroups under ``root``."""

    async def make(**flags):
        flags.setdefault("isolation", "cgroups/cpu,cgroups/mem")
        return await agent_factory(cgroups_root=root, **flags)

    return make


@pytest.mark.parametrize("command", [BIG, LEAK], ids=["600MB-at-once", "slow-leak"])
async def test_a_task_over_its_memory_fails_with_the_mesos_reason(
    cgroups_agent, scheduler, root, command
):
    running = await cgroups_agent(isolation="cgroups/mem")
    await launch(scheduler, lambda o: task_info(o, "hog", command, cpus=0.5, mem=64))
    final = (await follow(scheduler, "hog", timeout=120))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert final["source"] == "SOURCE_SLAVE"
    assert "Memory limit exceeded: Requested: 64MB Maximum Used: 64MB" in final["message"]
    container_id = final["container_status"]["container_id"]["value"]
    await until(lambda: running.agent.find(scheduler.framework_id, "hog") is None)
    assert not any(p.exists() for p in folders(root, container_id))  # cleaned up


async def test_a_well_behaved_task_runs_in_its_cgroups_untouched_and_measured(
    cgroups_agent, scheduler, session, root
):
    running = await cgroups_agent(cgroups_enable_cfs=True)
    # A child of the task's shell records its cgroups: it was born inside them.
    command = "cat /proc/self/cgroup > cgroups; while [ ! -e go ]; do sleep 0.05; done"
    await launch(scheduler, lambda o: task_info(o, "calm", command, cpus=0.5, mem=64))
    await follow(scheduler, "calm", until="TASK_RUNNING")
    container = running.agent.find(scheduler.framework_id, "calm")
    cid = container.container_id
    record = container.sandbox / "cgroups"  # the shell makes it empty, then cat fills it
    await until(
        lambda: record.exists() and LAYOUT.in_cgroups(record.read_text(), root, cid),
        what="its cgroups",
    )
    assert LAYOUT.cfs(LAYOUT.folder("cpu", root, cid)) == (50000, 100000)
    assert LAYOUT.hard_limit(LAYOUT.folder("memory", root, cid)) == 64 * MB

    async with session.get(f"{running.url}/monitor/statistics") as response:
        assert response.status == 200
        stats = (await response.json())[0]["statistics"]
    assert stats["mem_limit_bytes"] == 64 * MB and stats["mem_total_bytes"] > 0
    assert stats["cpus_limit"] == 0.5 and "cpus_nr_periods" in stats
    assert stats["processes"] >= 1
    (container.sandbox / "go").touch()
    final = (await follow(scheduler, "calm"))[-1]
    assert final["state"] == "TASK_FINISHED", final
    await until(lambda: not any(p.exists() for p in folders(root, cid)), what="cgroup removal")


async def test_a_busy_task_under_half_a_cpu_with_cfs_uses_at_most_half_a_core(
    cgroups_agent, scheduler, root
):
    running = await cgroups_agent(cgroups_enable_cfs=True)
    await launch(scheduler, lambda o: task_info(o, "busy", BUSY, cpus=0.5, mem=64))
    await follow(scheduler, "busy", until="TASK_RUNNING")
    container = running.agent.find(scheduler.framework_id, "busy")

    def usage() -> dict:
        return running.agent.containerizer.usage(container)

    # A window of 20 CFS periods (100 ms each), counted by the kernel.
    await until(lambda: usage().get("cpus_nr_periods", 0) >= 3, timeout=120)
    before = usage()
    await until(lambda: usage()["cpus_nr_periods"] - before["cpus_nr_periods"] >= 20, timeout=120)
    after = usage()
    used = sum(after[k] - before[k] for k in ("cpus_user_time_secs", "cpus_system_time_secs"))
    share = used / ((after["cpus_nr_periods"] - before["cpus_nr_periods"]) * 0.1)
    assert 0.1 <= share <= 0.6, share
    running.agent.containerizer.kill(container, grace=0.0)
    assert (await follow(scheduler, "busy"))[-1]["state"] == "TASK_KILLED"


async def test_an_executor_s_cgroups_follow_the_tasks_it_runs(cgroups_agent, scheduler, root):
    running = await cgroups_agent()
    # Executor: cpus 0.1, mem 32; each task: cpus 0.2, mem 32 (support/executor_tasks.py).
    await waiting_on_executor(scheduler, "one", "two")
    executor = running.agent.executor_room.find(scheduler.framework_id, "pyexec")
    memory = LAYOUT.folder("memory", root, executor.container.container_id)
    cpu = LAYOUT.folder("cpu", root, executor.container.container_id)
    await until(lambda: LAYOUT.hard_limit(memory) == 96 * MB, what="96 MB")
    assert LAYOUT.soft_limit(memory) == 96 * MB
    assert LAYOUT.weight(cpu) == LAYOUT.weight_for(0.5)
    executor_pid = executor.container.process.pid
    assert str(executor_pid) in (memory / "cgroup.procs").read_text().split()
    kill = {"type": "KILL", "kill": {"task_id": {"value": "one"}}}
    assert await scheduler.call(kill) == 202, scheduler.last_text
    assert (await follow(scheduler, "one"))[-1]["state"] == "TASK_KILLED"
    # As Mesos: the soft limit and the shares follow; the hard limit never drops.
    await until(lambda: LAYOUT.soft_limit(memory) == 64 * MB, what="64 MB")
    assert LAYOUT.hard_limit(memory) == 96 * MB
    assert LAYOUT.weight(cpu) == LAYOUT.weight_for(0.3)


async def test_a_restarted_agent_keeps_a_checkpointed_executor_in_its_cgroups(
    root, agent_factory, tmp_path, scheduler
):
    flags = {"isolation": "cgroups/cpu,cgroups/mem", "cgroups_root": root}
    first = await agent_factory(work_dir=tmp_path / "a", **flags)
    await waiting_on_executor(scheduler, "t")
    old = first.agent.executor_room.find(scheduler.framework_id, "pyexec")
    second = await restarted(agent_factory, first, **flags)
    executor = second.agent.executor_room.find(scheduler.framework_id, "pyexec")
    await until(lambda: executor.state == "RUNNING", what="the executor to subscribe again")
    memory = LAYOUT.folder("memory", root, old.container.container_id)
    assert str(old.container.process.pid) in (memory / "cgroup.procs").read_text().split()
    assert [n.name for n in executor.container.prepared] == ["cgroups/cpu", "cgroups/mem"]


async def test_an_oom_kill_while_no_agent_watched_is_reported_by_the_next_agent(
    root, agent_factory, tmp_path, scheduler
):
    flags = {"isolation": "cgroups/mem", "cgroups_root": root}
    first = await agent_factory(work_dir=tmp_path / "a", **flags)
    command = f"while [ ! -e go ]; do sleep 0.05; done; {BIG}"
    await launch(scheduler, lambda o: task_info(o, "late", command, mem=64))
    await follow(scheduler, "late", until="TASK_RUNNING")
    container = first.agent.find(scheduler.framework_id, "late")
    await first.stop(kill_tasks=False)
    (container.sandbox / "go").touch()  # the task meets its limit with no agent running
    await until(lambda: (container.run_dir / "termination").exists(), timeout=120)
    await agent_factory(work_dir=tmp_path / "a", **flags)
    final = (await follow(scheduler, "late", timeout=60))[-1]
    assert final["state"] == "TASK_FAILED", final
    assert final["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert "Requested: 64MB" in final["message"]
    await until(lambda: not any(p.exists() for p in folders(root, container.container_id)))


async def test_a_restarted_agent_keeps_its_tasks_cgroups_and_destroys_orphans(
    cgroups_agent, scheduler, root, tmp_path
):
    work_dir = tmp_path / "agent"
    first = await cgroups_agent(work_dir=work_dir)
    await launch(scheduler, lambda o: task_info(o, "kept", "exec sleep 600", mem=64))
    await follow(scheduler, "kept", until="TASK_RUNNING")
    kept = first.agent.find(scheduler.framework_id, "kept").container_id
    await first.stop(kill_tasks=False)
    # What a crashed agent left: a cgroup no checkpointed task owns, with a process in it.
    orphan = LAYOUT.folder("memory", root, "orphan")
    orphan.mkdir()
    process = subprocess.Popen(
        ["sleep", "600"],
        preexec_fn=lambda: (orphan / "cgroup.procs").write_text("0"),
        start_new_session=True,
    )
    second = await cgroups_agent(work_dir=work_dir)
    assert process.wait(timeout=60) == -9
    assert not orphan.exists()
    assert all(p.exists() for p in folders(root, kept))
    container = second.agent.find(scheduler.framework_id, "kept")
    assert [n.name for n in container.prepared] == ["cgroups/cpu", "cgroups/mem"]
    second.agent.containerizer.kill(container, grace=0.0)
    assert (await follow(scheduler, "kept"))[-1]["state"] == "TASK_KILLED"
    await until(lambda: not any(p.exists() for p in folders(root, kept)), what="cgroup removal")


async def test_an_agent_without_the_controllers_fails_to_start_naming_the_isolator(
    master, tmp_path
):
    from support.agent_tasks import agent_args

    args = agent_args(
        master.url,
        str(tmp_path / "agent"),
        isolation="cgroups/mem",
        cgroups_hierarchy=str(tmp_path),
    )
    with pytest.raises(
        ModuleError, match=r"^--isolation=cgroups/mem: .* offers the memory controller"
    ):
        await agent_cli.start_agent(args)


def test_the_agent_command_refuses_read_only_cgroups_naming_the_isolator(tmp_path):
    remount = " && ".join(f"mount -o remount,bind,ro {m}" for m in LAYOUT.distinct_mounts())
    agent = [
        PY, "-P", "-m", "pymesos_modules", "agent", "--master=127.0.0.1:1",
        f"--work_dir={tmp_path / 'agent'}", "--isolation=cgroups/cpu,cgroups/mem",
    ]  # fmt: skip
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f'{remount} && exec "$@"', "sh", *agent],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "--isolation=cgroups/cpu: " in done.stderr and "not writable" in done.stderr, done.stderr
    assert "Read-only file system" in done.stderr
    assert not Path(tmp_path / "agent").exists() or not any((tmp_path / "agent").iterdir())
