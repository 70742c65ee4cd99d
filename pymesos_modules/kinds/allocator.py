"""The allocator kind: the Protocol every allocator implements, and its records.

The master speaks to an allocator only through :class:`Allocator`, whether the
allocator is a native module behind cffi, the pybind11 binding of the native
DRF engine, or a pure-Python class.  The calls mirror ``pmm_allocator_vtable``
in ``include/pymesos_modules/allocator.h`` one for one: dense integer handles
for frameworks, agents and roles, resources as one float per registered
scalar resource name, and one flat :class:`OfferBatch` per allocation cycle.

Every call that fails raises :class:`AllocatorCallError` (naming the call and
the allocator) and leaves the allocator's state unchanged.
"""

from __future__ import annotations

import enum
import inspect
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from pymesos_modules.abi import AllocatorCalls, NativeCallError, NativeInstance
from pymesos_modules.errors import ModuleError
from pymesos_modules.kinds.base import NativeModule, register_kind

#: Pool id of unreserved resources, and "no role"; equals the C ABI's
#: ``PMM_UNRESERVED`` read as an unsigned 32-bit handle.
UNRESERVED = 0xFFFFFFFF
#: ``role`` argument of suppress()/revive() meaning every role of the framework.
ALL_ROLES = 0xFFFFFFFF

#: Mesos' default minimum allocatable resources: ``cpus:0.01|mem:32``.
DEFAULT_MIN_ALLOCATABLE: tuple[Mapping[str, float], ...] = ({"cpus": 0.01}, {"mem": 32.0})
#: Mesos' default refusal filter duration when a framework gives none.
DEFAULT_REFUSE_SECONDS = 5.0


class Capability(enum.IntFlag):
    """Framework capabilities the allocator cares about (``pmm_framework_capabilities``)."""

    REVOCABLE_RESOURCES = 1
    GPU_RESOURCES = 2
    MULTI_ROLE = 4
    RESERVATION_REFINEMENT = 8


NO_CAPABILITIES = Capability(0)


class OfferFlag(enum.IntFlag):
    """Flags of an offer row (``pmm_offer_flags``)."""

    REVOCABLE = 1


class AllocatorCallError(ModuleError):
    """An allocator call was rejected (bad handle, NaN, duplicate add, ...).

    ``status`` is the ABI status code (``PMM_ERR_*``) and the message names the
    allocator and the call.  The allocator's state is unchanged.
    """

    def __init__(self, allocator: str, call: str, status: int, message: str) -> None:
        self.allocator = allocator
        self.call = call
        self.status = status
        self.detail = message
        super().__init__(f"allocator '{allocator}': {call}() failed: {message}")


@dataclass(frozen=True, slots=True)
class AllocatorOptions:
    """Options given once to :meth:`Allocator.initialize`."""

    resource_names: tuple[str, ...] = ("cpus", "mem", "disk", "gpus")
    #: Alternatives; leftover resources are allocatable when they cover any one.
    min_allocatable: tuple[Mapping[str, float], ...] = DEFAULT_MIN_ALLOCATABLE
    #: Resource names left out of dominant-share computation.
    fairness_excluded: frozenset[str] = frozenset()
    random_seed: int = 0
    #: Seconds; the shortest a refusal filter lasts (Mesos: allocation_interval).
    allocation_interval: float = 1.0
    #: When set, agents with GPUs are offered only to GPU_RESOURCES frameworks.
    filter_gpu_resources: bool = True

    def min_allocatable_matrix(self) -> npt.NDArray[np.float64]:
        """The alternatives as a (k, resource_count) matrix, 0 where not required."""
        index = {name: i for i, name in enumerate(self.resource_names)}
        matrix = np.zeros((len(self.min_allocatable), len(self.resource_names)))
        for row, alternative in enumerate(self.min_allocatable):
            for name, amount in alternative.items():
                if name in index:
                    matrix[row, index[name]] = amount
        return matrix


@dataclass(frozen=True, slots=True)
class FrameworkInfo:
    """What the allocator knows of a framework (``pmm_framework_info``)."""

    roles: tuple[int, ...]
    capabilities: Capability = NO_CAPABILITIES
    suppressed_roles: frozenset[int] = frozenset()
    active: bool = True


