"""The agent-side module kinds called at Mesos' moments, through Python test modules
(tests/support/agent_modules.py) and the bundled native anonymous module."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.agent_tasks import (
    follow,
    holds_revocable_cpus,
    launch,
    python_modules,
    revocable_cpus,
    steady_and_spare,
    task_info,
    until,
)
from support.scheduler import REVOCABLE, Scheduler

from pymesos_modules.errors import ModuleError


def isolator(agent, name: str) -> Any:
    return next(n.module for n in agent.agent.modules.isolators if n.name == name)


async def test_isolator_environment_rlimits_usage_and_call_order(agent_factory, scheduler, session):
    running = await agent_factory(
        modules=python_modules(("EnvIsolator", "env", {"value": "yes"})), isolation="env"
    )
    command = "echo $ISOLATED; ulimit -n; while [ ! -e go ]; do sleep 0.05; done"
    await launch(scheduler, lambda o: task_info(o, "iso", command, cpus=0.5, mem=64))
    await follow(scheduler, "iso", until="TASK_RUNNING")
    async with session.get(f"{running.url}/monitor/statistics") as response:
        assert response.status == 200
        (entry,) = await response.json()
    assert entry["executor_id"] == "iso"
    assert entry["framework_id"] == scheduler.framework_id
    stats = entry["statistics"]
    assert stats["cpus_user_time_secs"] == 1.5
    assert stats["processes"] == 1.0
    assert stats["cpus_limit"] == 0.5
    assert stats["mem_limit_bytes"] == 64 * 1024 * 1024
    assert "timestamp" in stats

    container = running.agent.find(scheduler.framework_id, "iso")
    (container.sandbox / "go").touch()
    assert (await follow(scheduler, "iso"))[-1]["state"] == "TASK_FINISHED"
    assert (container.sandbox / "stdout").read_text() == "yes\n64\n"
    calls = [c[0] for c in isolator(running, "env").calls]
    assert calls == ["prepare", "isolate", "update", "watch-exit", "cleanup"]
    assert isolator(running, "env").calls[3][1] == 0  # raw wait status of exit 0


async def test_isolators_setting_one_variable_differently_fail_the_task(agent_factory, scheduler):
    await agent_factory(
        modules=python_modules(("EnvIsolator", "env", {}), ("ClashingIsolator", "clash", {})),
        isolation="env,clash",
    )
    await launch(scheduler, lambda o: task_info(o, "clash", "true"))
    final = (await follow(scheduler, "clash"))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "'env' and 'clash' both set ISOLATED" in final["message"]


async def test_isolator_prepare_failure_fails_the_task_with_the_module_message(
    agent_factory, scheduler
):
    running = await agent_factory(
        modules=python_modules(("BaseIsolator", "first", {}), ("FailingIsolator", "failing", {})),
        isolation="first,failing",
    )
    await launch(scheduler, lambda o: task_info(o, "prep", "echo must not run > ran"))
    statuses = await follow(scheduler, "prep")
    final = statuses[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert final["source"] == "SOURCE_SLAVE"
    assert "module 'failing' prepare() failed: no cgroup for you" in final["message"]
    # Both prepared isolators are cleaned up; the command never ran.
    assert [c[0] for c in isolator(running, "first").calls] == ["prepare", "cleanup"]
    assert [c[0] for c in isolator(running, "failing").calls] == ["prepare", "cleanup"]
    await until(lambda: running.agent.completed, what="the acknowledged task to be forgotten")
    assert not (running.agent.completed[-1].sandbox / "ran").exists()


async def test_limitation_reported_by_watch_fails_the_task(agent_factory, scheduler):
    await agent_factory(
        modules=python_modules(("FileLimitIsolator", "limit", {})), isolation="limit"
    )
    await launch(scheduler, lambda o: task_info(o, "hog", "touch over; sleep 600"))
    final = (await follow(scheduler, "hog"))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert final["source"] == "SOURCE_SLAVE"
    assert final["message"] == "Memory limit exceeded: 80 MB used of 64 MB"


async def test_qos_controller_preempts_only_revocable_tasks(master, agent_factory, session):
    running = await agent_factory(
        modules=python_modules(
            ("PreemptEverything", "preempt", {}),
            ("FixedEstimator", "fixed", {"cpus": "2", "mem": "256"}),
        ),
        qos_controller="preempt",
        qos_correction_interval_min=0.1,
        resource_estimator="fixed",
        oversubscribed_resources_interval=0.1,
    )
    async with steady_and_spare(master.url, session) as scheduler:
        final = (await follow(scheduler, "spare"))[-1]
        assert final["state"] == "TASK_KILLED"
        assert final["reason"] == "REASON_EXECUTOR_PREEMPTED"
        assert final["source"] == "SOURCE_SLAVE"
        assert final["message"] == "load too high"
        agent = running.agent
        steady = agent.find(scheduler.framework_id, "steady")
        controller = agent.modules.qos_controller.module
        rounds = controller.rounds
        # The controller keeps naming the steady task in later rounds; the agent keeps refusing.
        await until(lambda: controller.rounds >= rounds + 3, what="more QoS rounds")
        assert steady.running and not steady.kill_requested
        assert agent.counters["qos_corrections"] == 1


async def test_resource_estimator_makes_revocable_offers(master, agent_factory, session):
    running = await agent_factory(
        modules=python_modules(("FixedEstimator", "fixed", {"cpus": "2"})),
        resource_estimator="fixed",
        oversubscribed_resources_interval=0.1,
    )
    framework = Scheduler(master.url, session)
    try:
        await framework.subscribe("revocable", capabilities=REVOCABLE)
        event = await framework.next("OFFERS", 20, where=lambda e: revocable_cpus(e) > 0)
        assert revocable_cpus(event) == 2
        estimator = running.agent.modules.resource_estimator.module
        assert estimator.seen[0].total["cpus"] == 4
        assert running.agent.counters["oversubscribed_updates"] == 1  # sent once: unchanged since
    finally:
        await framework.close()


async def test_oversubscribed_resources_count_what_revocable_tasks_hold(
    master, agent_factory, session
):
    """As a Mesos agent, UPDATE_OVERSUBSCRIBED reports the estimate plus the revocable
    resources tasks hold: the master offers the whole estimate besides the tasks' share."""
    running = await agent_factory(
        modules=python_modules(("FixedEstimator", "fixed", {"cpus": "2", "mem": "256"})),
        resource_estimator="fixed",
        oversubscribed_resources_interval=0.1,
    )
    framework = Scheduler(master.url, session)
    try:
        await framework.subscribe("revocable", capabilities=REVOCABLE)
        spare = lambda o: task_info(o, "spare", "sleep 600", cpus=0.5, revocable=True)  # noqa: E731
        await launch(framework, spare, where=holds_revocable_cpus)
        # A pool of just the estimate (2) would leave 1.5 cpus to offer besides the task.
        event = await framework.next("OFFERS", 20, where=lambda e: revocable_cpus(e) == 2.0)
        assert revocable_cpus(event) == 2.0
        assert running.agent.oversubscribed_total() == {"cpus": 2.5, "mem": 320.0}
        assert running.agent.snapshot_metrics()["slave/cpus_revocable_total"] == 2.5
    finally:
        await framework.close()


