"""The Python twin of the native DRF engine: Mesos' hierarchical DRF, readable.

This is the reference for the semantics written up in docs/allocator.md; the
C++ engine in native/allocators/drf/ makes the same decisions bit for bit
(same arithmetic in the same order, same PRNG), which the differential tests
check offer for offer.

One cycle (:meth:`DRFAllocator.allocate`):

1. Expire filters (``expiry <= now``).
2. Shuffle the active agents (sorted by handle; for a cycle over a set of
   agents, the active ones among them) with :class:`SplitMix64` and a
   Fisher-Yates pass: ``for i = n-1 .. 1: j = next() % (i + 1); swap(i, j)``.
3. Stage 1 (quota guarantees), then stage 2 (fair share); each stage visits
   the agents in the shuffled order.  At each agent the candidate order is a
   snapshot: share updates caused by that agent's allocations are applied
   after the visit, as Mesos sorts once per agent.

Candidate order is a depth-first walk of the role tree: the children of a role
(its sub-roles and a group holding the role's own frameworks) are ordered by
(weighted dominant share, allocation count, name); frameworks in a group by
(dominant share, allocation count, handle).  Counts compare as at most
:data:`ORDER_COUNT_LIMIT`, where the engine's packed sort key saturates.

As in the engine, a group orders only its eligible frameworks (active,
subscribed, not suppressed), and while some framework is filtered on every
agent a second order leaves those out; it is walked at agents where every
such filter blocks whatever the agent could offer, so the frameworks it
skips would all have been filtered there: same offers, without walking a
thousand declined frameworks per agent.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from pymesos_modules.kinds.allocator import (
    ALL_ROLES,
    UNRESERVED,
    AgentInfo,
    AllocatorCallError,
    AllocatorOptions,
    Capability,
    FrameworkInfo,
    OfferBatch,
    OfferFlag,
    check_vector,
)

# ABI status codes (enum pmm_status_codes in module.h).
INVALID, NOT_FOUND, EXISTS, STATE = 2, 3, 4, 7
#: Largest handle accepted: handles are dense indices, so a huge one is a bug.
MAX_HANDLE = (1 << 21) - 1
#: Allocations smaller than this after a recover are treated as fully recovered.
EPSILON = 1e-9
_MASK = (1 << 64) - 1


class SplitMix64:
    """The PRNG both engines use (Steele, Lea, Flood 2014): tiny, fast, well mixed."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next(self) -> int:
        """The next 64-bit output."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def shuffle(self, items: list) -> None:
        """Fisher-Yates, from the end: the exact sequence the C++ engine uses."""
        for i in range(len(items) - 1, 0, -1):
            j = self.next() % (i + 1)
            items[i], items[j] = items[j], items[i]


def _add(a: list[float], b: Sequence[float]) -> None:
    for r, v in enumerate(b):
        a[r] += v


def _sub(a: list[float], b: Sequence[float]) -> None:
    for r, v in enumerate(b):
        a[r] -= v


def _nonzero(v: Sequence[float]) -> bool:
    return any(x > 0.0 for x in v)


def _subset(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True))


class _Sorted:
    """Things with a sort key kept in order; keys are recomputed, never mutated in place."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: SortedList = SortedList()

    def add(self, item: _Keyed) -> None:
        item.key = item.compute_key()
        self.items.add((item.key, item))

    def remove(self, item: _Keyed) -> None:
        self.items.remove((item.key, item))

    def reposition(self, item: _Keyed) -> None:
        new = item.compute_key()
        if new != item.key:
            self.items.remove((item.key, item))
            item.key = new
            self.items.add((new, item))


class _Keyed:
    key: tuple
    alloc: list[float]
    count: int

    def compute_key(self) -> tuple:  # pragma: no cover - overridden
        raise NotImplementedError

    def __lt__(self, other: _Keyed) -> bool:  # keys are unique; never reached
        return id(self) < id(other)


#: Allocation counts past this sort as this (the engine packs them in 43 bits
#: of its sort key; a framework would need a million offers a second for a
#: hundred days to get there).
ORDER_COUNT_LIMIT = 2**43 - 1


@dataclass(eq=False)
class _Leaf(_Keyed):
    """A (framework, role) pair: the unit that receives offers."""

    engine: DRFAllocator
    framework: int
    role: _Role
    alloc: list[float]
    count: int = 0
    subscribed: bool = True
    #: this (framework, role)'s refusal filters by agent handle: revive and
    #: removal then touch only these, not every filter in the cluster
    filters: dict[int, _Filter] = field(default_factory=dict)
    #: in its group's ``eligible`` and ``live`` orders (see DRFAllocator._refresh_live)
    in_eligible: bool = False
    in_live: bool = False
    key: tuple = ()

    def compute_key(self) -> tuple:
        return (self.engine._share(self.alloc), min(self.count, ORDER_COUNT_LIMIT), self.framework)


