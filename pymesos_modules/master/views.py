"""The views room: ``/state`` and ``/metrics/snapshot`` as Mesos' read-only handlers shape them.

It only reads what the other rooms keep.
"""

from __future__ import annotations

import time
from typing import Any

from pymesos_modules import __version__
from pymesos_modules.master import resources as res
from pymesos_modules.master.offers import OffersRoom
from pymesos_modules.master.state import Executor, Task, TaskState


class ViewsRoom(OffersRoom):
    """The JSON views of the master's state."""

    def _executor_json(self, agent_id: str, executor: Executor) -> dict[str, Any]:
        """A running group executor in ``/state``: its ExecutorInfo, agent and holdings."""
        scalars = self._scalars(self._sum(vector for _, _, vector in executor.pieces))
        return {
            **executor.info,
            "slave_id": agent_id,
            "role": executor.role,
            "resources": {**scalars, "ports": _ranges_text(executor.ports)},
            "tasks": sorted(executor.task_ids),
        }

    def tasks_in(self, state: TaskState) -> int:
        """How many known tasks are in ``state``."""
        return sum(t.state == state for f in self.frameworks.values() for t in f.tasks.values())

    def snapshot_metrics(self) -> dict[str, float]:
        """``/metrics/snapshot`` with Mesos metric names, plus module metrics."""
        frameworks = list(self.frameworks.values())
        values: dict[str, float] = {
            "master/uptime_secs": time.time() - self.started,
            "master/elected": 1.0,
            "master/frameworks_active": float(sum(f.connected for f in frameworks)),
            "master/frameworks_inactive": float(sum(not f.connected for f in frameworks)),
            "master/frameworks_connected": float(sum(f.connected for f in frameworks)),
            "master/frameworks_disconnected": float(sum(not f.connected for f in frameworks)),
            "master/slaves_active": float(len(self.agents)),
            "master/slaves_connected": float(len(self.agents)),
            "master/outstanding_offers": float(len(self.offers)),
            "master/tasks_staging": float(self.tasks_in(TaskState.STAGING)),
            "master/tasks_starting": float(self.tasks_in(TaskState.STARTING)),
            "master/tasks_running": float(self.tasks_in(TaskState.RUNNING)),
            "master/tasks_unreachable": float(self.tasks_in(TaskState.UNREACHABLE)),
            "master/slaves_unreachable": float(len(self.registrar.unreachable)),
            "master/recovery_slave_removals": float(self.counters["recovery_slave_removals"]),
            "registrar/registry_writes": float(self.registrar.writes),
            "allocator/mesos/allocation_run_ms": self.last_allocation_ms,
            "allocator/mesos/allocation_runs": float(self.counters["allocation_runs"]),
        }
        for key in (
            "tasks_finished",
            "tasks_failed",
            "tasks_killed",
            "tasks_lost",
            "tasks_error",
            "tasks_dropped",
            "valid_status_updates",
            "invalid_status_updates",
        ):
            values[f"master/{key}"] = float(self.counters[key])
        values.update(self.metrics.snapshot())
        return values

    def state(self) -> dict[str, Any]:
        """``/state`` in the shape of Mesos' master state."""

        # Tasks of a group name their executor, as Mesos' state does.
        executor_of = {
            (key[0], task_id): key[2]
            for key, executor in self.executors.items()
            for task_id in executor.task_ids
        }

        def task_json(t: Task) -> dict[str, Any]:
            return {
                "id": t.task_id,
                "executor_id": executor_of.get((t.framework_id, t.task_id), ""),
                "name": t.name,
                "framework_id": t.framework_id,
                "slave_id": t.agent_id,
                "state": str(t.state),
                "role": t.role,
                "resources": {**t.resources.scalars, "ports": _ranges_text(t.resources.ports)},
                "statuses": [t.status] if t.status else [],
            }

        return {
            "version": __version__,
            "id": self.master_id,
            "hostname": self.flags.hostname,
            "start_time": self.started,
            "activated_slaves": len(self.agents),
            "frameworks": [
                {
                    "id": f.framework_id,
                    "name": f.name,
                    "roles": f.roles,
                    "active": f.connected,
                    "connected": f.connected,
                    "capabilities": sorted(f.capabilities),
                    "failover_timeout": f.failover_timeout,
                    "tasks": [task_json(t) for t in f.tasks.values()],
                    "completed_tasks": [task_json(t) for t in f.completed],
                    "executors": [
                        self._executor_json(key[1], executor)
                        for key, executor in self.executors.items()
                        if key[0] == f.framework_id
                    ],
                    "offers": [
                        self._offer_json(self.offers[o]) for o in f.offers if o in self.offers
                    ],
                }
                for f in self.frameworks.values()
            ],
            "slaves": [
                {
                    "id": a.agent_id,
                    "hostname": a.hostname,
                    "active": a.active,
                    "resources": {**a.resources.scalars, "ports": _ranges_text(a.resources.ports)},
                    "attributes": a.attributes,
                    "registered_time": a.registered_at,
                }
                for a in self.agents.values()
            ],
            # Admitted by the recovered registry, not re-registered yet (Mesos' name).
            "recovered_slaves": [
                {"id": r["id"], "hostname": r.get("hostname", "")} for r in self.recovering.values()
            ],
            "unreachable_slaves": [
                {"id": r["id"], "hostname": r.get("hostname", ""), "timestamp": r.get("since")}
                for r in self.registrar.unreachable.values()
            ],
        }


def _ranges_text(ranges: res.Ranges) -> str:
    return "[" + ", ".join(f"{a}-{b}" for a, b in ranges) + "]" if ranges else ""
