"""Command tasks end to end: a real master, a real agent, a plain-HTTP framework."""

from __future__ import annotations

from pathlib import Path

from support.agent_tasks import follow, launch, task_info


def sandbox_of(agent, task_id: str) -> Path:
    containers = [
        c for c in agent.agent._all_containers() + agent.agent.completed if c.task_id == task_id
    ]
    assert containers, f"agent knows no task {task_id}"
    return containers[-1].sandbox


async def test_shell_task_runs_and_its_output_lands_in_the_sandbox(agent, scheduler):
    await launch(
        scheduler, lambda o: task_info(o, "t1", "echo hello from $MESOS_TASK_ID; echo oops >&2")
    )
    statuses = await follow(scheduler, "t1")
    assert [s["state"] for s in statuses] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert statuses[-1]["message"] == "Command exited with status 0"
    sandbox = sandbox_of(agent, "t1")
    work_dir = Path(agent.agent.flags.work_dir).resolve()
    framework_id = scheduler.framework_id
    relative = sandbox.relative_to(work_dir).parts
    assert relative[:6] == (
        "slaves",
        agent.agent.agent_id,
        "frameworks",
        framework_id,
        "executors",
        "t1",
    )
    assert relative[6] == "runs"
    assert (sandbox / "stdout").read_text() == "hello from t1\n"
    assert (sandbox / "stderr").read_text() == "oops\n"
    assert (sandbox.parent / "latest").resolve() == sandbox