@dataclass(eq=False)
class _Group(_Keyed):
    """A role's own frameworks, ordered among the role's sub-roles."""

    role: _Role
    alloc: list[float]
    count: int = 0
    #: the leaves that may be offered anything at all (framework active, role
    #: subscribed and not suppressed) in DRF order: the walks visit only
    #: these, so suppressed frameworks cost an agent visit nothing; other
    #: leaves sit in no order and get their key when they join one
    eligible: _Sorted = field(default_factory=_Sorted)
    #: the eligible leaves not filtered on every agent, in the same order,
    #: kept only while some leaf is filtered everywhere: the walk takes it at
    #: agents where every such filter blocks, so a cluster where most
    #: frameworks declined everything costs them nothing
    live: _Sorted = field(default_factory=_Sorted)
    key: tuple = ()

    def rekey(self, leaf: _Leaf) -> None:
        """Give ``leaf`` its new key, moving it in the orders that hold it."""
        new = leaf.compute_key()
        if new == leaf.key:
            return
        old = (leaf.key, leaf)
        for held, order in ((leaf.in_eligible, self.eligible), (leaf.in_live, self.live)):
            if held:
                order.items.remove(old)
                order.items.add((new, leaf))
        leaf.key = new

    def place(self, leaf: _Leaf, eligible: bool, live: bool) -> None:
        """Put ``leaf`` into or take it out of the two orders."""
        if eligible != leaf.in_eligible:
            (self.eligible.add if eligible else self.eligible.remove)(leaf)
            leaf.in_eligible = eligible
        if live != leaf.in_live:
            (self.live.add if live else self.live.remove)(leaf)
            leaf.in_live = live

    def compute_key(self) -> tuple:
        share = self.role.engine._share(self.alloc) / self.role.weight
        return (share, min(self.count, ORDER_COUNT_LIMIT), self.role.name)


@dataclass(eq=False)
class _Role(_Keyed):
    """A node of the role tree; ``alloc`` is the whole subtree's allocation."""

    engine: DRFAllocator
    name: str
    parent: _Role | None
    alloc: list[float]
    count: int = 0
    handle: int | None = None
    weight: float = 1.0
    children: dict[str, _Role] = field(default_factory=dict)
    order: _Sorted = field(default_factory=_Sorted)
    group: _Group | None = None
    guarantees: list[float] | None = None
    limits: list[float] | None = None
    key: tuple = ()

    def compute_key(self) -> tuple:
        return (
            self.engine._share(self.alloc) / self.weight,
            min(self.count, ORDER_COUNT_LIMIT),
            self.name,
        )

    def chain(self) -> Iterator[_Role]:
        """This role and its ancestors, nearest first (the root is not a role)."""
        node: _Role | None = self
        while node is not None and node.parent is not None:
            yield node
            node = node.parent


@dataclass(eq=False)
class _Framework:
    handle: int
    roles: tuple[int, ...]
    capabilities: Capability
    suppressed: set[int]
    active: bool
    leaves: dict[int, _Leaf] = field(default_factory=dict)


@dataclass(eq=False)
class _Agent:
    handle: int
    unreserved: list[float]
    reservations: dict[int, list[float]]
    revocable: list[float]
    active: bool
    free: list[float] = field(default_factory=list)
    free_reserved: dict[int, list[float]] = field(default_factory=dict)
    free_revocable: list[float] = field(default_factory=list)
    #: (framework, role, pool, revocable) -> resources allocated
    allocations: dict[tuple[int, int, int, bool], list[float]] = field(default_factory=dict)
    has_gpus: bool = False
    #: filters on this agent, and a lower bound of their refused vectors (kept
    #: when a filter goes, as it stays a lower bound)
    filter_count: int = 0
    min_refused: list[float] = field(default_factory=list)


@dataclass(eq=False)
class _Filter:
    framework: int
    role: int
    agent: int
    expiry: float
    refused: list[float]
    alive: bool = True