@dataclass(frozen=True, slots=True)
class Allocation:
    """Resources a framework already holds on an agent (``pmm_allocation``)."""

    framework: int
    role: int
    resources: tuple[float, ...]
    pool: int = UNRESERVED
    revocable: bool = False


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """An agent's totals by pool and what is already in use (``pmm_agent_info``)."""

    unreserved: tuple[float, ...]
    #: role handle -> resources reserved for that role
    reservations: Mapping[int, tuple[float, ...]] = field(default_factory=dict)
    revocable: tuple[float, ...] | None = None
    allocations: tuple[Allocation, ...] = ()
    active: bool = True


#: NumPy layout of ``pmm_offer_row``; the native wrapper views the C buffer with it.
OFFER_ROW_DTYPE = np.dtype(
    [
        ("framework", "<u4"),
        ("agent", "<u4"),
        ("role", "<u4"),
        ("pool", "<u4"),
        ("flags", "<u4"),
        ("reserved0", "<u4"),
    ]
)


@dataclass(frozen=True, slots=True)
class OfferBatch:
    """Everything one allocation cycle offers: one row per (framework, agent, role, pool).

    ``rows`` is a structured array of :data:`OFFER_ROW_DTYPE`; ``values`` is a
    ``(len(rows), resource_count)`` float64 matrix.  For a native allocator
    both may be zero-copy views of the allocator's buffer: they are valid only
    until the next call on that allocator, so copy (:meth:`copy`) to keep them.
    """

    rows: npt.NDArray[np.void]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def empty(cls, resource_count: int) -> OfferBatch:
        """A batch with no offers."""
        return cls(np.zeros(0, OFFER_ROW_DTYPE), np.zeros((0, resource_count)))

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[tuple[int, int, int, int, int]],
        values: Sequence[Sequence[float]],
        resource_count: int,
    ) -> OfferBatch:
        """Build a batch from (framework, agent, role, pool, flags) tuples."""
        array = np.zeros(len(rows), OFFER_ROW_DTYPE)
        if rows:
            table = np.asarray(rows, dtype=np.uint32).reshape(len(rows), 5)
            for column, name in enumerate(("framework", "agent", "role", "pool", "flags")):
                array[name] = table[:, column]
        matrix = np.asarray(values, dtype=np.float64).reshape(len(rows), resource_count)
        return cls(array, matrix)

    def copy(self) -> OfferBatch:
        """A batch that owns its memory (survives the allocator's next call)."""
        return OfferBatch(self.rows.copy(), self.values.copy())

    def as_tuples(self) -> list[tuple[int, int, int, int, int, tuple[float, ...]]]:
        """Rows as plain tuples, in order: for comparing allocators offer for offer."""
        return [
            (
                int(r["framework"]),
                int(r["agent"]),
                int(r["role"]),
                int(r["pool"]),
                int(r["flags"]),
                tuple(float(v) for v in vals),
            )
            for r, vals in zip(self.rows, self.values, strict=True)
        ]

    def same_offers(self, other: OfferBatch) -> bool:
        """True when both batches hold identical rows and bit-identical values."""
        return (
            len(self) == len(other)
            and bool(
                np.array_equal(
                    self.rows[["framework", "agent", "role", "pool", "flags"]],
                    other.rows[["framework", "agent", "role", "pool", "flags"]],
                )
            )
            and self.values.tobytes() == other.values.tobytes()
        )


