"""The master: frameworks, agents, offers and tasks around an allocator.

Everything runs on one asyncio loop except ``allocate()``, which runs in a
worker thread (the native allocator releases the GIL) so the loop keeps
serving HTTP while a cycle runs.  Allocator calls are serialised by a lock:
the allocator Protocol is not re-entrant.

Allocation cycles are batched as Mesos batches them (its allocation
candidates): an event about one agent (added, re-activated, updated,
resources given back on it) names that agent; an event about a framework
(subscribed or re-subscribed, revived) names every agent.  Events that come
while a cycle is pending or running join the next one, so a burst of events
becomes one cycle over the union of the agents they named, and at most one
cycle waits.  Every ``allocation_interval`` a cycle visits every agent, which
is also when expired refusal filters are seen (a filter lasts at least one
interval).

Frameworks speak Mesos v1 scheduler calls (dicts in the protobuf JSON
mapping) through :meth:`Master.subscribe` and :meth:`Master.call`, either
from the HTTP API or in-process; agents register through
:meth:`Master.register_agent` with a backend that runs and kills tasks, and
report through :meth:`Master.status_update`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pymesos_modules import __version__, metrics
from pymesos_modules.kinds.allocator import (
    ALL_ROLES,
    UNRESERVED,
    AgentInfo,
    Allocation,
    Allocator,
    AllocatorCallError,
    AllocatorOptions,
    OfferBatch,
    takes_agents,
)
from pymesos_modules.kinds.authorizer import Authorizer
from pymesos_modules.kinds.hook import HookChain
from pymesos_modules.kinds.http_authenticator import HttpAuthenticator
from pymesos_modules.master import resources as res
from pymesos_modules.master.base import CallError, MasterFlags, SubscriptionDenied, _id
from pymesos_modules.master.frameworks import FrameworksRoom
from pymesos_modules.master.state import (
    Agent,
    AgentBackend,
    Executor,
    Framework,
    HandleMap,
    Offer,
    Piece,
    Task,
    TaskState,
)

logger = logging.getLogger(__name__)


class Master(FrameworksRoom):
    """A Mesos-style master around one allocator (see module docstring)."""

    def __init__(
        self,
        allocator: Allocator,
        flags: MasterFlags | None = None,
        clock: Callable[[], float] = time.monotonic,
        registry: metrics.MetricsRegistry | None = None,
        authorizer: Authorizer | None = None,
        hooks: list[Any] | None = None,
        http_authenticators: list[HttpAuthenticator] | None = None,
    ) -> None:
        self.flags = flags or MasterFlags()
        #: asked before a framework registers in a role and before a task runs as a user
        self.authorizer = authorizer
        #: master hooks (kinds/hook.py): master_launch_task_label_decorator and
        #: master_agent_lost, run through one HookChain in --hooks order
        self.hooks = list(hooks or [])
        self.hook_chain = HookChain(self.hooks)
        #: checked in order by the HTTP API when ``flags.authenticate_frameworks`` is set
        self.http_authenticators = list(http_authenticators or [])
        self.allocator = allocator
        self.clock = clock
        self.metrics = registry if registry is not None else metrics.REGISTRY
        self.master_id = str(uuid.uuid4())
        self.started = time.time()
        self.frameworks: dict[str, Framework] = {}
        self.agents: dict[str, Agent] = {}
        self.offers: dict[str, Offer] = {}
        self.roles = HandleMap()
        self.framework_handles = HandleMap()
        self.agent_handles = HandleMap()
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None
        self._stopping = False
        self._pending_batch: OfferBatch | None = None
        #: Handles of the agents the next cycle visits, named by events since the
        #: last one (Mesos' allocation candidates); every agent when _everywhere.
        self._candidates: set[int] = set()
        self._everywhere = False
        #: The candidates of a cycle taken but not run yet: a removed agent leaves
        #: them too, under the lock, so the allocator is never asked for it.
        self._taken: set[int] | None = None
        #: False for Python allocators written before allocate() took ``agents``.
        self._agent_sets = takes_agents(allocator)
        #: ids of removed frameworks: they may not subscribe again with the same id.
        self._completed_ids: set[str] = set()
        #: executors of task groups by (framework id, agent id, executor id)
        self.executors: dict[tuple[str, str, str], Executor] = {}
        self.counters = {
            "tasks_finished": 0,
            "tasks_failed": 0,
            "tasks_killed": 0,
            "tasks_lost": 0,
            "tasks_error": 0,
            "tasks_dropped": 0,
            "allocation_runs": 0,
            "valid_status_updates": 0,
            "invalid_status_updates": 0,
        }
        self.last_allocation_ms = 0.0
        names = self.flags.resource_names
        self.allocator.initialize(
            AllocatorOptions(
                resource_names=names,
                random_seed=self.flags.random_seed,
                allocation_interval=self.flags.allocation_interval,
                filter_gpu_resources=self.flags.filter_gpu_resources,
            )
        )

    # --- allocator access -------------------------------------------------------

    def _cycle_pending(self) -> bool:
        return self._everywhere or bool(self._candidates)

    def _take_candidates(self) -> set[int] | None:
        """The next cycle's agents (None: every agent); events from now on join the cycle after."""
        agents = None if self._everywhere else self._candidates
        self._candidates, self._everywhere = set(), False
        self._taken = agents
        return agents

    # --- the allocation loop -----------------------------------------------------------

    async def start(self) -> None:
        """Start the allocation loop on the running event loop."""
        self._wake = asyncio.Event()
        if self._cycle_pending():  # events before the start need not wait for the timer
            self._wake.set()
        self._loop_task = asyncio.create_task(self._allocation_loop())

    async def stop(self) -> None:
        """Stop the loop and close every subscriber stream."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for framework in self.frameworks.values():
            if framework.removal is not None:
                framework.removal()
            if framework.sink is not None:
                framework.sink.close()

    async def _allocation_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        # The periodic cycle keeps its own schedule: a steady stream of events
        # must not postpone it (Mesos' timer runs beside event-driven cycles).
        tick = loop.time() + self.flags.allocation_interval
        # A flag as well as cancel(): on Python 3.11 a cancel that lands as the
        # wait ends can be swallowed, and the loop would then run forever.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(tick):
                    await self._wake.wait()
            # Events that arrived while waiting, or during the last cycle, are
            # one burst: one cycle over the union of their agents.
            self._wake.clear()
            periodic = loop.time() >= tick
            if periodic:
                self._everywhere = True
            if not self._cycle_pending():
                continue  # woken by an event that named no agent still here
            agents = self._take_candidates()
            await loop.run_in_executor(None, self._allocate_in_thread, agents)
            self._deliver(self._pending_batch)
            self._expire_offers()
            if periodic:
                tick = loop.time() + self.flags.allocation_interval

    def _allocate_in_thread(self, agents: set[int] | None = None) -> None:
        """One cycle over ``agents`` (None: every agent); its offers wait in _pending_batch."""
        started = time.perf_counter()
        with self._lock:
            now = self.clock()
            if agents is None or not self._agent_sets:
                batch = self.allocator.allocate(now)
            else:
                # Read under the lock: remove_agent() drops removed agents from
                # this very set under it.  Sorted for reproducible calls.
                batch = self.allocator.allocate(now, sorted(agents))
            # Set under the lock: whoever takes the lock next sees this cycle's offers.
            self._pending_batch = batch.copy()
            self._taken = None
        self.last_allocation_ms = (time.perf_counter() - started) * 1000
        logger.debug(
            "allocation cycle over %s in %.2f ms",
            "every agent" if agents is None else f"{len(agents)} agent(s)",
            self.last_allocation_ms,
        )

    def allocate_now(self) -> int:
        """Run a cycle over every agent now, as the allocation_interval timer does, and send
        its offers (tests, simulator); returns offers made.  It covers pending events too."""
        self._candidates, self._everywhere = set(), False
        self._allocate_in_thread(None)
        return self._deliver(self._pending_batch)

    def allocate_pending(self) -> int:
        """Run the batched cycle events asked for, as the loop does when woken, and send its
        offers; returns offers made (0, and no cycle, when no event asked for one)."""
        if not self._cycle_pending():
            return 0
        self._allocate_in_thread(self._take_candidates())
        return self._deliver(self._pending_batch)

    # --- frameworks ---------------------------------------------------------------------

    def call(self, framework: Framework, call: dict[str, Any]) -> None:
        """Handle one non-SUBSCRIBE scheduler call from a subscribed framework."""
        kind = call.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise CallError(400, f"unknown or unsupported call type {kind!r}")
        getattr(self, handler)(framework, call.get(kind.lower(), {}) or {})

    # --- calls -----------------------------------------------------------------------------

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

    #: the method of each non-SUBSCRIBE call type (the rooms define them)
    _handlers: dict[str, str] = {
        "ACCEPT": "_call_accept",
        "DECLINE": "_call_decline",
        "ACKNOWLEDGE": "_call_acknowledge",
        "KILL": "_call_kill",
        "RECONCILE": "_call_reconcile",
        "REVIVE": "_call_revive",
        "SUPPRESS": "_call_suppress",
        "TEARDOWN": "_call_teardown",
        "MESSAGE": "_call_message",
        "SHUTDOWN": "_call_shutdown",
    }

    # --- agents -------------------------------------------------------------------------------

    def register_agent(
        self,
        backend: AgentBackend,
        hostname: str,
        resources: res.Resources,
        attributes: dict[str, Any] | None = None,
        agent_id: str | None = None,
        tasks: list[Any] | tuple[Any, ...] = (),
        frameworks: list[Any] | tuple[Any, ...] = (),
    ) -> str:
        """Add an agent (its scalars go to the allocator, its ports stay here).

        ``tasks`` are the tasks a re-registering agent still runs (agent protocol
        REREGISTER): a restarted master adopts them, so their resources stay in use.
        ``frameworks`` are their FrameworkInfos, for frameworks this master does
        not know (see :meth:`_recover_frameworks`).  Tasks of frameworks this
        master removed are not adopted (:meth:`reconcile_agent` shuts them down).
        """
        agent_id = agent_id or f"{self.master_id}-S{len(self.agents)}"
        if agent_id in self.agents:
            raise CallError(409, f"agent {agent_id} is already registered")
        infos = self.framework_infos(frameworks)
        self.listed_tasks(tasks)
        adopted = [
            task
            for i, entry in enumerate(tasks)
            if (task := self._adoptable(agent_id, i, entry, infos)).framework_id
            not in self._completed_ids
        ]
        recovered = self._recover_frameworks(adopted, infos)
        allocations = tuple(
            Allocation(
                self.frameworks[t.framework_id].handle,
                self._role(t.role),
                tuple(p[2]),
                p[0],
                p[1],
            )
            for t in adopted
            for p in t.pieces
        )
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
            agent.free_ports = res.subtract_ranges(agent.free_ports, task.ports)
        for framework_id in recovered:
            if self.frameworks[framework_id].failover_timeout > 0:
                self._failover_timer(self.frameworks[framework_id])
        if adopted:
            logger.info("agent %s re-registered: adopted %d task(s)", agent_id, len(adopted))
        logger.debug("agent %s (%s) registered with %s", agent_id, hostname, resources)
        self._allocate_on(handle)
        return agent_id

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

    def reconcile_agent(self, agent_id: str, listed: set[tuple[str, str]]) -> None:
        """After a REREGISTER, settle what the agent and this master disagree on, as Mesos.

        Tasks of frameworks this master removed get the agent a SHUTDOWN_FRAMEWORK
        (the kills may have been lost with the old connection).  Tasks this master
        has on the agent that the agent does not list never reached it (their
        RUN_TASK went down a dead stream): TASK_LOST, their resources come back.
        """
        agent = self.agents[agent_id]
        shutdown = getattr(agent.backend, "shutdown_framework", None)
        for framework_id in sorted({f for f, _ in listed if f in self._completed_ids}):
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
        if framework is not None and task_id in framework.tasks:
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

    def remove_agent(self, agent_id: str, reason: str = "REASON_AGENT_REMOVED") -> None:
        """An agent is gone: rescind its offers, its tasks are lost."""
        agent = self.agents.pop(agent_id, None)
        if agent is None:
            return
        for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
            self._rescind(offer)
        for task in list(agent.tasks.values()):
            if not task.state.terminal:
                self._update(
                    task,
                    {
                        "task_id": {"value": task.task_id},
                        "state": str(TaskState.LOST),
                        "reason": reason,
                        "message": f"agent {agent_id} removed",
                        "source": "SOURCE_MASTER",
                    },
                    release=False,
                )
        with self._lock:
            self.allocator.remove_agent(agent.handle)
            # Under the lock: a cycle that took it as a candidate has either
            # run already or will not ask for it (its handle may be reused).
            self._candidates.discard(agent.handle)
            if self._taken is not None:
                self._taken.discard(agent.handle)
        self.agent_handles.remove(agent_id)
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

    # --- views ------------------------------------------------------------------------------------

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
        }


def _ranges_text(ranges: res.Ranges) -> str:
    return "[" + ", ".join(f"{a}-{b}" for a, b in ranges) + "]" if ranges else ""


__all__ = ["ALL_ROLES", "CallError", "Master", "MasterFlags", "SubscriptionDenied", "_id"]
