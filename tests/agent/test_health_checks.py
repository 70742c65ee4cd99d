"""Health checks of command tasks, with Mesos' semantics (healthy updates, kill when unhealthy)."""

from __future__ import annotations

import sys

from support.agent_tasks import follow, launch, task_info

FAST = {"delay_seconds": 0, "interval_seconds": 0.1, "timeout_seconds": 5}


async def test_a_command_check_reports_health_and_kills_an_unhealthy_task(agent, scheduler):
    check = {
        "type": "COMMAND",
        "command": {"value": "test -e healthy"},
        "grace_period_seconds": 30,  # a check before the touch is not counted
        "consecutive_failures": 2,
        **FAST,
    }
    command = "touch healthy; exec sleep 600"
    await launch(scheduler, lambda o: task_info(o, "t", command, health_check=check))
    statuses = await follow(scheduler, "t", until="TASK_RUNNING")
    statuses += await follow(scheduler, "t", until="TASK_RUNNING")
    healthy = statuses[-1]
    assert healthy["healthy"] is True
    assert healthy["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    container = agent.agent.find(scheduler.framework_id, "t")
    (container.sandbox / "healthy").unlink()
    statuses = await follow(scheduler, "t")
    unhealthy = [s for s in statuses if s["state"] == "TASK_RUNNING"]
    assert unhealthy and all(s["healthy"] is False for s in unhealthy)
    assert statuses[-1]["state"] == "TASK_KILLED"
    assert statuses[-1]["healthy"] is False
    assert "2 failed health checks" in statuses[-1]["message"]


async def test_http_and_tcp_checks_see_a_serving_task(agent, scheduler):
    check = {"type": "HTTP", "http": {"port": 31005, "path": "/"}, **FAST}
    tcp = {"type": "TCP", "tcp": {"port": 31005}, **FAST}
    command = f"exec {sys.executable} -m http.server 31005 --bind 127.0.0.1"
    await launch(
        scheduler,
        lambda o: task_info(o, "web", command, ports=(31005, 31005), health_check=check, check=tcp),
    )
    statuses = await follow(scheduler, "web", until="TASK_RUNNING")
    while not statuses[-1].get("healthy") or "tcp" not in statuses[-1].get("check_status", {}):
        statuses += await follow(scheduler, "web", until="TASK_RUNNING")
    # Before the server listens the TCP check may fail once; it ends up connecting.
    while statuses[-1]["check_status"]["tcp"] != {"succeeded": True}:
        statuses += await follow(scheduler, "web", until="TASK_RUNNING")
    assert statuses[-1]["healthy"] is True


async def test_a_bad_health_check_fails_the_task_naming_the_field(agent, scheduler):
    check = {"type": "TCP", "tcp": {"port": "nope"}}
    await launch(scheduler, lambda o: task_info(o, "t", "true", health_check=check))
    statuses = await follow(scheduler, "t")
    assert statuses[-1]["state"] == "TASK_FAILED"
    assert statuses[-1]["reason"] == "REASON_TASK_INVALID"
    assert "health_check.tcp.port" in statuses[-1]["message"]


async def test_a_general_check_reports_each_new_result_and_never_kills(agent, scheduler):
    check = {
        "type": "COMMAND",
        "command": {"command": {"value": "exit $(cat code)"}},
        **FAST,
    }
    command = "echo 0 > code; exec sleep 600"
    await launch(scheduler, lambda o: task_info(o, "t", command, check=check))
    statuses = await follow(scheduler, "t", until="TASK_RUNNING")
    # As Mesos: before the check's first result, each status carries an empty one.
    assert [s["state"] for s in statuses] == ["TASK_STARTING", "TASK_RUNNING"]
    assert all(s["check_status"] == {"type": "COMMAND", "command": {}} for s in statuses)
    while statuses[-1].get("check_status", {}).get("command", {}).get("exit_code") != 0:
        statuses += await follow(scheduler, "t", until="TASK_RUNNING")
    assert statuses[-1]["reason"] == "REASON_TASK_CHECK_STATUS_UPDATED"
    container = agent.agent.find(scheduler.framework_id, "t")
    (container.sandbox / "code").write_text("3\n")
    statuses = await follow(scheduler, "t", until="TASK_RUNNING")
    assert statuses[-1]["check_status"] == {"type": "COMMAND", "command": {"exit_code": 3}}
    assert container.running and not container.kill_requested  # a check never kills


async def test_each_update_of_a_check_carries_the_latest_result_of_the_other(agent, scheduler):
    """As Mesos' command executor: a check update carries the last ``healthy``, a health
    update the last ``check_status``."""
    health = {
        "type": "COMMAND",
        "command": {"value": "test -e healthy"},
        "grace_period_seconds": 60,
        "consecutive_failures": 1000,  # never killed here
        **FAST,
    }
    check = {"type": "COMMAND", "command": {"command": {"value": "exit $(cat code)"}}, **FAST}
    command = "echo 0 > code; touch healthy; exec sleep 600"
    await launch(scheduler, lambda o: task_info(o, "t", command, health_check=health, check=check))

    async def running_until(done) -> dict:
        while True:
            status = (await follow(scheduler, "t", until="TASK_RUNNING"))[-1]
            if done(status):
                return status

    exit_0 = {"type": "COMMAND", "command": {"exit_code": 0}}
    await running_until(lambda s: s.get("healthy") is True and s.get("check_status") == exit_0)
    container = agent.agent.find(scheduler.framework_id, "t")
    (container.sandbox / "code").write_text("3\n")
    checked = await running_until(lambda s: s.get("reason") == "REASON_TASK_CHECK_STATUS_UPDATED")
    assert checked["check_status"] == {"type": "COMMAND", "command": {"exit_code": 3}}
    assert checked["healthy"] is True
    (container.sandbox / "healthy").unlink()
    unhealthy = await running_until(
        lambda s: s.get("reason") == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    )
    assert unhealthy["healthy"] is False
    assert unhealthy["check_status"] == {"type": "COMMAND", "command": {"exit_code": 3}}
