"""The agent's JSON views, in Mesos' shapes: ``/state``, ``/metrics/snapshot``,
``/monitor/statistics`` (served by :mod:`.http`).

Read-only functions of the :class:`~pymesos_modules.agent.agent.Agent`'s state.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pymesos_modules import __version__, redact
from pymesos_modules.agent.records import TERMINAL, Container, scalars

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent


def executor_name(container: Container) -> str:
    """The executor's name, as Mesos shows it (a command task's: "Command Executor (Task: t)")."""
    if container.executor is not None:
        return str(container.executor.info.get("name", ""))
    return f"Command Executor (Task: {container.task_id})"


def statistics(agent: Agent) -> list[dict[str, Any]]:
    """``/monitor/statistics``: one entry per running container (Mesos' shape)."""
    return [
        {
            "executor_id": c.executor_id,
            "executor_name": executor_name(c),
            "framework_id": c.framework_id,
            "source": str(c.executor.info.get("source", "")) if c.executor else c.task_id,
            "container_id": c.container_id,
            "statistics": agent.containerizer.usage(c),
        }
        for c in agent.all_containers() + agent.executor_containers()
        if c.running
    ]


def snapshot_metrics(agent: Agent) -> dict[str, float]:
    """``/metrics/snapshot``: Mesos' agent metric names, ours, and the modules'."""
    running = [c for c in agent.all_containers() if c.state not in TERMINAL]
    executors = [e for e in agent.executor_room.all() if e.state != "TERMINATED"]
    total = scalars(agent.resources)
    used: dict[str, float] = {}
    holdings = [c.resources for c in running] + [
        scalars(e.info.get("resources") or []) for e in executors
    ]
    for resources in holdings:
        for name, amount in resources.items():
            used[name] = used.get(name, 0.0) + amount
    values: dict[str, float] = {
        "slave/uptime_secs": time.time() - agent.started,
        "slave/registered": float(agent.registered),
        "slave/executors_running": float(
            sum(c.running for c in running) + sum(e.state == "RUNNING" for e in executors)
        ),
        "slave/executors_registering": float(sum(e.state == "REGISTERING" for e in executors)),
        "slave/executors_terminating": float(sum(e.state == "TERMINATING" for e in executors)),
        "slave/status_updates_pending": float(agent.updates.pending()),
        "slave/status_update_retries": float(agent.updates.retries),
    }
    for state in ("STAGING", "STARTING", "RUNNING", "KILLING"):
        values[f"slave/tasks_{state.lower()}"] = float(
            sum(c.state == f"TASK_{state}" for c in running)
        )
    for key, count in agent.counters.items():
        values[f"slave/{key}"] = float(count)
    for name in ("cpus", "mem", "disk", "gpus"):
        if name in total:
            values[f"slave/{name}_total"] = total[name]
            values[f"slave/{name}_used"] = used.get(name, 0.0)
            values[f"slave/{name}_percent"] = (
                used.get(name, 0.0) / total[name] if total[name] else 0.0
            )
    for name, amount in agent.oversubscription.total().items():
        values[f"slave/{name}_revocable_total"] = amount
    values.update(agent.metrics.snapshot())
    return values


def state(agent: Agent) -> dict[str, Any]:
    """``/state`` in the shape of Mesos' agent state (the parts we have)."""

    def task_json(c: Container) -> dict[str, Any]:
        return {
            "id": c.task_id,
            "name": c.info.get("name", ""),
            "framework_id": c.framework_id,
            "executor_id": c.executor_id,
            "slave_id": agent.agent_id,
            "state": c.state,
            "resources": {**c.resources, "ports": ",".join(map(str, c.ports))},
            "labels": (c.info.get("labels") or {}).get("labels", []),
        }

    def executor_json(c: Container, tasks: list[Container]) -> dict[str, Any]:
        """A command task's executor (its one task), or a custom executor and its tasks."""
        entry = {
            "id": c.executor_id,
            "name": executor_name(c),
            "framework_id": c.framework_id,
            "container": c.container_id,
            "directory": str(c.sandbox),
            "resources": c.resources,
            "tasks": [task_json(t) for t in tasks if t.state not in TERMINAL],
            "completed_tasks": [task_json(t) for t in tasks if t.state in TERMINAL],
        }
        if c.executor is not None:
            entry["source"] = str(c.executor.info.get("source", ""))
            entry["state"] = c.executor.state
            entry["queued_tasks"] = [
                task_json(c.executor.tasks[t]) for t in c.executor.queued if t in c.executor.tasks
            ]
        return entry

    frameworks = []
    for framework_id in sorted(set(agent.containers) | set(agent.executors)):
        info = agent.frameworks.get(framework_id, {})
        tasks = agent.containers.get(framework_id, {}).values()
        executors = [executor_json(c, [c]) for c in tasks if c.executor is None]
        executors += [
            executor_json(e.container, list(e.tasks.values()))
            for e in agent.executors.get(framework_id, {}).values()
        ]
        frameworks.append(
            {
                "id": framework_id,
                "name": info.get("name", ""),
                "user": info.get("user", ""),
                "executors": executors,
            }
        )
    return {
        "version": __version__,
        "id": agent.agent_id,
        "hostname": agent.flags.hostname,
        "port": agent.flags.port,
        "master_hostname": agent.url,
        "master_id": agent.master_id,
        "registered": agent.registered,
        "start_time": agent.started,
        "resources": {
            **scalars(agent.resources),
            "ports": ",".join(
                f"[{r['begin']}-{r['end']}]"
                for item in agent.resources
                if item.get("name") == "ports" and item.get("type") == "RANGES"
                for r in (item.get("ranges") or {}).get("range", [])
            ),
        },
        "unreserved_resources_full": agent.resources,
        "attributes": {
            a["name"]: (a.get("text") or a.get("scalar") or {}).get("value", a)
            for a in agent.attributes
        },
        "flags": redact.flags(agent.flags.raw),
        "frameworks": frameworks,
        "completed_tasks": [task_json(c) for c in agent.completed[-100:]],
    }
