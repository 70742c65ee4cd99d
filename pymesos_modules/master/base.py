"""What every room of the master stands on: call errors, flags, and the Master's core.

:class:`MasterBase` declares the state the :class:`~pymesos_modules.master.master.Master`
owns (it creates all of it in its ``__init__``) and the few primitives every room
uses: allocator calls under the one lock, role handles, resource vectors, waking
the allocation loop, sending an event to a framework, asking the authorizer, and
giving resources back to the allocator.  The rooms (offers, tasks, frameworks,
agents, views) are mixins over it; each names the rooms it calls as its bases,
so their calls point one way: offers <- tasks <- frameworks <- agents, and
views reads them all.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymesos_modules import __version__, metrics, zookeeper
from pymesos_modules.ids import id_problem
from pymesos_modules.kinds.allocator import Allocator, AllocatorCallError, OfferBatch
from pymesos_modules.kinds.authorizer import Action, AuthorizationRequest, Authorizer
from pymesos_modules.kinds.hook import HookChain
from pymesos_modules.kinds.http_authenticator import HttpAuthenticator
from pymesos_modules.master import resources as res
from pymesos_modules.master.registry import Registrar
from pymesos_modules.master.state import (
    Agent,
    Executor,
    Framework,
    HandleMap,
    Offer,
    Piece,
)

logger = logging.getLogger(__name__)


class CallError(Exception):
    """A scheduler call was rejected; ``status`` is the HTTP status Mesos would answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SubscriptionDenied(CallError):
    """The authorizer refused a SUBSCRIBE: Mesos answers with an ERROR event, then closes."""

    def __init__(self, message: str) -> None:
        super().__init__(403, message)


@dataclass
class MasterFlags:
    """Master settings (Mesos flag names)."""

    allocation_interval: float = 1.0
    offer_timeout: float | None = None
    heartbeat_interval: float = 15.0
    authenticate_frameworks: bool = False
    agent_reregister_timeout: float = 600.0
    #: an agent silent for agent_ping_timeout x max_agent_ping_timeouts is lost (0: never)
    agent_ping_timeout: float = 15.0
    max_agent_ping_timeouts: int = 5
    resource_names: tuple[str, ...] = ("cpus", "mem", "disk", "gpus")
    random_seed: int = 0
    filter_gpu_resources: bool = True
    hostname: str = "localhost"
    #: the address the master listens on (MasterInfo.ip and address.ip)
    ip: str = "127.0.0.1"
    port: int = 5050
    extra: dict[str, Any] = field(default_factory=dict)


def _id(value: Any, where: str) -> str:
    """The id in ``{"value": ...}``, checked once here by Mesos' validateID rules
    (pymesos_modules/ids.py); CallError(400) names ``where``.  In a launch that
    error fails the task with TASK_ERROR, as Mesos."""
    if not isinstance(value, dict) or not isinstance(value.get("value"), str) or not value["value"]:
        raise CallError(400, f"{where} must be an object with a non-empty 'value'")
    problem = id_problem(value["value"])
    if problem is not None:
        raise CallError(400, f"{where}: {problem}")
    return value["value"]


def _time_info(seconds: float) -> dict[str, int]:
    """Mesos' TimeInfo of a Unix time."""
    return {"nanoseconds": int(seconds * 1e9)}


