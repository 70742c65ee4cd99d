"""Benchmark scenarios, shaped like Mesos' own allocator benchmarks.

Each scenario builds the same cluster for every allocator from a seed, then
says what happens between timed cycles.  Everything goes through the
Allocator Protocol only, so any allocator (native, pybind11, Python, or one
loaded with --modules) can be measured.

- ``steady``: every framework wants everything; offers are returned unused
  after each cycle, so every cycle re-offers the whole cluster
  (Mesos' ``HierarchicalAllocator_BENCHMARK_Test.AddAndUpdateSlave`` shape).
- ``declined``: Mesos' DeclineOffers: agents ``cpus:24;mem:4096`` with 16
  cpus in use; every framework but one declines everything it is offered
  with a long ``refuse_seconds``, so cycles walk past filtered frameworks.
- ``suppressed``: a growing share of frameworks suppress offers (half by
  the timed cycles), as Mesos' SuppressOffers benchmark.
- ``quota``: many roles, a third with quota guarantees and limits.
- ``churn``: agents and frameworks come and go between cycles.
- ``reservations``: every role has dynamic reservations on some agents.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymesos_modules.kinds.allocator import (
    AgentInfo,
    Allocation,
    Allocator,
    AllocatorOptions,
    FrameworkInfo,
    OfferBatch,
)

RESOURCES = ("cpus", "mem", "disk", "gpus")
AGENT = (24.0, 4096.0, 4096.0, 0.0)
#: refuse_seconds of a decline in the declined scenario ("forever" for a benchmark).
LONG_REFUSAL = 1e6
#: Frameworks declining at once during the declined set-up (see _declined_setup).
DECLINE_WAVE = 10


@dataclass
class Cluster:
    """What a scenario set up, and what it needs between cycles."""

    agents: int
    frameworks: int
    roles: int
    rng: random.Random
    now: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def role_of(self, framework: int) -> int:
        """Frameworks are spread over roles round-robin."""
        return framework % self.roles


def options(seed: int) -> AllocatorOptions:
    """The allocator options every scenario uses."""
    return AllocatorOptions(resource_names=RESOURCES, random_seed=seed, allocation_interval=1.0)


def _declare(allocator: Allocator, cluster: Cluster) -> None:
    for role in range(cluster.roles):
        allocator.add_role(role, "*" if cluster.roles == 1 else f"role{role:04d}")


def add_frameworks(allocator: Allocator, cluster: Cluster) -> None:
    """Add every framework, each in its round-robin role."""
    for fw in range(cluster.frameworks):
        allocator.add_framework(fw, FrameworkInfo((cluster.role_of(fw),)))


def add_agents(
    allocator: Allocator, cluster: Cluster, info: Callable[[int], AgentInfo] | None = None
) -> None:
    """Add every agent (default: an unreserved ``AGENT``)."""
    for agent in range(cluster.agents):
        allocator.add_agent(agent, info(agent) if info else AgentInfo(AGENT))


def return_all(allocator: Allocator, cluster: Cluster, batch: OfferBatch, refuse: float) -> int:
    """Recover every row of a batch (what a master does with declined offers)."""
    rows = batch.rows[["framework", "agent", "role", "pool", "flags"]].tolist()
    values = batch.values.tolist()
    for (fw, agent, role, pool, flags), amounts in zip(rows, values, strict=True):
        allocator.recover_resources(
            fw, agent, role, amounts, refuse, cluster.now, pool, bool(flags)
        )
    return len(rows)


@dataclass(frozen=True)
class Scenario:
    """A named benchmark scenario: build a cluster, then act between timed cycles."""

    name: str
    doc: str
    setup: Callable[[Allocator, Cluster], None]
    between: Callable[[Allocator, Cluster, OfferBatch], None]


def _steady_setup(allocator: Allocator, cluster: Cluster) -> None:
    _declare(allocator, cluster)
    add_frameworks(allocator, cluster)
    add_agents(allocator, cluster)


def _steady_between(allocator: Allocator, cluster: Cluster, batch: OfferBatch) -> None:
    return_all(allocator, cluster, batch, 0.0)


def _declined_setup(allocator: Allocator, cluster: Cluster) -> None:
    _declare(allocator, cluster)
    add_frameworks(allocator, cluster)
    used = (16.0, 0.0, 0.0, 0.0)
    add_agents(
        allocator,
        cluster,
        lambda a: AgentInfo(
            AGENT,
            allocations=(
                Allocation(a % cluster.frameworks, cluster.role_of(a % cluster.frameworks), used),
            ),
        ),
    )
    keeper = cluster.extra["keeper"] = cluster.frameworks - 1
    # Decline rounds until no one but the keeper is offered anything: every
    # framework but one has then declined every agent.  Frameworks go through
    # this in waves of DECLINE_WAVE while the later waves are suppressed: a
    # cycle in which a thousand frameworks are filtered on most agents but
    # not yet on all walks every (agent, framework) pair, and a thousand such
    # cycles made the 10k x 1k set-up take longer than the benchmark.  The
    # end state is the same (suppressed frameworks are revived, with no
    # filters yet, when their wave comes); waves do not change what is timed.
    waiting = [fw for fw in range(cluster.frameworks) if fw != keeper]
    for fw in waiting[DECLINE_WAVE:]:
        allocator.suppress(fw)
    for start in range(0, len(waiting), DECLINE_WAVE):
        wave = waiting[start : start + DECLINE_WAVE]
        if start:
            for fw in wave:
                allocator.revive(fw)
        # An agent is not always offered to a framework that has not declined
        # it yet (DRF order decides), so a wave takes a few more rounds than
        # it has frameworks; the bound only stops a misbehaving allocator.
        for _ in range(2 * len(wave) + 10):
            batch = allocator.allocate(cluster.now)
            if not _declined_between(allocator, cluster, batch):
                break


def _declined_between(allocator: Allocator, cluster: Cluster, batch: OfferBatch) -> int:
    keeper = cluster.extra["keeper"]
    rows = batch.rows[["framework", "agent", "role", "pool", "flags"]].tolist()
    values = batch.values.tolist()
    declined = 0
    for (fw, agent, role, pool, flags), amounts in zip(rows, values, strict=True):
        refuse = 0.0 if fw == keeper else LONG_REFUSAL
        declined += fw != keeper
        allocator.recover_resources(
            fw, agent, role, amounts, refuse, cluster.now, pool, bool(flags)
        )
    return declined


def _suppressed_setup(allocator: Allocator, cluster: Cluster) -> None:
    _steady_setup(allocator, cluster)
    cluster.extra["suppressed"] = 0


def _suppressed_between(allocator: Allocator, cluster: Cluster, batch: OfferBatch) -> None:
    return_all(allocator, cluster, batch, 0.0)
    # Suppress another tenth of the frameworks each cycle, up to half of them.
    target = min(
        cluster.frameworks // 2, cluster.extra["suppressed"] + max(cluster.frameworks // 10, 1)
    )
    for fw in range(cluster.extra["suppressed"], target):
        allocator.suppress(fw)
    cluster.extra["suppressed"] = target


def _quota_setup(allocator: Allocator, cluster: Cluster) -> None:
    _steady_setup(allocator, cluster)
    share = 1.0 / max(cluster.roles, 1)
    for role in range(0, cluster.roles, 3):
        guarantee = tuple(v * cluster.agents * share * 0.5 for v in AGENT)
        limit = tuple(v * cluster.agents * share * 1.5 if v else math.inf for v in AGENT)
        allocator.update_quota(role, guarantee, limit)


def _churn_between(allocator: Allocator, cluster: Cluster, batch: OfferBatch) -> None:
    return_all(allocator, cluster, batch, 0.0)
    rng = cluster.rng
    gone = cluster.extra.setdefault("gone_agents", set())
    for _ in range(max(cluster.agents // 100, 1)):
        agent = rng.randrange(cluster.agents)
        if agent in gone:
            allocator.add_agent(agent, AgentInfo(AGENT))
            gone.discard(agent)
        else:
            allocator.remove_agent(agent)
            gone.add(agent)
    fw = rng.randrange(cluster.frameworks)
    allocator.remove_framework(fw)
    allocator.add_framework(fw, FrameworkInfo((cluster.role_of(fw),)))


def _reservations_setup(allocator: Allocator, cluster: Cluster) -> None:
    _declare(allocator, cluster)
    add_frameworks(allocator, cluster)
    reserved = (8.0, 1024.0, 1024.0, 0.0)
    rest = tuple(a - r for a, r in zip(AGENT, reserved, strict=True))
    add_agents(
        allocator,
        cluster,
        lambda a: (
            AgentInfo(rest, reservations={a % cluster.roles: reserved})
            if a % 2 == 0
            else AgentInfo(AGENT)
        ),
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("steady", "every framework wants everything", _steady_setup, _steady_between),
        Scenario(
            "declined",
            "all frameworks but one decline everything (Mesos DeclineOffers)",
            _declined_setup,
            lambda a, c, b: _declined_between(a, c, b) and None,
        ),
        Scenario("suppressed", "a growing share of frameworks suppressed", _suppressed_setup,
                 _suppressed_between),
        Scenario("quota", "a third of the roles with guarantees and limits", _quota_setup,
                 _steady_between),
        Scenario("churn", "agents and frameworks added and removed between cycles",
                 _steady_setup, _churn_between),
        Scenario("reservations", "dynamic reservations for every role on half the agents",
                 _reservations_setup, _steady_between),
    )
}  # fmt: skip