async def test_hooks_decorate_labels_environment_status_resources_and_attributes(
    master, agent_factory, scheduler
):
    running = await agent_factory(
        modules=python_modules(
            ("TaggingHook", "hook_a", {"tag": "a"}),
            ("BrokenHook", "broken", {}),
            ("TaggingHook", "hook_b", {"tag": "b"}),
        ),
        hooks="hook_a,broken,hook_b",
        attributes="rack:r1",
    )
    agent = running.agent
    registered = master.master.agents[agent.agent_id]
    assert registered.resources.scalars["cpus"] == 2  # 4, minus one per hook
    assert registered.attributes == {"rack": "r1", "a": "on", "b": "on"}

    await launch(scheduler, lambda o: task_info(o, "hooked", "echo $HOOKS"))
    statuses = await follow(scheduler, "hooked")
    assert statuses[-1]["state"] == "TASK_FINISHED"
    await until(lambda: agent.completed, what="the acknowledged task to be forgotten")
    container = agent.completed[-1]
    assert (container.sandbox / "stdout").read_text() == "a;b;\n"
    labels = container.info["labels"]["labels"]
    assert labels == [{"key": "a", "value": "agent-host"}, {"key": "b", "value": "agent-host"}]
    for status in statuses:
        assert status["labels"]["labels"] == [
            {"key": "a", "value": status["state"]},
            {"key": "b", "value": status["state"]},
        ]


async def test_anonymous_native_module_lives_as_long_as_the_agent(agent_factory, session):
    config = json.dumps({"libraries": [{"name": "pmm_hello", "modules": ["org_pymesos_Hello"]}]})
    running = await agent_factory(modules=config)
    async with session.get(f"{running.url}/metrics/snapshot") as response:
        snapshot = await response.json()
    assert snapshot["hello/created"] == 1.0
    assert snapshot["slave/registered"] == 1.0
    assert snapshot["slave/cpus_total"] == 4.0
    live = snapshot["hello/instances"]
    registry = running.agent.metrics
    await running.stop()
    assert registry.snapshot()["hello/instances"] == live - 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"isolation": "nope"}, "--isolation: unknown module 'nope'"),
        ({"hooks": "nope"}, "--hooks: unknown module 'nope'"),
        ({"qos_controller": "nope"}, "--qos_controller: unknown module 'nope'"),
        (
            {"modules": python_modules(("FixedEstimator", "fixed", {})), "isolation": "fixed"},
            "needs a module of kind 'isolator'",
        ),
        (
            {"modules": '{"libraries": [{"name": "no_such_lib", "modules": ["x"]}]}'},
            "libno_such_lib.so",
        ),
    ],
)
async def test_module_failures_stop_the_agent_from_starting(master, tmp_path, flags, message):
    from support.agent_tasks import agent_args

    from pymesos_modules import metrics
    from pymesos_modules.agent import cli as agent_cli

    with pytest.raises(ModuleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await agent_cli.start_agent(
            agent_args(master.url, str(tmp_path), **flags), registry=metrics.MetricsRegistry()
        )
    assert master.master.agents == {}
