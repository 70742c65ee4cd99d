"""The agents room: an agent registers, re-registers (its tasks adopted), is pinged away, removed.

A registering agent's resources go to the allocator (its ports stay here); a
re-registering one lists the tasks it still runs, which a restarted master
adopts and this master reconciles with what it knows; a disconnected agent is
offered nothing until it comes back; a removed agent's tasks are lost.  The
agent's resource estimator reports revocable capacity here as well.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from pymesos_modules.kinds.allocator import UNRESERVED, AgentInfo, Allocation, AllocatorCallError
from pymesos_modules.master import resources as res
from pymesos_modules.master.base import CallError, _id, _time_info
from pymesos_modules.master.frameworks import FrameworksRoom
from pymesos_modules.master.state import Agent, AgentBackend, Piece, Task, TaskState

logger = logging.getLogger(__name__)


class AgentsRoom(FrameworksRoom):
    """Registration, re-registration, disconnection and removal of agents."""

    def register_agent(
        self,
        backend: AgentBackend,
        hostname: str,
        resources: res.Resources,
        attributes: dict[str, Any] | None = None,
        agent_id: str | None = None,
        tasks: list[Any] | tuple[Any, ...] = (),
        frameworks: list[Any] | tuple[Any, ...] = (),
        executors: list[Any] | tuple[Any, ...] = (),
        listing: Listing | None = None,
    ) -> str:
        """Add an agent (its scalars go to the allocator, its ports stay here).

        ``tasks`` and ``executors`` (ExecutorInfos with their framework_id) are what
        a re-registering agent still runs (agent protocol REREGISTER): a restarted
        master adopts them, so their resources stay in use.  ``frameworks`` are
        their FrameworkInfos, for frameworks this master does not know (see
        :meth:`_recover_frameworks`).  Tasks and executors of frameworks this master
        removed are not adopted (:meth:`reconcile_agent` shuts them down).
        ``listing``: all three, already checked by :meth:`listing` (not checked again).
        """
        if listing is None:
            listing = self.listing(tasks, frameworks, executors)
        tasks, executors, infos = listing.tasks, listing.executors, listing.infos
        agent_id = agent_id or self.new_agent_id()
        if agent_id in self.agents:
            raise CallError(409, f"agent {agent_id} is already registered")
        adopted = [
            task
            for i, entry in enumerate(tasks)
            if (task := self._adoptable(agent_id, i, entry, infos)).framework_id
            not in self._completed_ids
        ]
        held = self._adoptable_executors(agent_id, executors, tasks, adopted, infos)
        recovered = self._recover_frameworks(
            [(t.framework_id, t.role) for t in adopted]
            + [(key[0], e.role) for key, e in held.items()],
            infos,
        )
        holders = [(t.framework_id, t.role, t.pieces) for t in adopted]
        holders += [(key[0], e.role, e.pieces) for key, e in held.items()]
        allocations = self._allocations(holders)
        # Revocable tasks hold revocable resources before the agent's first
        # UPDATE_OVERSUBSCRIBED says how many there are: the pool starts at that.
        in_use = self._sum(a.resources for a in allocations if a.revocable)
        handle = self.agent_handles.add(agent_id)
        try:
            self._alloc(
                "add_agent",
                handle,
                AgentInfo(
                    self._vector(resources),
                    allocations=allocations,
                    revocable=in_use if any(in_use) else None,
                ),
            )
        except AllocatorCallError as exc:
            self.agent_handles.remove(agent_id)
            for framework_id in recovered:  # nothing of a refused registration stays
                self._alloc("remove_framework", self.frameworks.pop(framework_id).handle)
                self.framework_handles.remove(framework_id)
            raise CallError(400, str(exc)) from None
        self.agents[agent_id] = Agent(
            agent_id,
            handle,
            hostname,
            resources,
            dict(attributes or {}),
            backend,
            free_ports=resources.ports,
            registered_at=time.time(),
        )
        agent = self.agents[agent_id]
        for task in adopted:
            agent.tasks[task.task_id] = task
            self.frameworks[task.framework_id].tasks[task.task_id] = task
            if task.ports:
                agent.free_ports = res.subtract_ranges(agent.free_ports, task.ports)
        for key, executor in held.items():
            self.executors[key] = executor
            agent.free_ports = res.subtract_ranges(agent.free_ports, executor.ports)
        for framework_id in recovered:
            if self.frameworks[framework_id].failover_timeout > 0:
                self._failover_timer(self.frameworks[framework_id])
        if adopted or held:
            # DEBUG, not INFO: 40k agents re-registering to a restarted master would
            # spend a good part of its time logging (the recovery logs once at INFO).
            logger.debug(
                "agent %s re-registered: adopted %d task(s), %d executor(s)",
                agent_id,
                len(adopted),
                len(held),
            )
        logger.debug("agent %s (%s) registered with %s", agent_id, hostname, resources)
        self._allocate_on(handle)
        return agent_id

    def listing(self, tasks: Any, frameworks: Any, executors: Any = ()) -> Listing:
        """What a REREGISTER lists, checked once (CallError(400) names a bad entry) and
        handed on: the agent API checks it before the registry is written, and
        :meth:`register_agent` takes it as checked."""
        keys = frozenset(self.listed_tasks(tasks))
        executor_keys = frozenset(self.listed_executors(executors))
        infos = self.framework_infos(frameworks)
        return Listing(tuple(tasks), infos, keys, tuple(executors), executor_keys)

    def _allocations(self, holders: list[tuple[str, str, list[Piece]]]) -> tuple[Allocation, ...]:
        """What (framework id, role, pieces) hold, one Allocation per (framework, role,
        pool, revocable): the allocator sums them so anyway, and fewer cross to it."""
        summed: dict[tuple[int, int, int, bool], list[float]] = {}
        for framework_id, role, pieces in holders:
            handle, role_handle = self.frameworks[framework_id].handle, self._role(role)
            for pool, revocable, vector in pieces:
                total = summed.setdefault(
                    (handle, role_handle, pool, revocable), [0.0] * len(vector)
                )
                for i, value in enumerate(vector):
                    total[i] += value
        return tuple(
            Allocation(framework, role, tuple(vector), pool, revocable)
            for (framework, role, pool, revocable), vector in summed.items()
        )

    def listed_tasks(self, tasks: Any) -> set[tuple[str, str]]:
        """(framework id, task id) of the tasks a REREGISTER lists; CallError names a bad entry."""
        if not isinstance(tasks, list | tuple):
            raise CallError(400, "reregister.tasks must be a list")
        listed: set[tuple[str, str]] = set()
        for index, entry in enumerate(tasks):
            where = f"reregister.tasks[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("task_info"), dict):
                raise CallError(400, f"{where} must be an object with a task_info")
            framework_id = _id(entry.get("framework_id"), f"{where}.framework_id")
            task_id = _id(entry["task_info"].get("task_id"), f"{where}.task_info.task_id")
            if (framework_id, task_id) in listed:
                raise CallError(400, f"{where}: reregister.tasks lists task '{task_id}' twice")
            listed.add((framework_id, task_id))
        return listed

    def framework_infos(self, frameworks: Any) -> dict[str, dict[str, Any]]:
        """The FrameworkInfos a REREGISTER carries, by id; CallError names a bad entry."""
        if not isinstance(frameworks, list | tuple):
            raise CallError(400, "reregister.frameworks must be a list of FrameworkInfo")
        infos: dict[str, dict[str, Any]] = {}
        for index, info in enumerate(frameworks):
            where = f"reregister.frameworks[{index}]"
            if not isinstance(info, dict):
                raise CallError(400, f"{where} must be a FrameworkInfo object")
            framework_id = _id(info.get("id"), f"{where}.id")
            roles = info.get("roles") or [info.get("role", "*")]
            if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
                raise CallError(400, f"{where}.roles must be a list of role names")
            timeout = info.get("failover_timeout", 0.0)
            if (
                not isinstance(timeout, int | float)
                or isinstance(timeout, bool)
                or not timeout >= 0
            ):
                raise CallError(400, f"{where}.failover_timeout must be a number >= 0")
            if not isinstance(info.get("capabilities", []), list):
                raise CallError(400, f"{where}.capabilities must be a list")
            infos[framework_id] = info
        return infos

    def reconcile_agent(
        self,
        agent_id: str,
        listed: Collection[tuple[str, str]],
        executors: Collection[tuple[str, str]] = (),
    ) -> None:
        """After a REREGISTER, settle what the agent and this master disagree on, as Mesos.

        Tasks or executors of frameworks this master removed get the agent a
        SHUTDOWN_FRAMEWORK (the kills may have been lost with the old connection).
        Tasks this master has on the agent that the agent does not list never
        reached it (their RUN_TASK went down a dead stream): TASK_LOST, their
        resources come back; so do those of executors it does not list
        (``executors``: (framework id, executor id) of its ``executor_infos``).
        """
        agent = self.agents[agent_id]
        shutdown = getattr(agent.backend, "shutdown_framework", None)
        removed = {f for f, _ in (*listed, *executors) if f in self._completed_ids}
        for framework_id in sorted(removed):
            logger.warning("agent %s still runs removed framework %s", agent_id, framework_id)
            if shutdown is not None:
                shutdown(framework_id)
        for task in list(agent.tasks.values()):
            if (task.framework_id, task.task_id) in listed or task.state.terminal:
                continue
            status = {
                "task_id": {"value": task.task_id},
                "agent_id": {"value": agent_id},
                "state": str(TaskState.LOST),
                "reason": "REASON_RECONCILIATION",
                "message": "the agent re-registered without this task",
                "source": "SOURCE_MASTER",
                "timestamp": time.time(),
            }
            self._update(task, status, release=True)
        self._reconcile_executors(agent_id, executors)

    def _adoptable(
        self, agent_id: str, index: int, entry: Any, infos: dict[str, dict[str, Any]]
    ) -> Task:
        """A task a re-registering agent still runs, as a Task; CallError names the bad field."""
        where = f"reregister.tasks[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("task_info"), dict):
            raise CallError(400, f"{where} must be an object with a task_info")
        info = entry["task_info"]
        framework_id = _id(entry.get("framework_id"), f"{where}.framework_id")
        task_id = _id(info.get("task_id"), f"{where}.task_info.task_id")
        try:
            state = TaskState(entry.get("state", "TASK_RUNNING"))
            wanted = res.from_json(info.get("resources", []), f"{where}.task_info.resources")
        except (ValueError, res.ResourceError) as exc:
            raise CallError(400, f"{where}: {exc}") from None
        framework = self.frameworks.get(framework_id)
        known = framework.tasks.get(task_id) if framework is not None else None
        # A task of an unreachable agent comes back with it (PARTITION_AWARE frameworks).
        if known is not None and not (
            known.agent_id == agent_id and known.state == TaskState.UNREACHABLE
        ):
            raise CallError(409, f"{where}: task '{task_id}' is already known on another agent")
        if framework is not None:
            roles = framework.roles
        else:
            info_of = infos.get(framework_id, {})
            roles = info_of.get("roles") or [info_of.get("role", "*")]
        role = entry.get("role", roles[0])
        if not isinstance(role, str) or not role:
            raise CallError(400, f"{where}.role must be a role name")
        revocable = any(isinstance(r, dict) and "revocable" in r for r in info.get("resources", []))
        pieces: list[Piece] = [(UNRESERVED, revocable, self._vector(wanted))]
        ports = wanted.ports
        if state.terminal:
            # It ended while no master listened; its terminal update is still on
            # its way (unacknowledged).  Known as running, holding nothing, so that
            # update finds it and completes it as usual.
            state, pieces, ports = TaskState.RUNNING, [], ()
        return Task(
            task_id, framework_id, agent_id, str(info.get("name", "")), str(role), state,
            wanted, pieces, ports, {**info, "agent_id": {"value": agent_id}},
        )  # fmt: skip

    def new_agent_id(self) -> str:
        """A fresh agent id of this master (never one it gave before)."""
        self._agent_serial += 1
        return f"{self.master_id}-S{self._agent_serial - 1}"

    def remove_agent(
        self,
        agent_id: str,
        reason: str = "REASON_AGENT_REMOVED",
        unreachable_time: float | None = None,
    ) -> None:
        """An agent is gone: rescind its offers, its tasks are lost.

        With ``unreachable_time`` (Unix time) the agent is unreachable, not
        removed, as Mesos marks it: its tasks become TASK_UNREACHABLE for
        PARTITION_AWARE frameworks (they stay known, and may come back with
        the agent) and TASK_LOST for the others.
        """
        agent = self.agents.pop(agent_id, None)
        if agent is None:
            return
        for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
            self._rescind(offer)
        for task in list(agent.tasks.values()):
            if not task.state.terminal:
                framework = self.frameworks.get(task.framework_id)
                aware = framework is not None and "PARTITION_AWARE" in framework.capabilities
                state = TaskState.LOST
                status: dict[str, Any] = {
                    "task_id": {"value": task.task_id},
                    "agent_id": {"value": agent_id},
                    "reason": reason,
                    "message": f"agent {agent_id} removed",
                    "source": "SOURCE_MASTER",
                    "timestamp": time.time(),
                }
                if unreachable_time is not None:
                    state = TaskState.UNREACHABLE if aware else TaskState.LOST
                    status["message"] = f"agent {agent_id} is unreachable"
                    status["unreachable_time"] = _time_info(unreachable_time)
                self._update(task, {**status, "state": str(state)}, release=False)
        with self._lock:
            self.allocator.remove_agent(agent.handle)
            # Under the lock: a cycle that took it as a candidate has either
            # run already or will not ask for it (its handle may be reused).
            self._candidates.discard(agent.handle)
            if self._taken is not None:
                self._taken.discard(agent.handle)
        self._forget_executors_on(agent_id)
        self.agent_handles.remove(agent_id, hold=True)
        self.hook_chain.agent_lost(agent_id, agent.hostname)

    def disconnect_agent(self, agent_id: str) -> None:
        """An agent's connection is gone: offer nothing on it until it re-registers."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.active:
            return
        agent.active = False
        for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
            self._rescind(offer)
        self._alloc("deactivate_agent", agent.handle)

    def reconnect_agent(self, agent_id: str, backend: AgentBackend) -> None:
        """A known agent re-registered: it talks through ``backend`` from now on."""
        agent = self.agents[agent_id]
        agent.backend = backend
        if not agent.active:
            agent.active = True
            self._alloc("activate_agent", agent.handle)
            self._allocate_on(agent.handle)

    def update_oversubscribed(self, agent_id: str, revocable: res.Resources) -> None:
        """The agent's estimator reports this much revocable capacity (a total, not a delta).

        As Mesos, every report rescinds the agent's outstanding offers that hold
        revocable resources (they may no longer exist), and the new total is
        offered afresh.  The pool never drops below what running tasks hold:
        evicting those is the QoS controller's job, not the estimator's.
        """
        agent = self.agents[agent_id]
        in_use = self._sum(
            vector
            for task in agent.tasks.values()
            if not task.state.terminal
            for _, is_revocable, vector in task.pieces
            if is_revocable
        )
        wanted = tuple(max(a, b) for a, b in zip(self._vector(revocable), in_use, strict=True))
        info = AgentInfo(
            self._vector(agent.resources),
            revocable=wanted if any(wanted) else None,
            active=agent.active,
        )
        for attempt in range(2):
            # A cycle that finished but is not delivered yet holds revocable
            # resources the allocator counts as allocated: make them offers first.
            if self._pending_batch is not None:
                self._deliver(self._pending_batch)
            for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
                if any(is_revocable for _, is_revocable, _ in offer.pieces):
                    self._rescind(offer)
            try:
                self._alloc("update_agent", agent.handle, info)
                break
            except AllocatorCallError as exc:
                if attempt:  # a cycle ran in between once; twice is a real refusal
                    raise CallError(400, str(exc)) from None
        self._allocate_on(agent.handle)


@dataclass(frozen=True, slots=True)
class Listing:
    """What a REREGISTER lists, checked once by :meth:`AgentsRoom.listing`."""

    tasks: tuple[Any, ...] = ()
    #: the FrameworkInfos it carries, by framework id
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (framework id, task id) of every listed task
    keys: frozenset[tuple[str, str]] = frozenset()
    executors: tuple[Any, ...] = ()
    #: (framework id, executor id) of every listed ExecutorInfo
    executor_keys: frozenset[tuple[str, str]] = frozenset()