@runtime_checkable
class Allocator(Protocol):
    """Mesos-style allocator operations; one method per ABI call.

    ``now`` arguments are seconds on the host's clock (virtual in the simulator),
    which keeps every allocator deterministic for a given call sequence.
    """

    name: str

    def initialize(self, options: AllocatorOptions) -> None:
        """Register resource names and options; called once, first."""

    def add_role(self, role: int, name: str) -> None:
        """Declare a role handle and its path name (``eng/ml/batch``)."""

    def add_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Add a framework subscribed in ``info.roles``."""

    def remove_framework(self, framework: int) -> None:
        """Remove a framework and recover everything allocated to it."""

    def activate_framework(self, framework: int) -> None:
        """Make a framework eligible for offers again."""

    def deactivate_framework(self, framework: int) -> None:
        """Stop offering to a framework (e.g. it disconnected)."""

    def update_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Replace a framework's roles, capabilities and suppressed roles."""

    def add_agent(self, agent: int, info: AgentInfo) -> None:
        """Add an agent with its pools and existing allocations."""

    def remove_agent(self, agent: int) -> None:
        """Remove an agent and everything allocated on it."""

    def activate_agent(self, agent: int) -> None:
        """Make an agent's resources offerable again."""

    def deactivate_agent(self, agent: int) -> None:
        """Stop offering an agent's resources."""

    def update_agent(self, agent: int, info: AgentInfo) -> None:
        """Replace an agent's totals; its current allocations are kept."""

    def recover_resources(
        self,
        framework: int,
        agent: int,
        role: int,
        resources: Sequence[float],
        refuse_seconds: float,
        now: float,
        pool: int = UNRESERVED,
        revocable: bool = False,
    ) -> None:
        """Return resources to the agent's pool; refuse_seconds > 0 adds a filter."""

    def suppress(self, framework: int, role: int = ALL_ROLES) -> None:
        """Stop offers to a framework in one role (or all its roles)."""

    def revive(self, framework: int, role: int = ALL_ROLES) -> None:
        """Resume offers in a role (or all roles) and clear the framework's filters."""

    def update_weights(self, weights: Mapping[int, float]) -> None:
        """Set role weights (default 1.0)."""

    def update_quota(self, role: int, guarantees: Sequence[float], limits: Sequence[float]) -> None:
        """Set a role's quota; ``math.inf`` limits mean unlimited."""

    def pause(self) -> None:
        """Make allocate() produce no offers until resume()."""

    def resume(self) -> None:
        """Undo pause()."""

    def allocate(self, now: float, agents: Collection[int] | None = None) -> OfferBatch:
        """Run one allocation cycle over every active agent, or over those among ``agents``.

        ``agents`` is a set of agent handles (order and duplicates do not
        matter): the master batches events about a few agents into one cycle
        over the union of their agents, as Mesos does.  That cycle decides as
        a full one would with the other agents left out of the visit; shares
        and quota headroom still count the whole cluster, and inactive agents
        are skipped.  An unknown handle raises :class:`AllocatorCallError`
        (``PMM_ERR_NOT_FOUND``) and changes nothing.
        """

    def stats(self) -> dict[str, float]:
        """Counters for metrics: allocation_runs, offers_made, filtered_skips, ..."""

    def close(self) -> None:
        """Release the allocator (a native one destroys its instance, exactly once)."""


def takes_agents(allocator: Allocator) -> bool:
    """Whether ``allocator.allocate`` accepts ``agents``.

    Python allocators written before the argument existed take only ``now``;
    the master runs full cycles for them, as the native wrapper does for
    modules whose function table predates ``allocate_agents``.
    """
    try:
        parameters = inspect.signature(allocator.allocate).parameters
    except (TypeError, ValueError):  # a builtin without a signature: assume the old form
        return False
    return "agents" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def agent_handles(allocator: str, agents: Collection[int]) -> npt.NDArray[np.uint32]:
    """``agents`` as the C-contiguous uint32 array the native calls read in place.

    A value no agent handle can be (negative, too large, not an integer) is
    an unknown agent: :class:`AllocatorCallError` with ``PMM_ERR_NOT_FOUND``,
    as the Python allocators answer for it.
    """
    values = agents if isinstance(agents, np.ndarray) else list(agents)
    array = np.asarray(values)
    if array.size and (
        array.dtype.kind not in "iu" or int(array.min()) < 0 or int(array.max()) > 0xFFFFFFFF
    ):
        bad = next(v for v in values if not _handle_like(v))
        raise AllocatorCallError(allocator, "allocate", 3, f"unknown agent {bad!r}")
    return np.ascontiguousarray(array, dtype=np.uint32)


def _handle_like(value: object) -> bool:
    return (
        isinstance(value, int | np.integer)
        and not isinstance(value, bool)
        and 0 <= int(value) <= 0xFFFFFFFF
    )


def check_vector(
    allocator: str,
    call: str,
    what: str,
    values: Sequence[float],
    resource_count: int,
    *,
    allow_inf: bool = False,
) -> tuple[float, ...]:
    """Validate a resource vector the way the native engine does, or raise.

    Used by the Python allocators so both implementations reject the same
    inputs with the same status (``PMM_ERR_INVALID``).
    """
    vector = tuple(float(v) for v in values)
    if len(vector) != resource_count:
        raise AllocatorCallError(
            allocator, call, 2, f"{what} has {len(vector)} values, expected {resource_count}"
        )
    for value in vector:
        if math.isnan(value) or value < 0 or (math.isinf(value) and not allow_inf):
            raise AllocatorCallError(
                allocator, call, 2, f"{what} must be finite and >= 0, got {value!r}"
            )
    return vector


