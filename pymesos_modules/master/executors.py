"""The executors room: what executors hold on agents, as Mesos' master accounts them.

A task's custom executor (``TaskInfo.executor``) or a task group's executor
takes its own resources when its first task launches
(:meth:`ExecutorsRoom._group_executor`); a group's (DEFAULT) executor gives
them back with its last task, a custom one when the agent reports that it
exited (EXITED_EXECUTOR).  A re-registering agent lists the executors it still
runs, as Mesos' ReregisterSlaveMessage does (``executor_infos``: ExecutorInfos
with their ``framework_id``): a restarted master adopts them with the tasks, so
their resources stay in use (:meth:`ExecutorsRoom._adoptable_executors`); a
master that knew the agent forgets the executors it no longer lists
(:meth:`ExecutorsRoom._reconcile_executors`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from pymesos_modules.kinds.allocator import UNRESERVED
from pymesos_modules.master import resources as res
from pymesos_modules.master.base import CallError, _id
from pymesos_modules.master.offers import OffersRoom
from pymesos_modules.master.state import Agent, Executor, Framework, Piece, Task

logger = logging.getLogger(__name__)

#: Mesos' least resources of an executor (src/master/constants.hpp: MIN_CPUS, MIN_MEM in MB)
MIN_CPUS = 0.01
MIN_MEM = 32.0

ExecutorKey = tuple[str, str, str]


def _executor_id(executor: dict[str, Any]) -> str:
    return _id(executor.get("executor_id"), "launch_group.executor.executor_id")


def _same_executor(known: dict[str, Any], given: dict[str, Any]) -> bool:
    """The same ExecutorInfo, whether or not one of them names its framework (an agent's
    report does, as Mesos'; a framework's launch need not)."""
    return {k: v for k, v in known.items() if k != "framework_id"} == {
        k: v for k, v in given.items() if k != "framework_id"
    }


def _role_of(items: Any) -> str | None:
    """The role a resource list was allocated to (its ``allocation_info``), if it says."""
    for item in items if isinstance(items, list) else []:
        role = (item.get("allocation_info") or {}).get("role") if isinstance(item, dict) else None
        if isinstance(role, str) and role:
            return role
    return None


class ExecutorsRoom(OffersRoom):
    """Executors' resources on agents: launched, adopted, ended, reconciled."""

    def _group_executor(
        self,
        framework: Framework,
        agent: Agent,
        executor: dict[str, Any],
        group: list[Any],
        pieces: list[list],
        ports: res.Ranges,
        role: str,
        is_group: bool = True,
    ) -> Executor | None:
        """Validate a task group's executor, or a task's custom executor (``is_group``
        False), as Mesos does; a new one takes its resources.

        Returns the executor to start, or None when it already runs on the agent
        (its resources are held already).  Only ``pieces`` change.
        """
        if not executor:
            raise CallError(400, "launch_group.executor (an ExecutorInfo) must be set")
        executor_id = _executor_id(executor)
        kind = executor.get("type")
        if kind is None and is_group:
            raise CallError(400, "'ExecutorInfo.type' must be set")
        if kind not in ("DEFAULT", "CUSTOM", None):
            raise CallError(400, f"Unknown executor type {kind!r}")
        if not is_group:
            if kind == "DEFAULT":
                raise CallError(400, "'ExecutorInfo.type' must be 'CUSTOM' for a LAUNCH")
            if not isinstance(executor.get("command"), dict):
                raise CallError(400, f"executor '{executor_id}' needs a 'command' (CUSTOM)")
            if any(isinstance(t, dict) and "command" in t for t in group):
                raise CallError(
                    400,
                    "Task should have at least one (but not both) of CommandInfo or "
                    "ExecutorInfo present",
                )
        for task in group:
            if isinstance(task, dict) and "executor" in task and task["executor"] != executor:
                task_id = (task.get("task_id") or {}).get("value")
                raise CallError(
                    400,
                    f"The ExecutorInfo of task '{task_id}' is different from "
                    f"executor '{executor_id}'",
                )
        running = self.executors.get((framework.framework_id, agent.agent_id, executor_id))
        if running is not None:
            if not _same_executor(running.info, executor):
                raise CallError(
                    400,
                    f"executor '{executor_id}' already runs on agent {agent.agent_id} "
                    "with another ExecutorInfo",
                )
            return None
        items = executor.get("resources", [])
        try:
            wanted = res.from_json(items, f"executor '{executor_id}' resources")
        except res.ResourceError as exc:
            raise CallError(400, str(exc)) from None
        for name, least in (("cpus", MIN_CPUS), ("mem", MIN_MEM)):
            if wanted.scalars.get(name, 0.0) < least:
                raise CallError(
                    400,
                    f"Executor '{executor_id}' uses less {name} "
                    f"({wanted.scalars.get(name, 0.0):g}) than the minimum required ({least:g})",
                )
        if set(wanted.scalars) - set(self.flags.resource_names):
            raise CallError(400, f"executor '{executor_id}' uses resources its offers lack")
        if not res.contains_ranges(ports, wanted.ports):
            raise CallError(400, f"executor '{executor_id}' asks for ports outside its offers")
        taken = self._take(pieces, wanted, items, f"executor '{executor_id}'")
        return Executor(dict(executor), taken, wanted.ports, role)

    def _executor_task_ended(self, task: Task, release: bool) -> None:
        """A task ended: its group's executor ends with its last task, giving its resources back."""
        for key, executor in self.executors.items():
            if (
                key[:2] != (task.framework_id, task.agent_id)
                or task.task_id not in executor.task_ids
            ):
                continue
            executor.task_ids.discard(task.task_id)
            if not executor.task_ids and not executor.custom:
                self._release_executor(key, release)
            return

    def _release_executor(self, key: tuple[str, str, str], release: bool) -> None:
        """Forget an executor; its ports are free again, its resources too with ``release``."""
        executor = self.executors.pop(key)
        agent, framework = self.agents.get(key[1]), self.frameworks.get(key[0])
        if agent is not None:
            agent.free_ports = tuple(sorted(agent.free_ports + executor.ports))
            if release and framework is not None:
                role = self.roles.add(executor.role)
                self._recover(
                    framework, agent, framework.handle, agent.handle, role, executor.pieces, 0.0
                )

    def executor_exited(
        self, agent_id: str, framework_id: str, executor_id: str, status: int
    ) -> None:
        """The agent reports an executor ended (Mesos' ExitedExecutorMessage): its resources
        are free, and the framework gets FAILURE."""
        key = (framework_id, agent_id, executor_id)
        agent = self.agents.get(agent_id)
        if key in self.executors:
            self._release_executor(key, release=True)
            if agent is not None:
                self._allocate_on(agent.handle)
        framework = self.frameworks.get(framework_id)
        if framework is not None:
            failure = {
                "agent_id": {"value": agent_id},
                "executor_id": {"value": executor_id},
                "status": status,
            }
            self._send(framework, {"type": "FAILURE", "failure": failure})

    def executor_message(
        self, agent_id: str, framework_id: str, executor_id: str, data: str
    ) -> None:
        """A framework message from an executor: the framework gets MESSAGE (dropped, as
        Mesos, when it is gone)."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            logger.info(
                "dropping a message of executor %s: no framework %s", executor_id, framework_id
            )
            return
        message = {
            "agent_id": {"value": agent_id},
            "executor_id": {"value": executor_id},
            "data": data,
        }
        self._send(framework, {"type": "MESSAGE", "message": message})

    def listed_executors(self, executors: Any) -> set[tuple[str, str]]:
        """(framework id, executor id) of the ExecutorInfos a REREGISTER lists
        (``executor_infos``); CallError names a bad entry."""
        if not isinstance(executors, list | tuple):
            raise CallError(400, "reregister.executor_infos must be a list of ExecutorInfo")
        listed: set[tuple[str, str]] = set()
        for index, info in enumerate(executors):
            where = f"reregister.executor_infos[{index}]"
            if not isinstance(info, dict):
                raise CallError(400, f"{where} must be an ExecutorInfo object")
            key = (
                _id(info.get("framework_id"), f"{where}.framework_id"),
                _id(info.get("executor_id"), f"{where}.executor_id"),
            )
            if key in listed:
                raise CallError(
                    400, f"{where}: executor '{key[1]}' of framework '{key[0]}' is listed twice"
                )
            try:
                res.from_json(info.get("resources", []), f"{where}.resources")
            except res.ResourceError as exc:
                raise CallError(400, str(exc)) from None
            listed.add(key)
        return listed

    def _adoptable_executors(
        self,
        agent_id: str,
        executors: Sequence[Any],
        tasks: Sequence[Any],
        adopted: list[Task],
        infos: dict[str, dict[str, Any]],
    ) -> dict[ExecutorKey, Executor]:
        """The executors a re-registering agent still runs (checked by
        :meth:`listed_executors`), as this master tracks them: their resources held,
        their adopted tasks named.  Those of frameworks this master removed are left
        out (:meth:`reconcile_agent` shuts those frameworks down on the agent)."""
        adopted_ids = {(t.framework_id, t.task_id) for t in adopted}
        runs_on: dict[tuple[str, str], set[str]] = {}
        for entry in tasks:
            info = entry["task_info"]
            named = entry.get("executor_id") or (info.get("executor") or {}).get("executor_id")
            executor_id = named.get("value") if isinstance(named, dict) else None
            framework_id = entry["framework_id"]["value"]
            task_id = info["task_id"]["value"]
            if isinstance(executor_id, str) and (framework_id, task_id) in adopted_ids:
                runs_on.setdefault((framework_id, executor_id), set()).add(task_id)
        found: dict[ExecutorKey, Executor] = {}
        for info in executors:
            framework_id, executor_id = info["framework_id"]["value"], info["executor_id"]["value"]
            if framework_id in self._completed_ids:
                continue
            items = info.get("resources", [])
            wanted = res.from_json(items, f"executor '{executor_id}' resources")
            framework = self.frameworks.get(framework_id)
            roles = (
                framework.roles
                if framework is not None
                else infos.get(framework_id, {}).get("roles")
                or [infos.get(framework_id, {}).get("role", "*")]
            )
            revocable = any(isinstance(r, dict) and "revocable" in r for r in items)
            pieces: list[Piece] = [(UNRESERVED, revocable, self._vector(wanted))]
            found[(framework_id, agent_id, executor_id)] = Executor(
                {k: v for k, v in info.items() if k != "framework_id"},
                pieces,
                wanted.ports,
                _role_of(items) or roles[0],
                runs_on.get((framework_id, executor_id), set()),
            )
        return found

    def _reconcile_executors(self, agent_id: str, listed: Collection[tuple[str, str]]) -> None:
        """After a REREGISTER: executors this master has on the agent that the agent no
        longer lists ended while their EXITED_EXECUTOR was lost; their resources come back
        (Mesos forgets them the same way)."""
        agent = self.agents[agent_id]
        for key in [k for k in self.executors if k[1] == agent_id]:
            if (key[0], key[2]) in listed:
                continue
            logger.info(
                "agent %s re-registered without executor %s of framework %s: released",
                agent_id,
                key[2],
                key[0],
            )
            self._release_executor(key, release=True)
            self._allocate_on(agent.handle)

    def _forget_executors_on(self, agent_id: str) -> None:
        """The agent is removed: its executors go with it (the allocator forgot what they held)."""
        for key in [k for k in self.executors if k[1] == agent_id]:
            del self.executors[key]
