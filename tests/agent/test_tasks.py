"""Command tasks end to end: a real master, a real agent, a plain-HTTP framework."""

from __future__ import annotations

from pathlib import Path

from support.agent_tasks import follow, launch, task_info, until


def sandbox_of(agent, task_id: str) -> Path:
    containers = [
        c for c in agent.agent.all_containers() + agent.agent.completed if c.task_id == task_id
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


async def test_task_environment_has_mesos_variables_and_ports(agent, scheduler):
    command = {
        "shell": True,
        "value": "env > env.txt",
        "environment": {"variables": [{"name": "GREETING", "value": "hi there"}]},
    }
    await launch(scheduler, lambda o: task_info(o, "env", command, ports=(31002, 31003)))
    assert (await follow(scheduler, "env"))[-1]["state"] == "TASK_FINISHED"
    sandbox = sandbox_of(agent, "env")
    lines = (sandbox / "env.txt").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    a = agent.agent
    assert env["MESOS_SANDBOX"] == str(sandbox) == env["MESOS_DIRECTORY"]
    assert env["MESOS_TASK_ID"] == "env" == env["MESOS_EXECUTOR_ID"]
    assert env["MESOS_FRAMEWORK_ID"] == scheduler.framework_id
    assert env["MESOS_AGENT_ID"] == a.agent_id == env["MESOS_SLAVE_ID"]
    assert env["MESOS_AGENT_ENDPOINT"] == a.endpoint
    assert env["MESOS_AGENT_ENDPOINT"].endswith(f":{a.flags.port}") and a.flags.port != 0
    assert env["MESOS_CONTAINER_ID"] == sandbox.name
    assert env["HOST"] == "agent-host"
    assert (env["PORT0"], env["PORT1"], env["PORT"], env["PORTS"]) == (
        "31002",
        "31003",
        "31002",
        "31002,31003",
    )
    assert env["GREETING"] == "hi there"
    assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "3secs"


async def test_argv_command_without_a_shell(agent, scheduler):
    command = {
        "shell": False,
        "value": "/bin/echo",
        "arguments": ["echo", "$HOME", "two words"],
    }
    await launch(scheduler, lambda o: task_info(o, "argv", command))
    assert (await follow(scheduler, "argv"))[-1]["state"] == "TASK_FINISHED"
    # No shell: $HOME is not expanded and "two words" stays one argument.
    assert (sandbox_of(agent, "argv") / "stdout").read_text() == "$HOME two words\n"


async def test_failing_command_reports_its_exit_code(agent, scheduler):
    await launch(scheduler, lambda o: task_info(o, "bad", "exit 3"))
    final = (await follow(scheduler, "bad"))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["message"] == "Command exited with status 3"
    assert final["reason"] == "REASON_COMMAND_EXECUTOR_FAILED"
    assert final["source"] == "SOURCE_EXECUTOR"


async def test_command_killed_by_a_signal_says_which(agent, scheduler):
    await launch(scheduler, lambda o: task_info(o, "segv", "kill -SEGV $$"))
    final = (await follow(scheduler, "segv"))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["message"] == "Command terminated with signal SIGSEGV (11)"


async def test_missing_program_fails_the_launch(agent, scheduler):
    command = {"shell": False, "value": "/no/such/program"}
    await launch(scheduler, lambda o: task_info(o, "nope", command))
    final = (await follow(scheduler, "nope"))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "/no/such/program" in final["message"]
    assert final["source"] == "SOURCE_SLAVE"


async def test_kill_sends_sigterm_then_the_task_is_killed(agent, scheduler):
    command = "trap 'echo got TERM; exit 0' TERM; touch ready; while :; do sleep 0.05; done"
    await launch(scheduler, lambda o: task_info(o, "k", command))
    await follow(scheduler, "k", until="TASK_RUNNING")
    await until(lambda: (sandbox_of(agent, "k") / "ready").exists(), what="the trap")
    assert await scheduler.call({"type": "KILL", "kill": {"task_id": {"value": "k"}}}) == 202
    final = (await follow(scheduler, "k"))[-1]
    assert final["state"] == "TASK_KILLED"
    assert (sandbox_of(agent, "k") / "stdout").read_text() == "got TERM\n"


async def test_kill_escalates_to_sigkill_after_the_grace_period(agent, scheduler):
    policy = {"grace_period": {"nanoseconds": 300_000_000}}
    command = "trap 'echo ignoring TERM' TERM; touch ready; while :; do sleep 0.05; done"
    await launch(scheduler, lambda o: task_info(o, "stubborn", command, kill_policy=policy))
    await follow(scheduler, "stubborn", until="TASK_RUNNING")
    await until(lambda: (sandbox_of(agent, "stubborn") / "ready").exists(), what="the trap")
    container = agent.agent.find(scheduler.framework_id, "stubborn")
    pid = container.process.pid
    assert await scheduler.call({"type": "KILL", "kill": {"task_id": {"value": "stubborn"}}}) == 202
    final = (await follow(scheduler, "stubborn"))[-1]
    assert final["state"] == "TASK_KILLED"
    assert container.returncode == -9  # SIGKILL, after the trap ignored SIGTERM
    assert container.kill_grace == 0.3
    assert "ignoring TERM" in (container.sandbox / "stdout").read_text()
    with_pid = Path(f"/proc/{pid}")
    assert not with_pid.exists()


async def test_nothing_the_task_forked_outlives_it(agent, scheduler):
    await launch(
        scheduler, lambda o: task_info(o, "fork", "sleep 600 & echo $! > child.pid; exit 0")
    )
    assert (await follow(scheduler, "fork"))[-1]["state"] == "TASK_FINISHED"
    child = int((sandbox_of(agent, "fork") / "child.pid").read_text())

    def gone() -> bool:
        try:
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        return state == "Z"  # reaped by init soon; a zombie runs nothing

    await until(gone, what="the forked child to be killed")


async def test_kill_of_an_unknown_task_is_answered_lost(agent, scheduler):
    a = agent.agent
    a.kill_task(scheduler.framework_id, "ghost")
    (status,) = a.updates.unacknowledged(scheduler.framework_id, "ghost")
    assert status["state"] == "TASK_LOST"
    # The master knows no such task, so it acknowledges the update itself.
    await until(lambda: a.updates.pending() == 0, what="the master's own acknowledgement")


async def test_ids_that_could_leave_the_work_dir_are_refused(agent, scheduler):
    a = agent.agent
    a.run_task(scheduler.framework_id, {}, {"task_id": {"value": "../../x"}, "command": {}})
    (status,) = a.updates.unacknowledged(scheduler.framework_id, "../../x")
    assert status["state"] == "TASK_FAILED"
    assert status["reason"] == "REASON_TASK_INVALID"
    assert a.find(scheduler.framework_id, "../../x") is None
    assert not (a.work_dir.parent / "x").exists()


async def test_removed_framework_has_its_tasks_killed_and_forgotten(agent, master, session):
    from support.scheduler import Scheduler

    framework = Scheduler(master.url, session)
    await framework.subscribe()  # failover_timeout 0: removed when its stream closes
    await launch(framework, lambda o: task_info(o, "orphaned", "exec sleep 600"))
    await follow(framework, "orphaned", until="TASK_RUNNING")
    a = agent.agent
    container = a.find(framework.framework_id, "orphaned")
    await framework.close()
    # The master kills it; nobody acknowledges for the gone framework but the master itself.
    await until(lambda: not a.containers, what="the task to be killed and forgotten")
    assert container.returncode is not None and container.kill_requested
    assert a.updates.pending() == 0


async def test_shutdown_framework_and_messages_from_the_master(agent, scheduler):
    a = agent.agent
    await launch(scheduler, lambda o: task_info(o, "s1", "exec sleep 600"))
    await follow(scheduler, "s1", until="TASK_RUNNING")
    fw = {"value": scheduler.framework_id}
    message = {"framework_id": fw, "executor_id": {"value": "s1"}, "data": "aGk="}
    assert (
        a.registration.handle({"type": "FRAMEWORK_MESSAGE", "framework_message": message}) is None
    )
    assert a.registration.handle({"type": "NO_SUCH_EVENT"}) is None
    a.registration.handle(
        {"type": "SHUTDOWN_FRAMEWORK", "shutdown_framework": {"framework_id": fw}}
    )
    final = (await follow(scheduler, "s1"))[-1]
    assert final["state"] == "TASK_KILLED"
    assert final["message"] == "framework shut down"


async def test_state_flags_and_health_endpoints(agent, scheduler, session):
    await launch(scheduler, lambda o: task_info(o, "st", "exec sleep 600"))
    await follow(scheduler, "st", until="TASK_RUNNING")
    async with session.get(f"{agent.url}/state") as response:
        state = await response.json()
    assert state["id"] == agent.agent.agent_id
    assert state["registered"] is True
    assert state["resources"]["cpus"] == 4
    assert state["resources"]["ports"] == "[31000-31009]"
    (framework,) = state["frameworks"]
    (executor,) = framework["executors"]
    assert executor["id"] == "st"
    assert executor["tasks"][0]["state"] == "TASK_RUNNING"
    assert executor["directory"] == str(agent.agent.find(scheduler.framework_id, "st").sandbox)
    async with session.get(f"{agent.url}/flags") as response:
        flags = (await response.json())["flags"]
    assert flags["work_dir"] == str(agent.agent.flags.work_dir)
    async with session.get(f"{agent.url}/health") as response:
        assert response.status == 200
    async with session.get(f"{agent.url}/metrics/snapshot") as response:
        snapshot = await response.json()
    assert snapshot["slave/tasks_running"] == 1
    assert snapshot["slave/cpus_used"] == 0.5