class DRFAllocator:
    """Hierarchical DRF in Python; implements the Allocator Protocol."""

    policy = "drf"

    def __init__(self, parameters: Mapping[str, str] | None = None, name: str = "python/drf"):
        self.name = name
        self.parameters = dict(parameters or {})
        self._options: AllocatorOptions | None = None
        self._rcount = 0
        self._paused = False

    # --- helpers ----------------------------------------------------------------------

    def _fail(self, call: str, status: int, message: str) -> AllocatorCallError:
        return AllocatorCallError(self.name, call, status, message)

    def _ready(self, call: str) -> None:
        if self._options is None:
            raise self._fail(call, STATE, "initialize() has not been called")

    def _handle(self, call: str, what: str, handle: int) -> None:
        if not 0 <= handle <= MAX_HANDLE:
            raise self._fail(call, INVALID, f"{what} handle {handle} is out of range")

    def _vector(self, call: str, what: str, values: Sequence[float], **kw: bool) -> list[float]:
        return list(check_vector(self.name, call, what, values, self._rcount, **kw))

    def _framework(self, call: str, handle: int) -> _Framework:
        framework = self._frameworks.get(handle)
        if framework is None:
            raise self._fail(call, NOT_FOUND, f"unknown framework {handle}")
        return framework

    def _agent(self, call: str, handle: int) -> _Agent:
        agent = self._agents.get(handle)
        if agent is None:
            raise self._fail(call, NOT_FOUND, f"unknown agent {handle}")
        return agent

    def _role_node(self, call: str, handle: int) -> _Role:
        role = self._roles.get(handle)
        if role is None:
            raise self._fail(call, NOT_FOUND, f"unknown role {handle} (declare it with add_role)")
        return role

    def _share(self, alloc: Sequence[float]) -> float:
        share = 0.0
        for r in self._share_resources:
            s = alloc[r] / self._total[r]
            if s > share:
                share = s
        return share

    # --- setup ------------------------------------------------------------------------

    def initialize(self, options: AllocatorOptions) -> None:
        """Register resource names and options (once)."""
        if self._options is not None:
            raise self._fail("initialize", STATE, "initialize() was already called")
        names = list(options.resource_names)
        if not names or len(set(names)) != len(names) or not all(names):
            raise self._fail("initialize", INVALID, f"resource names must be unique: {names}")
        if not (options.allocation_interval >= 0 and math.isfinite(options.allocation_interval)):
            raise self._fail("initialize", INVALID, "allocation_interval must be >= 0")
        matrix = options.min_allocatable_matrix()
        if (matrix < 0).any() or not (matrix == matrix).all():
            raise self._fail("initialize", INVALID, "min_allocatable must be >= 0")
        self._options = options
        self._rcount = len(names)
        self._min_allocatable = [list(map(float, row)) for row in matrix]
        excluded = set(options.fairness_excluded)
        self._fair = [name not in excluded for name in names]
        self._gpu_index = names.index("gpus") if "gpus" in names else None
        self._interval = float(options.allocation_interval)
        self._rng = SplitMix64(options.random_seed)
        self._total = [0.0] * self._rcount
        self._share_resources: list[int] = []
        self._root = _Role(self, "", None, [0.0] * self._rcount)
        self._roles: dict[int, _Role] = {}
        self._frameworks: dict[int, _Framework] = {}
        self._agents: dict[int, _Agent] = {}
        self._filter_heap: list[tuple[float, int, _Filter]] = []
        self._filter_seq = 0
        self._weights: dict[str, float] = {}
        self._dirty = True
        #: filters or eligibility changed since _refresh_live last ran, and
        #: whether some leaf was then filtered on every agent
        self._membership_dirty = True
        self._any_everywhere = False
        self._stats = dict.fromkeys(("allocation_runs", "offers_made", "filtered_skips"), 0) | {
            "last_allocation_ms": 0.0
        }

    def _node_for(self, name: str) -> _Role:
        """The tree node for a role path, creating missing ancestors."""
        node = self._root
        parts = name.split("/")
        for depth in range(len(parts)):
            path = "/".join(parts[: depth + 1])
            child = node.children.get(path)
            if child is None:
                child = _Role(self, path, node, [0.0] * self._rcount)
                child.weight = self._weights.get(path, 1.0)
                child.group = _Group(child, [0.0] * self._rcount)
                node.children[path] = child
                child.order.add(child.group)
                node.order.add(child)
            node = child
        return node

    def add_role(self, role: int, name: str) -> None:
        """Declare a role handle and its path name."""
        self._ready("add_role")
        self._handle("add_role", "role", role)
        if role in self._roles:
            raise self._fail("add_role", EXISTS, f"role {role} is already declared")
        parts = name.split("/")
        if not name or any(not p or p in (".", "..") for p in parts) or " " in name:
            raise self._fail("add_role", INVALID, f"invalid role name {name!r}")
        if any(n.name == name for n in self._roles.values()):
            raise self._fail("add_role", EXISTS, f"role name {name!r} is already declared")
        node = self._node_for(name)
        node.handle = role
        self._roles[role] = node

    # --- frameworks -------------------------------------------------------------------

    def _check_framework_info(self, call: str, info: FrameworkInfo) -> None:
        if not info.roles:
            raise self._fail(call, INVALID, "a framework needs at least one role")
        if len(set(info.roles)) != len(info.roles):
            raise self._fail(call, INVALID, f"duplicate roles {list(info.roles)}")
        for role in info.roles:
            self._role_node(call, role)
        for role in info.suppressed_roles:
            if role not in info.roles:
                raise self._fail(call, INVALID, f"suppressed role {role} is not a framework role")

    def _leaf(self, framework: _Framework, role: int) -> _Leaf:
        leaf = framework.leaves.get(role)
        if leaf is None:
            node = self._roles[role]
            leaf = _Leaf(self, framework.handle, node, [0.0] * self._rcount)
            framework.leaves[role] = leaf
            self._membership_dirty = True  # _refresh_live places it
        return leaf

    def add_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Add a framework subscribed in ``info.roles``."""
        self._ready("add_framework")
        self._handle("add_framework", "framework", framework)
        if framework in self._frameworks:
            raise self._fail("add_framework", EXISTS, f"framework {framework} already exists")
        self._check_framework_info("add_framework", info)
        fw = _Framework(
            framework, tuple(info.roles), Capability(info.capabilities),
            set(info.suppressed_roles), info.active,
        )  # fmt: skip
        self._frameworks[framework] = fw
        for role in fw.roles:
            self._leaf(fw, role)

    def update_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Replace roles, capabilities and suppressed roles; allocations are kept."""
        self._ready("update_framework")
        fw = self._framework("update_framework", framework)
        self._check_framework_info("update_framework", info)
        fw.roles = tuple(info.roles)
        fw.capabilities = Capability(info.capabilities)
        fw.suppressed = set(info.suppressed_roles)
        fw.active = info.active
        for role, leaf in list(fw.leaves.items()):
            leaf.subscribed = role in fw.roles
            if not leaf.subscribed:
                self._forget_filters(leaf)
                self._maybe_remove_leaf(fw, role)
        for role in fw.roles:
            self._leaf(fw, role).subscribed = True
        self._membership_dirty = True

    def _maybe_remove_leaf(self, fw: _Framework, role: int) -> None:
        leaf = fw.leaves.get(role)
        if leaf is None:  # already gone (e.g. dropping its last filter removed it)
            return
        if not leaf.subscribed and not _nonzero(leaf.alloc) and not leaf.filters:
            assert leaf.role.group is not None
            leaf.role.group.place(leaf, eligible=False, live=False)
            del fw.leaves[role]
            self._membership_dirty = True

    def remove_framework(self, framework: int) -> None:
        """Remove a framework, recovering everything allocated to it."""
        self._ready("remove_framework")
        fw = self._framework("remove_framework", framework)
        for agent_handle in sorted(self._agents):
            agent = self._agents[agent_handle]
            for key in sorted(k for k in agent.allocations if k[0] == framework):
                self._release(agent, key, list(agent.allocations[key]))
        for leaf in fw.leaves.values():
            self._forget_filters(leaf)
            assert leaf.role.group is not None
            leaf.role.group.place(leaf, eligible=False, live=False)
        del self._frameworks[framework]
        self._membership_dirty = True

    def activate_framework(self, framework: int) -> None:
        """Make a framework eligible for offers again."""
        self._ready("activate_framework")
        self._framework("activate_framework", framework).active = True
        self._membership_dirty = True

    def deactivate_framework(self, framework: int) -> None:
        """Stop offering to a framework."""
        self._ready("deactivate_framework")
        self._framework("deactivate_framework", framework).active = False
        self._membership_dirty = True

    def suppress(self, framework: int, role: int = ALL_ROLES) -> None:
        """Stop offers to the framework in ``role`` (or every role)."""
        self._ready("suppress")
        fw = self._framework("suppress", framework)
        roles = fw.roles if role == ALL_ROLES else (role,)
        if role != ALL_ROLES and role not in fw.roles:
            raise self._fail("suppress", INVALID, f"framework {framework} is not in role {role}")
        fw.suppressed.update(roles)
        self._membership_dirty = True

    def revive(self, framework: int, role: int = ALL_ROLES) -> None:
        """Resume offers in ``role`` (or every role) and clear the matching filters."""
        self._ready("revive")
        fw = self._framework("revive", framework)
        if role != ALL_ROLES and role not in fw.roles:
            raise self._fail("revive", INVALID, f"framework {framework} is not in role {role}")
        roles = set(fw.roles) if role == ALL_ROLES else {role}
        fw.suppressed -= roles
        self._membership_dirty = True
        for role_handle in sorted(roles):
            leaf = fw.leaves.get(role_handle)
            if leaf is not None:
                self._forget_filters(leaf)
                self._maybe_remove_leaf(fw, role_handle)

    # --- agents -----------------------------------------------------------------------

    def _check_agent_info(
        self, call: str, info: AgentInfo
    ) -> tuple[list[float], dict[int, list[float]], list[float]]:
        unreserved = self._vector(call, "unreserved", info.unreserved)
        reservations = {}
        for role, vector in sorted(info.reservations.items()):
            self._role_node(call, role)
            reservations[role] = self._vector(call, f"reservation of role {role}", vector)
        revocable = (
            self._vector(call, "revocable", info.revocable)
            if info.revocable is not None
            else [0.0] * self._rcount
        )
        return unreserved, reservations, revocable

    def _set_totals(
        self,
        call: str,
        agent: _Agent,
        totals: tuple[list[float], dict[int, list[float]], list[float]],
        allocations: Mapping[tuple[int, int, int, bool], list[float]],
    ) -> None:
        """Set an agent's totals and derive its free pools; refuse totals below allocations."""
        unreserved, reservations, revocable = totals
        free = list(unreserved)
        free_reserved = {role: list(v) for role, v in reservations.items()}
        free_revocable = list(revocable)
        for key in sorted(allocations):
            _, _, pool, is_revocable = key
            if is_revocable:
                target = free_revocable
            elif pool == UNRESERVED:
                target = free
            else:
                target = free_reserved.setdefault(pool, [0.0] * self._rcount)
            _sub(target, allocations[key])
        if any(x < -EPSILON for v in (free, free_revocable, *free_reserved.values()) for x in v):
            raise self._fail(call, INVALID, f"allocations exceed agent {agent.handle}'s resources")
        agent.unreserved, agent.reservations, agent.revocable = unreserved, reservations, revocable
        agent.free, agent.free_reserved, agent.free_revocable = free, free_reserved, free_revocable
        g = self._gpu_index
        agent.has_gpus = g is not None and (
            unreserved[g] > 0 or revocable[g] > 0 or any(v[g] > 0 for v in reservations.values())
        )

    def _change_total(self, agent: _Agent, sign: int) -> None:
        op = _add if sign > 0 else _sub
        op(self._total, agent.unreserved)
        for role in sorted(agent.reservations):
            op(self._total, agent.reservations[role])
        self._share_resources = [
            r for r in range(self._rcount) if self._fair[r] and self._total[r] > 0
        ]
        self._dirty = True
        self._membership_dirty = True  # the agent count decides "filtered everywhere"

    def add_agent(self, agent: int, info: AgentInfo) -> None:
        """Add an agent with its pools and the resources already in use on it."""
        self._ready("add_agent")
        self._handle("add_agent", "agent", agent)
        if agent in self._agents:
            raise self._fail("add_agent", EXISTS, f"agent {agent} already exists")
        totals = self._check_agent_info("add_agent", info)
        allocations: dict[tuple[int, int, int, bool], list[float]] = {}
        for a in info.allocations:
            self._framework("add_agent", a.framework)
            self._role_node("add_agent", a.role)
            if a.pool != UNRESERVED:
                self._role_node("add_agent", a.pool)
            vector = self._vector("add_agent", "allocation", a.resources)
            key = (a.framework, a.role, a.pool, bool(a.revocable))
            allocations.setdefault(key, [0.0] * self._rcount)
            _add(allocations[key], vector)
        record = _Agent(agent, [], {}, [], info.active)
        self._set_totals("add_agent", record, totals, allocations)
        self._agents[agent] = record
        self._change_total(record, +1)
        for key in sorted(allocations):
            record.allocations[key] = allocations[key]
            framework, role, _, revocable_flag = key
            if not revocable_flag:
                leaf = self._leaf(self._frameworks[framework], role)
                leaf.subscribed = role in self._frameworks[framework].roles
                self._account(leaf, allocations[key], +1, count=True)

    def update_agent(self, agent: int, info: AgentInfo) -> None:
        """Replace an agent's totals; its current allocations are kept."""
        self._ready("update_agent")
        record = self._agent("update_agent", agent)
        totals = self._check_agent_info("update_agent", info)
        probe = _Agent(agent, [], {}, [], info.active)
        self._set_totals("update_agent", probe, totals, record.allocations)  # validates only
        self._change_total(record, -1)
        self._set_totals("update_agent", record, totals, record.allocations)
        record.active = info.active
        self._change_total(record, +1)

    def remove_agent(self, agent: int) -> None:
        """Remove an agent and everything allocated on it."""
        self._ready("remove_agent")
        record = self._agent("remove_agent", agent)
        for key in sorted(record.allocations):
            self._release(record, key, list(record.allocations[key]))
        for fw in list(self._frameworks.values()):
            for leaf in list(fw.leaves.values()):
                refusal = leaf.filters.get(agent)
                if refusal is not None:
                    self._remove_filter(refusal)
        self._change_total(record, -1)
        del self._agents[agent]

    def activate_agent(self, agent: int) -> None:
        """Offer this agent's resources again."""
        self._ready("activate_agent")
        self._agent("activate_agent", agent).active = True

    def deactivate_agent(self, agent: int) -> None:
        """Stop offering this agent's resources."""
        self._ready("deactivate_agent")
        self._agent("deactivate_agent", agent).active = False

    # --- accounting -------------------------------------------------------------------

    def _account(self, leaf: _Leaf, vector: Sequence[float], sign: int, count: bool) -> None:
        """Add (sign +1) or remove an allocation on the leaf, its group and its role chain."""
        op = _add if sign > 0 else _sub
        group = leaf.role.group
        assert group is not None
        nodes: list[_Keyed] = [leaf, group, *leaf.role.chain()]
        for node in nodes:
            op(node.alloc, vector)
            if count:
                node.count += 1
        if self._dirty:
            return
        group.rekey(leaf)
        leaf.role.order.reposition(group)
        for role in leaf.role.chain():
            assert role.parent is not None
            role.parent.order.reposition(role)

    def _release(self, agent: _Agent, key: tuple, vector: list[float]) -> None:
        """Take ``vector`` out of an allocation on ``agent`` and back into its pool."""
        allocation = agent.allocations[key]
        for r in range(self._rcount):
            allocation[r] -= vector[r]
            if allocation[r] < EPSILON:
                allocation[r] = 0.0
        if not _nonzero(allocation):
            del agent.allocations[key]
        framework, role, pool, revocable = key
        if revocable:
            _add(agent.free_revocable, vector)
        elif pool == UNRESERVED:
            _add(agent.free, vector)
        else:
            _add(agent.free_reserved[pool], vector)
        fw = self._frameworks.get(framework)
        if not revocable and fw is not None and role in fw.leaves:
            self._account(fw.leaves[role], vector, -1, count=False)
            self._maybe_remove_leaf(fw, role)

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
        """Return resources to their pool; refuse_seconds > 0 installs a filter."""
        call = "recover_resources"
        self._ready(call)
        self._framework(call, framework)
        record = self._agent(call, agent)
        self._role_node(call, role)
        vector = self._vector(call, "resources", resources)
        if math.isnan(refuse_seconds) or math.isnan(now):
            raise self._fail(call, INVALID, "refuse_seconds and now must not be NaN")
        key = (framework, role, pool, bool(revocable))
        allocation = record.allocations.get(key)
        if allocation is None:
            raise self._fail(
                call, INVALID,
                f"framework {framework} holds nothing in role {role} from that pool "
                f"on agent {agent}",
            )  # fmt: skip
        for r in range(self._rcount):
            if vector[r] > allocation[r] + EPSILON:
                raise self._fail(
                    call, INVALID,
                    f"recovering {vector[r]} of {self._options.resource_names[r]} but only "  # type: ignore[union-attr]
                    f"{allocation[r]} is allocated",
                )  # fmt: skip
        self._release(record, key, vector)
        leaf = self._frameworks[framework].leaves.get(role)
        # Filters only for roles the framework is still in (update_framework drops the rest).
        if refuse_seconds > 0 and _nonzero(vector) and leaf is not None and leaf.subscribed:
            self._add_filter(
                framework, role, agent, vector, now + max(refuse_seconds, self._interval)
            )

    # --- filters ----------------------------------------------------------------------

    def _add_filter(
        self, framework: int, role: int, agent: int, refused: list[float], expiry: float
    ) -> None:
        leaf = self._frameworks[framework].leaves[role]
        existing = leaf.filters.get(agent)
        if existing is not None and existing.expiry == expiry:
            # Several pools of one declined offer arrive as several recovers.
            _add(existing.refused, refused)
            return
        if existing is not None:
            self._remove_filter(existing)
        record = _Filter(framework, role, agent, expiry, list(refused))
        leaf.filters[agent] = record
        holder = self._agents[agent]
        holder.filter_count += 1
        if holder.filter_count == 1:
            holder.min_refused = list(refused)
        else:
            bound = zip(holder.min_refused, refused, strict=True)
            holder.min_refused = [min(a, b) for a, b in bound]
        self._membership_dirty = True
        self._filter_seq += 1
        heapq.heappush(self._filter_heap, (expiry, self._filter_seq, record))

    def _remove_filter(self, record: _Filter) -> None:
        record.alive = False
        fw = self._frameworks[record.framework]
        del fw.leaves[record.role].filters[record.agent]
        self._filter_gone(record)
        self._maybe_remove_leaf(fw, record.role)

    def _filter_gone(self, record: _Filter) -> None:
        holder = self._agents.get(record.agent)
        if holder is not None:
            holder.filter_count -= 1
        self._membership_dirty = True

    def _forget_filters(self, leaf: _Leaf) -> None:
        """Drop every filter of a leaf (its stale heap entries are skipped on expiry)."""
        for record in leaf.filters.values():
            record.alive = False
            self._filter_gone(record)
        leaf.filters.clear()

    def _expire_filters(self, now: float) -> None:
        heap = self._filter_heap
        while heap and heap[0][0] <= now:
            _, _, record = heapq.heappop(heap)
            if record.alive:
                self._remove_filter(record)

    # --- weights and quota ------------------------------------------------------------

    def update_weights(self, weights: Mapping[int, float]) -> None:
        """Set role weights (default 1.0)."""
        self._ready("update_weights")
        for role, weight in weights.items():
            self._role_node("update_weights", role)
            if not (weight > 0 and math.isfinite(weight)):
                raise self._fail("update_weights", INVALID, f"weight of role {role} must be > 0")
        for role, weight in weights.items():
            node = self._roles[role]
            self._weights[node.name] = float(weight)
            node.weight = float(weight)
        self._dirty = True

    def update_quota(self, role: int, guarantees: Sequence[float], limits: Sequence[float]) -> None:
        """Set a role's guarantees and limits (inf = unlimited); all zeros/inf clears it."""
        self._ready("update_quota")
        node = self._role_node("update_quota", role)
        g = self._vector("update_quota", "guarantees", guarantees)
        lim = self._vector("update_quota", "limits", limits, allow_inf=True)
        if any(a > b for a, b in zip(g, lim, strict=True)):
            raise self._fail("update_quota", INVALID, "guarantees must not exceed limits")
        node.guarantees = g if _nonzero(g) else None
        node.limits = lim if any(math.isfinite(x) for x in lim) else None

    def pause(self) -> None:
        """Make allocate() offer nothing until resume()."""
        self._ready("pause")
        self._paused = True

    def resume(self) -> None:
        """Undo pause()."""
        self._ready("resume")
        self._paused = False

    # --- the cycle --------------------------------------------------------------------

    def _rebuild_order(self) -> None:
        """Recompute every key after totals or weights changed (Mesos' dirty re-sort)."""

        def rebuild(node: _Role) -> None:
            node.order = _Sorted()
            if node.group is not None:
                # _refresh_live puts the leaves back with fresh keys (live
                # ones are eligible too).
                for _, leaf in node.group.eligible.items:
                    leaf.in_eligible = leaf.in_live = False
                node.group.eligible = _Sorted()
                node.group.live = _Sorted()
                node.order.add(node.group)
            for child in node.children.values():
                rebuild(child)
                node.order.add(child)

        rebuild(self._root)
        self._dirty = False
        self._membership_dirty = True

    def _refresh_live(self) -> None:
        """Sort leaves into the live orders, after a change to filters or eligibility."""
        if not self._membership_dirty:
            return
        agents = len(self._agents)
        leaves = [(fw, leaf) for fw in self._frameworks.values() for leaf in fw.leaves.values()]
        self._any_everywhere = any(len(leaf.filters) >= agents for _, leaf in leaves)
        for fw, leaf in leaves:
            eligible = fw.active and leaf.subscribed and leaf.role.handle not in fw.suppressed
            live = self._any_everywhere and eligible and len(leaf.filters) < agents
            assert leaf.role.group is not None
            leaf.role.group.place(leaf, eligible, live)
        self._membership_dirty = False

    def _everywhere_block(self, agent: _Agent) -> bool:
        """Whether every filter of a leaf filtered on all agents blocks ``agent``'s offer.

        With nothing reserved or revocable free, an offer is at most
        ``agent.free``; if that is within the lower bound of every refused
        vector here, each such filter blocks it, so only live leaves need
        visiting.
        """
        if agent.filter_count == 0 or _nonzero(agent.free_revocable):
            return False
        if any(_nonzero(v) for v in agent.free_reserved.values()):
            return False
        return _subset(agent.free, agent.min_refused)

    def _candidates(self, node: _Role, live_only: bool = False) -> Iterator[_Leaf]:
        for _, item in node.order.items:
            if isinstance(item, _Group):
                for _, leaf in (item.live if live_only else item.eligible).items:
                    yield leaf
            else:
                yield from self._candidates(item, live_only)

    def _allocatable(self, vector: Sequence[float]) -> bool:
        if not _nonzero(vector):
            return False
        for alternative in self._min_allocatable:
            if all(vector[r] >= need for r, need in enumerate(alternative) if need > 0):
                return True
        return False

    def _eligible(self, leaf: _Leaf, agent: _Agent) -> _Framework | None:
        """The leaf's framework, or None if ``agent`` is not for it.

        Leaves in the eligible orders are active, subscribed and not
        suppressed (:meth:`_refresh_live`); only the agent can still rule
        one out: with GPU filtering on, a GPU agent goes only to
        GPU_RESOURCES frameworks.
        """
        fw = self._frameworks[leaf.framework]
        if (
            agent.has_gpus
            and self._options.filter_gpu_resources  # type: ignore[union-attr]
            and not fw.capabilities & Capability.GPU_RESOURCES
        ):
            return None
        return fw

    def _limit_room(self, role: _Role) -> list[float] | None:
        """How much more the role chain's limits allow (None: unlimited).

        Measured against allocations as of the start of the agent visit.
        """
        room: list[float] | None = None
        for node in role.chain():
            if node.limits is None:
                continue
            for r in range(self._rcount):
                left = node.limits[r] - node.alloc[r]
                if left < 0.0:
                    left = 0.0
                if room is None:
                    room = [math.inf] * self._rcount
                if left < room[r]:
                    room[r] = left
        return room

    def _offer(
        self,
        leaf: _Leaf,
        fw: _Framework,
        agent: _Agent,
        cap: list[float] | None,
        with_unreserved: bool,
        with_revocable: bool,
    ) -> list[tuple[int, int, list[float]]]:
        """The pools a candidate can take on an agent: [(pool, flags, amounts)], capped."""
        pools: list[tuple[int, int, list[float]]] = []
        if with_unreserved:
            pools.append((UNRESERVED, 0, agent.free))
        for node in leaf.role.chain():
            if node.handle is not None and node.handle in agent.free_reserved:
                pools.append((node.handle, 0, agent.free_reserved[node.handle]))
        if with_revocable and fw.capabilities & Capability.REVOCABLE_RESOURCES:
            pools.append((UNRESERVED, int(OfferFlag.REVOCABLE), agent.free_revocable))
        result = []
        room = list(cap) if cap is not None else None
        for pool, flags, free in pools:
            amount = list(free)
            if room is not None and not flags & OfferFlag.REVOCABLE:
                for r in range(self._rcount):
                    if amount[r] > room[r]:
                        amount[r] = room[r]
                    room[r] -= amount[r]
            if _nonzero(amount):
                result.append((pool, flags, amount))
        return result

    def _filtered(self, leaf: _Leaf, agent: _Agent, total: list[float]) -> bool:
        record = leaf.filters.get(agent.handle)
        return record is not None and _subset(total, record.refused)

    def _give(
        self,
        leaf: _Leaf,
        agent: _Agent,
        pools: list[tuple[int, int, list[float]]],
        rows: list,
        values: list,
        pending: list,
    ) -> None:
        role = leaf.role.handle
        assert role is not None
        shared = [0.0] * self._rcount  # the non-revocable part, which counts toward shares
        for pool, flags, amount in pools:
            rows.append((leaf.framework, agent.handle, role, pool, flags))
            values.append(amount)
            revocable = bool(flags & OfferFlag.REVOCABLE)
            if revocable:
                _sub(agent.free_revocable, amount)
            elif pool == UNRESERVED:
                _sub(agent.free, amount)
            else:
                _sub(agent.free_reserved[pool], amount)
            key = (leaf.framework, role, pool, revocable)
            agent.allocations.setdefault(key, [0.0] * self._rcount)
            _add(agent.allocations[key], amount)
            if not revocable:
                _add(shared, amount)
        pending.append((leaf, shared))

    def _apply(self, pending: list) -> None:
        """Apply one agent visit's allocations to the shares (after the visit)."""
        for leaf, shared in pending:
            self._account(leaf, shared, +1, count=True)

    def _agent_empty(self, agent: _Agent) -> bool:
        return not (
            _nonzero(agent.free)
            or _nonzero(agent.free_revocable)
            or any(_nonzero(v) for v in agent.free_reserved.values())
        )

    def _quota_roles(self) -> list[_Role]:
        roles = [n for n in self._roles.values() if n.guarantees is not None]
        return sorted(roles, key=lambda n: n.compute_key())

    def _unsatisfied(self, node: _Role) -> list[float]:
        assert node.guarantees is not None
        return [max(g - a, 0.0) for g, a in zip(node.guarantees, node.alloc, strict=True)]

    def allocate(self, now: float, agents: Collection[int] | None = None) -> OfferBatch:
        """Run one allocation cycle at time ``now`` over every active agent, or those in ``agents``.

        A cycle over a set of agents is the full cycle's rules applied to
        those agents only: they are listed as a full cycle lists the cluster
        (distinct, by handle) before the shuffle, and quota headroom still
        counts every active agent.
        """
        self._ready("allocate")
        if math.isnan(now):
            raise self._fail("allocate", INVALID, "now must not be NaN")
        agent_set = None
        if agents is not None:
            agent_set = set(agents)
            for handle in agents:
                if handle not in self._agents:
                    raise self._fail(
                        "allocate",
                        NOT_FOUND,
                        f"unknown agent {handle!r} among the agents to allocate",
                    )
        rows: list[tuple[int, int, int, int, int]] = []
        values: list[list[float]] = []
        if self._paused:
            return OfferBatch.empty(self._rcount)
        self._expire_filters(now)
        if self._dirty:
            self._rebuild_order()
        self._refresh_live()
        listed = sorted(self._agents) if agent_set is None else sorted(agent_set)
        order = [h for h in listed if self._agents[h].active]
        self._rng.shuffle(order)
        visit = [self._agents[h] for h in order]

        # Stage 1: quota guarantees, one framework per quota role per agent.
        if any(_nonzero(self._unsatisfied(n)) for n in self._roles.values() if n.guarantees):
            for agent in visit:
                pending: list = []
                for node in self._quota_roles():
                    need = self._unsatisfied(node)
                    if not _nonzero(need) or node.group is None:
                        continue
                    for _, leaf in node.group.eligible.items:
                        fw = self._eligible(leaf, agent)
                        if fw is None:
                            continue
                        room = self._limit_room(leaf.role)
                        cap = (
                            need
                            if room is None
                            else [min(a, b) for a, b in zip(need, room, strict=True)]
                        )
                        pools = self._offer(
                            leaf, fw, agent, cap, with_unreserved=True, with_revocable=False
                        )
                        total = [0.0] * self._rcount
                        for _, _, amount in pools:
                            _add(total, amount)
                        if not self._allocatable(total):
                            continue
                        if self._filtered(leaf, agent, total):
                            self._stats["filtered_skips"] += 1
                            continue
                        self._give(leaf, agent, pools, rows, values, pending)
                        break
                self._apply(pending)

        # Stage 2: fair share, holding back headroom for unsatisfied guarantees.
        required = [0.0] * self._rcount
        for node in self._quota_roles():
            _add(required, self._unsatisfied(node))
        headroom = [0.0] * self._rcount
        if _nonzero(required):
            for agent in visit:
                _add(headroom, agent.free)
            if agent_set is not None:
                # Headroom is what the whole cluster has unallocated (as Mesos),
                # not only the candidates: the other active agents, by handle.
                for h in sorted(self._agents):
                    if self._agents[h].active and h not in agent_set:
                        _add(headroom, self._agents[h].free)
        for agent in visit:
            pending = []
            live_only = self._any_everywhere and self._everywhere_block(agent)
            for leaf in self._candidates(self._root, live_only):
                if self._agent_empty(agent):
                    break
                fw = self._eligible(leaf, agent)
                if fw is None:
                    continue
                room = self._limit_room(leaf.role)
                with_unreserved = True
                if _nonzero(required) and not any(
                    n.guarantees is not None and _nonzero(self._unsatisfied(n))
                    for n in leaf.role.chain()
                ):
                    left = [h - f for h, f in zip(headroom, agent.free, strict=True)]
                    with_unreserved = _subset(required, left)
                pools = self._offer(leaf, fw, agent, room, with_unreserved, with_revocable=True)
                total = [0.0] * self._rcount
                for _, _, amount in pools:
                    _add(total, amount)
                if not self._allocatable(total):
                    continue
                if self._filtered(leaf, agent, total):
                    self._stats["filtered_skips"] += 1
                    continue
                for pool, flags, amount in pools:
                    if pool == UNRESERVED and not flags:
                        _sub(headroom, amount)
                self._give(leaf, agent, pools, rows, values, pending)
            self._apply(pending)

        self._stats["allocation_runs"] += 1
        self._stats["offers_made"] += len(rows)
        return OfferBatch.from_rows(rows, values, self._rcount)

    def stats(self) -> dict[str, float]:
        """Counters for metrics."""
        self._ready("stats")
        leaves = (leaf for fw in self._frameworks.values() for leaf in fw.leaves.values())
        filters = sum(len(leaf.filters) for leaf in leaves)
        return {
            **{k: float(v) for k, v in self._stats.items()},
            "frameworks": float(len(self._frameworks)),
            "agents": float(len(self._agents)),
            "roles": float(len(self._roles)),
            "active_filters": float(filters),
        }

    def close(self) -> None:
        """Nothing to release for a Python allocator."""
