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

The master is carved into rooms by concern, as Mesos separates master.cpp,
its registrar and its read-only handlers; each room is a mixin over
:class:`~pymesos_modules.master.base.MasterBase` and names the rooms it calls
as its bases, so calls point one way:

- ``offers.py``: offers made, declined, rescinded, expired; an ACCEPT's
  offers claimed and their resources taken;
- ``executors.py`` (over offers): what executors hold on agents, launched,
  ended, or adopted from a re-registering agent;
- ``tasks.py`` (over executors): launching tasks and groups, status updates,
  KILL, RECONCILE, ACKNOWLEDGE, MESSAGE, SHUTDOWN;
- ``frameworks.py`` (over tasks): SUBSCRIBE, failover, removal, REVIVE,
  SUPPRESS, TEARDOWN;
- ``agents.py`` (over frameworks): registration, re-registration,
  disconnection, removal;
- ``recovery.py`` (over agents): durable admission in the registry
  (``registry.py``), unreachable agents, recovery of a restarted master;
- ``views.py`` (over offers): ``/state`` and ``/metrics/snapshot``.

This class owns the state and the lock (it creates all of it), runs the
allocation loop and routes each scheduler call to its room.
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

from pymesos_modules import metrics
from pymesos_modules.kinds.allocator import (
    ALL_ROLES,
    Allocator,
    AllocatorOptions,
    OfferBatch,
    takes_agents,
)
from pymesos_modules.kinds.authorizer import Authorizer
from pymesos_modules.kinds.hook import HookChain
from pymesos_modules.kinds.http_authenticator import HttpAuthenticator
from pymesos_modules.master.base import CallError, MasterFlags, SubscriptionDenied, _id
from pymesos_modules.master.recovery import RecoveryRoom
from pymesos_modules.master.registry import InMemoryBackend, Registrar
from pymesos_modules.master.state import (
    Agent,
    Executor,
    Framework,
    HandleMap,
    Offer,
)
from pymesos_modules.master.views import ViewsRoom

logger = logging.getLogger(__name__)


class Master(RecoveryRoom, ViewsRoom):
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
        registrar: Registrar | None = None,
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
        self._agent_serial = 0
        #: the registry (in memory unless given); :meth:`recover` reads it before serving
        self.registrar = registrar if registrar is not None else Registrar(InMemoryBackend())
        self.recovering: dict[str, dict[str, Any]] = {}
        self._recovery_task: asyncio.Task | None = None
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
            "recovery_slave_removals": 0,
        }
        self.last_allocation_ms = 0.0
        names = self.flags.resource_names
        self._known_names = frozenset(names)
        self._offer_serial = 0
        self.allocator.initialize(
            AllocatorOptions(
                resource_names=names,
                random_seed=self.flags.random_seed,
                allocation_interval=self.flags.allocation_interval,
                filter_gpu_resources=self.flags.filter_gpu_resources,
            )
        )

    # --- allocation candidates -------------------------------------------------------

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
        if self.recovering:
            self._recovery_task = asyncio.create_task(self._recovery_timeout())

    async def stop(self) -> None:
        """Stop the loop and close every subscriber stream."""
        self._stopping = True
        if self._recovery_task is not None:
            self._recovery_task.cancel()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            # Cancelling the loop does not stop a cycle already running in its thread;
            # wait for it (it holds the lock) so the allocator may be closed after stop().
            await asyncio.to_thread(self._lock.acquire)
            self._lock.release()
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

    # --- scheduler calls ---------------------------------------------------------------------

    def call(self, framework: Framework, call: dict[str, Any]) -> None:
        """Handle one non-SUBSCRIBE scheduler call from a subscribed framework."""
        kind = call.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise CallError(400, f"unknown or unsupported call type {kind!r}")
        getattr(self, handler)(framework, call.get(kind.lower(), {}) or {})

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


__all__ = ["ALL_ROLES", "CallError", "Master", "MasterFlags", "SubscriptionDenied", "_id"]