class MasterBase:
    """The Master's state (declared here, created by ``Master.__init__``) and core primitives."""

    flags: MasterFlags
    authorizer: Authorizer | None
    hooks: list[Any]
    hook_chain: HookChain
    http_authenticators: list[HttpAuthenticator]
    allocator: Allocator
    clock: Callable[[], float]
    metrics: metrics.MetricsRegistry
    master_id: str
    started: float
    frameworks: dict[str, Framework]
    agents: dict[str, Agent]
    offers: dict[str, Offer]
    roles: HandleMap
    framework_handles: HandleMap
    agent_handles: HandleMap
    #: executors of task groups by (framework id, agent id, executor id)
    executors: dict[tuple[str, str, str], Executor]
    counters: dict[str, int]
    #: the registry's writer (master/registry.py): admitted and unreachable agents
    registrar: Registrar
    #: agents the recovered registry admitted that have not re-registered yet, by id
    recovering: dict[str, dict[str, Any]]
    last_allocation_ms: float
    #: the registered scalar resource names, as a set (what a task may ask for)
    _known_names: frozenset[str]
    #: offers made so far (an offer id is the master's id and this number, as Mesos')
    _offer_serial: int
    _lock: threading.Lock
    _wake: asyncio.Event | None
    _pending_batch: OfferBatch | None
    _candidates: set[int]
    _everywhere: bool
    _taken: set[int] | None
    _completed_ids: set[str]
    _agent_serial: int

    def _alloc(self, call: str, *args: Any) -> Any:
        with self._lock:
            return getattr(self.allocator, call)(*args)

    def _role(self, name: str) -> int:
        handle = self.roles.get(name)
        if handle is None:
            handle = self.roles.add(name)
            try:
                self._alloc("add_role", handle, name)
            except BaseException:
                # A role the allocator refused must not stay in the table: the next
                # framework in that role would get a handle the allocator never saw.
                self.roles.remove(name)
                raise
        return handle

    def _vector(self, resources: res.Resources) -> tuple[float, ...]:
        get = resources.scalars.get
        return tuple([float(get(n, 0.0)) for n in self.flags.resource_names])

    def _scalars(self, vector: tuple[float, ...]) -> dict[str, float]:
        return {n: v for n, v in zip(self.flags.resource_names, vector, strict=True) if v > 0}

    def _sum(self, vectors: Iterable[Sequence[float]]) -> tuple[float, ...]:
        """Resource vectors added up (zeros for none)."""
        total = [0.0] * len(self.flags.resource_names)
        for vector in vectors:
            total = [a + b for a, b in zip(total, vector, strict=True)]
        return tuple(total)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _allocate_on(self, agent: int) -> None:
        """An event about one agent: the next cycle visits it (and whatever else is pending)."""
        self._candidates.add(agent)
        self._wake_up()

    def _allocate_everywhere(self) -> None:
        """An event about a framework: the next cycle visits every agent."""
        self._everywhere = True
        self._wake_up()

    def _recover(
        self,
        framework: Framework | None,
        agent: Agent | None,
        fw_handle: int,
        agent_handle: int,
        role_handle: int,
        pieces: list[Piece],
        refuse: float,
    ) -> None:
        if agent is not None:  # resources come back on it: offer them again soon
            self._allocate_on(agent.handle)
        for pool, revocable, vector in pieces:
            if not any(v > 0 for v in vector):
                continue
            try:
                self._alloc(
                    "recover_resources",
                    fw_handle,
                    agent_handle,
                    role_handle,
                    vector,
                    refuse,
                    self.clock(),
                    pool,
                    revocable,
                )
            except AllocatorCallError as exc:  # already recovered by a removal
                logger.debug("recover skipped: %s", exc)

    def _send(self, framework: Framework, event: dict[str, Any]) -> None:
        if framework.sink is not None and framework.connected:
            framework.sink.send(event)

    def _authorized(self, action: Action, principal: str | None, obj: str) -> bool:
        if self.authorizer is None:
            return True
        try:
            return bool(self.authorizer.authorized(AuthorizationRequest(action, principal, obj)))
        except Exception:  # a failing authorizer denies (Mesos: "Failed to authorize")
            logger.exception("authorizer failed on %s of %r by %r: denied", action, obj, principal)
            return False

    def master_info(self) -> dict[str, Any]:
        """Mesos' MasterInfo (what SUBSCRIBED carries and the master publishes in ZooKeeper)."""
        flags = self.flags
        return zookeeper.master_info(
            self.master_id, flags.ip, flags.port, flags.hostname, __version__
        )
