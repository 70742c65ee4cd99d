"""The bundled native estimator, QoS controller, hooks and anonymous module in a running cluster."""

from __future__ import annotations

import json

from support.agent_tasks import (
    follow,
    launch,
    master_args,
    revocable_cpus,
    steady_and_spare,
    task_info,
    until,
)
from support.scheduler import REVOCABLE, Scheduler

from pymesos_modules.master.cli import start_master


def config(*modules: tuple[str, str, dict[str, str]]) -> str:
    """--modules JSON for bundled (library, module, parameters)."""
    return json.dumps(
        {
            "libraries": [
                {
                    "name": library,
                    "modules": [
                        {"name": name, "parameters": [{"key": k, "value": v} for k, v in p.items()]}
                    ],
                }
                for library, name, p in modules
            ]
        }
    )


async def test_fixed_estimator_makes_revocable_offers(master, agent_factory, session):
    await agent_factory(
        modules=config(
            ("pmm_oversubscription", "org_pymesos_FixedEstimator", {"resources": "cpus:3"})
        ),
        resource_estimator="fixed",
        oversubscribed_resources_interval=0.1,
    )
    framework = Scheduler(master.url, session)
    try:
        await framework.subscribe(capabilities=REVOCABLE)
        event = await framework.next("OFFERS", 20, where=lambda e: revocable_cpus(e) > 0)
        assert revocable_cpus(event) == 3
    finally:
        await framework.close()


async def test_load_controller_preempts_revocable_tasks(master, agent_factory, session, tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.1 0.1 0.1 1/1 1\n")
    params = {"load_threshold_5min": "4", "loadavg_path": str(loadavg)}
    running = await agent_factory(
        modules=config(
            ("pmm_oversubscription", "org_pymesos_LoadQoSController", params),
            ("pmm_oversubscription", "org_pymesos_FixedEstimator", {"resources": "cpus:2;mem:256"}),
        ),
        qos_controller="load",
        qos_correction_interval_min=0.1,
        resource_estimator="fixed",
        oversubscribed_resources_interval=0.1,
    )
    async with steady_and_spare(master.url, session) as scheduler:
        await follow(scheduler, "spare", until="TASK_RUNNING")
        loadavg.write_text("8.0 6.5 2.0 1/1 1\n")
        final = (await follow(scheduler, "spare"))[-1]
        assert final["state"] == "TASK_KILLED"
        assert final["reason"] == "REASON_EXECUTOR_PREEMPTED"
        assert final["message"] == "5-minute load average 6.50 is above 4.00"
        assert running.agent.find(scheduler.framework_id, "steady").running


async def test_example_and_service_discovery_hooks_on_the_agent(agent_factory, scheduler, tmp_path):
    hosts = tmp_path / "hosts"
    running = await agent_factory(
        modules=config(
            ("pmm_hooks", "org_pymesos_ExampleHook", {"tag": "ex"}),
            ("pmm_hooks", "org_pymesos_ServiceDiscovery", {"path": str(hosts)}),
        ),
        hooks="example_hook,service_discovery",
        resources="cpus:4;mem:4096;ports:[31000-31009]",
    )
    agent = running.agent
    host = agent.agent_info()["hostname"]
    command = "echo $PMM_HOOK_TAG $PMM_HOOK_TASK_NAME; while [ ! -e go ]; do sleep 0.05; done"
    await launch(scheduler, lambda o: task_info(o, "web", command, ports=(31000, 31001)))
    statuses = await follow(scheduler, "web", until="TASK_RUNNING")
    await until(lambda: hosts.exists() and "web" in hosts.read_text(), what="the hosts file")
    lines = hosts.read_text().splitlines()[1:]
    assert lines == [f"web {host}:31000,31001"]
    container = agent.find(scheduler.framework_id, "web")
    (container.sandbox / "go").touch()
    statuses += await follow(scheduler, "web")
    assert statuses[-1]["state"] == "TASK_FINISHED"
    for status in statuses:
        assert {"key": "pmm.hook/status", "value": f"ex:{status['state']}"} in status["labels"][
            "labels"
        ]
    assert (container.sandbox / "stdout").read_text() == "ex web\n"
    assert {"key": "pmm.hook/agent", "value": f"ex@{host}"} in container.info["labels"]["labels"]
    assert hosts.read_text().splitlines()[1:] == []


async def test_master_hooks_and_anonymous_modules(tmp_path, session, agent_factory):
    modules = config(
        ("pmm_hooks", "org_pymesos_ExampleHook", {"tag": "m"}),
        ("pmm_hello", "org_pymesos_Hello", {}),
    )
    master = await start_master(master_args(modules=modules, hooks="example_hook"))
    try:
        async with session.get(f"{master.url}/metrics/snapshot") as response:
            assert (await response.json())["hello/created"] >= 1.0
        running = await agent_factory(master_url=master.url)
        scheduler = Scheduler(master.url, session)
        await scheduler.subscribe()
        await launch(scheduler, lambda o: task_info(o, "labelled", "true"))
        assert (await follow(scheduler, "labelled"))[-1]["state"] == "TASK_FINISHED"
        await until(lambda: running.agent.completed, what="the task to be forgotten")
        labels = running.agent.completed[-1].info["labels"]["labels"]
        assert {"key": "pmm.hook/master", "value": f"m@{running.agent.agent_id}"} in labels
        await scheduler.close()
        await running.stop()
    finally:
        await master.stop()