class NativeAllocator(NativeModule):
    """A native allocator module behind the Allocator Protocol (one ABI call per method).

    ``allocate()`` returns an :class:`OfferBatch` whose arrays are zero-copy
    NumPy views of the module's own output buffer (valid until the next call).
    """

    kind = "allocator"

    def __init__(self, instance: NativeInstance) -> None:
        super().__init__(instance)
        self._calls = AllocatorCalls(instance)
        self._rcount = 0

    def _call(self, call: str, *args: object) -> None:
        try:
            self.instance.call(call, *args)
        except NativeCallError as exc:
            raise AllocatorCallError(self.name, call, exc.status, exc.detail) from None

    def initialize(self, options: AllocatorOptions) -> None:
        """Register resource names and options."""
        excluded = set(options.fairness_excluded)
        try:
            self._calls.initialize(
                list(options.resource_names),
                options.min_allocatable_matrix().tolist(),
                [name in excluded for name in options.resource_names],
                options.random_seed,
                options.allocation_interval,
                options.filter_gpu_resources,
            )
        except NativeCallError as exc:
            raise AllocatorCallError(self.name, "initialize", exc.status, exc.detail) from None
        self._rcount = len(options.resource_names)

    def _vec(self, call: str, what: str, values: Sequence[float]) -> Sequence[float]:
        # Length is the one thing C cannot check from a pointer.
        if len(values) != self._rcount:
            raise AllocatorCallError(
                self.name, call, 2, f"{what} has {len(values)} values, expected {self._rcount}"
            )
        return values

    def add_role(self, role: int, name: str) -> None:
        """Declare a role."""
        self._call("add_role", role, name.encode())

    def _framework_info(self, call: str, info: FrameworkInfo) -> tuple[object, list]:
        roles = list(info.roles)
        return self._calls.framework_info(
            roles, [r in info.suppressed_roles for r in roles], int(info.capabilities), info.active
        )

    def add_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Add a framework."""
        struct, _keep = self._framework_info("add_framework", info)
        self._call("add_framework", framework, struct)

    def update_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Replace a framework's roles and capabilities."""
        struct, _keep = self._framework_info("update_framework", info)
        self._call("update_framework", framework, struct)

    def remove_framework(self, framework: int) -> None:
        """Remove a framework."""
        self._call("remove_framework", framework)

    def activate_framework(self, framework: int) -> None:
        """Offer to a framework again."""
        self._call("activate_framework", framework)

    def deactivate_framework(self, framework: int) -> None:
        """Stop offering to a framework."""
        self._call("deactivate_framework", framework)

    def _agent_info(self, call: str, info: AgentInfo) -> tuple[object, list]:
        return self._calls.agent_info(
            list(self._vec(call, "unreserved", info.unreserved)),
            [
                (role, list(self._vec(call, "reservation", v)))
                for role, v in sorted(info.reservations.items())
            ],
            None if info.revocable is None else list(self._vec(call, "revocable", info.revocable)),
            [
                (
                    a.framework,
                    a.role,
                    a.pool,
                    int(OfferFlag.REVOCABLE) if a.revocable else 0,
                    list(self._vec(call, "allocation", a.resources)),
                )
                for a in info.allocations
            ],
            info.active,
        )

    def add_agent(self, agent: int, info: AgentInfo) -> None:
        """Add an agent."""
        struct, _keep = self._agent_info("add_agent", info)
        self._call("add_agent", agent, struct)

    def update_agent(self, agent: int, info: AgentInfo) -> None:
        """Replace an agent's totals."""
        struct, _keep = self._agent_info("update_agent", info)
        self._call("update_agent", agent, struct)

    def remove_agent(self, agent: int) -> None:
        """Remove an agent."""
        self._call("remove_agent", agent)

    def activate_agent(self, agent: int) -> None:
        """Offer an agent again."""
        self._call("activate_agent", agent)

    def deactivate_agent(self, agent: int) -> None:
        """Stop offering an agent."""
        self._call("deactivate_agent", agent)

    def recover_resources(
        self,
        framework: int,
        agent: int,
        role: int,
        resources: Sequence[float],
        refuse_seconds: float,
        now: float,
        pool: int = UNRESERVED,
        revocable: bool = False,
    ) -> None:
        """Return resources to their pool, optionally with a filter."""
        vector = self._calls.vector(self._vec("recover_resources", "resources", resources))
        flags = int(OfferFlag.REVOCABLE) if revocable else 0
        self._call(
            "recover_resources", framework, agent, role, pool, flags, vector, refuse_seconds, now
        )

    def suppress(self, framework: int, role: int = ALL_ROLES) -> None:
        """Stop offers in a role."""
        self._call("suppress", framework, role)

    def revive(self, framework: int, role: int = ALL_ROLES) -> None:
        """Resume offers in a role and clear its filters."""
        self._call("revive", framework, role)

    def update_weights(self, weights: Mapping[int, float]) -> None:
        """Set role weights."""
        roles, values = list(weights), [float(w) for w in weights.values()]
        self._call("update_weights", len(roles), roles or [0], values or [0.0])

    def update_quota(self, role: int, guarantees: Sequence[float], limits: Sequence[float]) -> None:
        """Set a role's quota."""
        self._call(
            "update_quota",
            role,
            [float(v) for v in self._vec("update_quota", "guarantees", guarantees)],
            [float(v) for v in self._vec("update_quota", "limits", limits)],
        )

    def pause(self) -> None:
        """Offer nothing until resume()."""
        self._call("pause")

    def resume(self) -> None:
        """Undo pause()."""
        self._call("resume")

    def allocate(self, now: float, agents: Collection[int] | None = None) -> OfferBatch:
        """One cycle; the batch views the module's buffer without copying.

        A module whose table predates ``allocate_agents`` runs a full cycle
        for ``agents`` instead: a superset of the candidates.
        """
        handles = None
        if agents is not None and self._calls.has_allocate_agents:
            handles = agent_handles(self.name, agents)
        try:
            rows, values, count = self._calls.allocate(now, handles)
        except NativeCallError as exc:
            raise AllocatorCallError(self.name, "allocate", exc.status, exc.detail) from None
        if count == 0:
            return OfferBatch.empty(self._rcount)
        return OfferBatch(
            np.frombuffer(rows, dtype=OFFER_ROW_DTYPE, count=count),
            np.frombuffer(values, dtype=np.float64).reshape(count, self._rcount),
        )

    def stats(self) -> dict[str, float]:
        """The module's counters."""
        try:
            return self._calls.stats()
        except NativeCallError as exc:
            raise AllocatorCallError(self.name, "stats", exc.status, exc.detail) from None


register_kind("allocator", NativeAllocator, Allocator)


class OfferView:
    """One offer (framework, agent, role) over a batch's rows, read lazily.

    Building 10,000 of these costs one small object each; the resources are
    read from the batch's arrays only when asked for, so a master that only
    forwards offer ids and a few fields never pays for the rest.
    """

    __slots__ = ("_batch", "_start", "_stop")

    def __init__(self, batch: OfferBatch, start: int, stop: int) -> None:
        self._batch, self._start, self._stop = batch, start, stop

    @property
    def framework(self) -> int:
        """Framework handle."""
        return int(self._batch.rows["framework"][self._start])

    @property
    def agent(self) -> int:
        """Agent handle."""
        return int(self._batch.rows["agent"][self._start])

    @property
    def role(self) -> int:
        """Role handle the offer is made in."""
        return int(self._batch.rows["role"][self._start])

    def resources(self, names: Sequence[str]) -> dict[tuple[int, bool], dict[str, float]]:
        """(pool, revocable) -> {resource name: amount} for every pool in the offer."""
        rows = self._batch.rows[self._start : self._stop]
        values = self._batch.values[self._start : self._stop].tolist()
        result: dict[tuple[int, bool], dict[str, float]] = {}
        for pool, flags, amounts in zip(
            rows["pool"].tolist(), rows["flags"].tolist(), values, strict=True
        ):
            result[(pool, bool(flags & OfferFlag.REVOCABLE))] = {
                n: a for n, a in zip(names, amounts, strict=True) if a > 0
            }
        return result

    def total(self) -> npt.NDArray[np.float64]:
        """All pools added up (a resource_count vector)."""
        return self._batch.values[self._start : self._stop].sum(axis=0)


def offer_starts(batch: OfferBatch) -> list[int]:
    """Where each offer's rows start: one offer per consecutive (framework, agent, role) run.

    Boundaries are found with vectorised NumPy comparisons.  (An allocator emits
    all pools of one decision consecutively.)
    """
    count = len(batch)
    if count == 0:
        return []
    rows = batch.rows
    change = np.zeros(count, dtype=bool)
    change[0] = True
    for field_name in ("framework", "agent", "role"):
        column = rows[field_name]
        change[1:] |= column[1:] != column[:-1]
    return np.flatnonzero(change).tolist()


def materialize(batch: OfferBatch) -> list[OfferView]:
    """A cycle's rows as offers (:func:`offer_starts`); the only per-offer Python work is
    creating one small :class:`OfferView`."""
    starts = offer_starts(batch)
    stops = [*starts[1:], len(batch)]
    return [OfferView(batch, a, b) for a, b in zip(starts, stops, strict=True)]
