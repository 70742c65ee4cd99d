"""Each allocation rule, checked against the Python twin, the cffi module and pybind11."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from pymesos_modules.kinds.allocator import (
    ALL_ROLES,
    UNRESERVED,
    AgentInfo,
    Allocation,
    AllocatorCallError,
    Capability,
    FrameworkInfo,
    OfferFlag,
)

CPU = (4.0, 1024.0, 0.0)


def offers(allocator, now=0.0):
    return allocator.allocate(now).as_tuples()


def by_framework(rows):
    return Counter(row[0] for row in rows)


def test_fair_share_spreads_agents_evenly(make):
    a = make()
    for fw in range(2):
        a.add_framework(fw, FrameworkInfo((0,)))
    for agent in range(10):
        a.add_agent(agent, AgentInfo(CPU))
    rows = offers(a)
    assert by_framework(rows) == {0: 5, 1: 5}
    assert all(row[4] == 0 and row[5] == CPU for row in rows)


def test_equal_roles_are_ordered_by_name_not_by_declaration(make):
    a = make()
    a.add_role(4, "zeta")
    a.add_role(5, "alpha")
    a.add_framework(0, FrameworkInfo((4,)))
    a.add_framework(1, FrameworkInfo((5,)))
    a.add_agent(0, AgentInfo(CPU))
    assert [row[0] for row in offers(a)] == [1]
    # A role declared later whose name sorts first goes first among equals.
    a.add_role(6, "aaa")
    a.add_framework(2, FrameworkInfo((6,)))
    a.add_agent(1, AgentInfo(CPU))
    assert [row[0] for row in offers(a)] == [2]


def test_weights_favour_heavier_roles(make):
    a = make()
    a.add_framework(0, FrameworkInfo((1,)))
    a.add_framework(1, FrameworkInfo((3,)))
    a.update_weights({1: 3.0})
    for agent in range(12):
        a.add_agent(agent, AgentInfo(CPU))
    assert by_framework(offers(a)) == {0: 9, 1: 3}


def test_child_role_sees_ancestor_reservations_but_not_others(make):
    a = make()
    a.add_framework(0, FrameworkInfo((2,)))  # eng/ml
    a.add_framework(1, FrameworkInfo((3,)))  # ops
    a.add_agent(0, AgentInfo((0.0, 0.0, 0.0), reservations={1: CPU}))  # reserved for eng
    rows = offers(a)
    assert rows == [(0, 0, 2, 1, 0, CPU)]


def test_revocable_resources_only_to_revocable_frameworks(make):
    a = make()
    a.add_framework(0, FrameworkInfo((0,)))
    a.add_agent(0, AgentInfo((0.0, 0.0, 0.0), revocable=CPU))
    assert offers(a) == []
    a.add_framework(1, FrameworkInfo((0,), Capability.REVOCABLE_RESOURCES))
    assert offers(a) == [(1, 0, 0, UNRESERVED, int(OfferFlag.REVOCABLE), CPU)]


def test_gpu_agents_only_to_gpu_frameworks_when_filtering(make):
    a = make()
    a.add_framework(0, FrameworkInfo((0,)))
    a.add_agent(0, AgentInfo((4.0, 1024.0, 1.0)))
    assert offers(a) == []
    a.update_framework(0, FrameworkInfo((0,), Capability.GPU_RESOURCES))
    assert [r[0] for r in offers(a)] == [0]
    b = make(filter_gpu_resources=False)
    b.add_framework(0, FrameworkInfo((0,)))
    b.add_agent(0, AgentInfo((4.0, 1024.0, 1.0)))
    assert [r[0] for r in offers(b)] == [0]


def test_refusal_filter_lasts_and_blocks_only_subsets(make):
    a = make(allocation_interval=1.0)
    a.add_framework(0, FrameworkInfo((0,)))
    a.add_agent(0, AgentInfo(CPU))
    [row] = offers(a)
    a.recover_resources(0, 0, 0, CPU, refuse_seconds=5.0, now=0.0)
    assert offers(a, now=4.9) == []
    assert offers(a, now=5.0) == [row]
    # refuse half: the same half again is a subset of what was refused...
    half = (2.0, 512.0, 0.0)
    a.recover_resources(0, 0, 0, half, refuse_seconds=100.0, now=5.0)
    assert offers(a, now=6.0) == []
    # ...but once the other half comes back the whole agent is not, so it is offered
    a.recover_resources(0, 0, 0, half, refuse_seconds=0.0, now=6.0)
    assert offers(a, now=7.0) == [row]


def test_frameworks_that_declined_every_agent_are_not_walked(make):
    # Mesos' DeclineOffers shape: all frameworks but the keeper (4) decline
    # every agent for good.  Every implementation must then walk past them
    # without looking (no filtered skips), yet offer exactly what it would.
    a = make()
    keeper = 4
    for fw in range(keeper + 1):
        a.add_framework(fw, FrameworkInfo((0,)))
    for agent in range(3):
        a.add_agent(agent, AgentInfo(CPU))
    for _ in range(20):
        rows = offers(a)
        declined = 0
        for fw, agent, role, pool, flags, values in rows:
            refuse = 0.0 if fw == keeper else 1e6
            declined += fw != keeper
            a.recover_resources(fw, agent, role, values, refuse, 0.0, pool, bool(flags))
        if not declined:
            break
    assert declined == 0
    before = a.stats()["filtered_skips"]
    assert sorted((r[0], r[1]) for r in offers(a)) == [(keeper, 0), (keeper, 1), (keeper, 2)]
    assert a.stats()["filtered_skips"] == before


def test_filter_lasts_at_least_the_allocation_interval(make):
    a = make(allocation_interval=10.0)
    a.add_framework(0, FrameworkInfo((0,)))
    a.add_agent(0, AgentInfo(CPU))
    offers(a)
    a.recover_resources(0, 0, 0, CPU, refuse_seconds=0.5, now=0.0)
    assert offers(a, now=9.0) == []
    assert len(offers(a, now=10.0)) == 1


def test_suppress_and_revive_per_role_and_revive_clears_filters(make):
    a = make()
    a.add_framework(0, FrameworkInfo((0, 3), Capability.MULTI_ROLE))
    a.add_agent(0, AgentInfo(CPU))
    a.suppress(0, ALL_ROLES)
    assert offers(a) == []
    a.revive(0, 3)
    [row] = offers(a)
    assert row[2] == 3
    a.recover_resources(0, 0, 3, CPU, refuse_seconds=1000.0, now=0.0)
    a.suppress(0, 0)
    assert offers(a, now=1.0) == []
    a.revive(0, 3)
    assert [r[2] for r in offers(a, now=1.0)] == [3]


def test_min_allocatable_any_alternative_suffices(make):
    a = make(min_allocatable=({"cpus": 1.0}, {"mem": 512.0}))
    a.add_framework(0, FrameworkInfo((0,)))
    a.add_agent(0, AgentInfo((0.5, 100.0, 0.0)))
    a.add_agent(1, AgentInfo((0.5, 600.0, 0.0)))
    a.add_agent(2, AgentInfo((1.0, 0.0, 0.0)))
    assert sorted(r[1] for r in offers(a)) == [1, 2]


def test_quota_guarantee_is_served_first_and_limits_cap(make):
    a = make()
    a.add_framework(0, FrameworkInfo((1,)))  # eng, guaranteed 6 cpus
    a.add_framework(1, FrameworkInfo((3,)))  # ops, limited to 4 cpus
    a.update_quota(1, (6.0, 0.0, 0.0), (math.inf, math.inf, math.inf))
    a.update_quota(3, (0.0, 0.0, 0.0), (4.0, math.inf, math.inf))
    for agent in range(4):
        a.add_agent(agent, AgentInfo(CPU))
    rows = offers(a)
    cpus = Counter()
    for fw, _, _, _, _, values in rows:
        cpus[fw] += values[0]
    assert cpus[0] >= 6.0
    assert cpus[1] <= 4.0


@pytest.mark.parametrize("width", [5, 8, 9, 16])
def test_wide_vectors_offer_and_count_every_resource(make, width):
    # The engine sizes its vectors to the declared names (4, 8 or 16 wide):
    # the last custom resource must be offered and must weigh in the shares.
    names = ("cpus", "mem", "disk", *(f"custom{i}" for i in range(width - 3)))
    a = make(resource_names=names)
    a.add_framework(0, FrameworkInfo((0,)))
    a.add_framework(1, FrameworkInfo((0,)))
    agent = tuple(float(r + 1) for r in range(width))
    last = tuple(0.0 if r < width - 1 else agent[-1] for r in range(width))
    sliver = (0.1, *(0.0,) * (width - 1))
    # Agent 0 is used up: framework 0 holds its whole last resource (a
    # dominant share of 1/2), framework 1 a sliver of cpus (1/11); the free
    # agent 1 must go to framework 1, which it would not if the last
    # resource were left out of the shares.
    used = tuple(x + y for x, y in zip(last, sliver, strict=True))
    a.add_agent(0, AgentInfo(used, allocations=(Allocation(0, 0, last), Allocation(1, 0, sliver))))
    a.add_agent(1, AgentInfo(agent))
    assert offers(a) == [(1, 1, 0, UNRESERVED, 0, agent)]


def test_pause_and_resume(make):
    a = make()
    a.add_framework(0, FrameworkInfo((0,)))
    a.add_agent(0, AgentInfo(CPU))
    a.pause()
    assert offers(a) == []
    a.resume()
    assert len(offers(a)) == 1


def test_existing_allocations_count_toward_shares(make):
    a = make()
    a.add_framework(0, FrameworkInfo((0,)))
    a.add_framework(1, FrameworkInfo((0,)))
    a.add_agent(0, AgentInfo((8.0, 2048.0, 0.0), allocations=(Allocation(0, 0, CPU),)))
    a.add_agent(1, AgentInfo(CPU))
    rows = offers(a)
    assert (
        sorted((r[0], r[1]) for r in rows) == [(0, 0), (1, 1)]
        or sorted((r[0], r[1]) for r in rows) == [(1, 0), (1, 1)][: len(rows)]
        or by_framework(rows)[1] >= 1
    )


def test_same_seed_same_offers_other_seed_other_order(make):
    def run(seed):
        a = make(random_seed=seed)
        for fw in range(3):
            a.add_framework(fw, FrameworkInfo((0,)))
        for agent in range(30):
            a.add_agent(agent, AgentInfo(CPU))
        return offers(a)

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_a_cycle_over_some_agents_offers_only_those(make):
    a = make()
    for fw in range(2):
        a.add_framework(fw, FrameworkInfo((0,)))
    for agent in range(6):
        a.add_agent(agent, AgentInfo(CPU))
    a.deactivate_agent(4)
    rows = a.allocate(0.0, [4, 1, 3, 1]).as_tuples()  # a set: order and duplicates do not matter
    assert sorted(r[1] for r in rows) == [1, 3]  # 4 is inactive: skipped as in a full cycle
    assert sorted(r[1] for r in offers(a)) == [0, 2, 5]
    assert a.allocate(1.0, []).as_tuples() == []
    assert a.stats()["allocation_runs"] == 3


def test_a_cycle_over_every_agent_decides_as_a_full_cycle(make):
    def cluster():
        a = make(random_seed=11)
        a.add_framework(0, FrameworkInfo((1,)))
        a.add_framework(1, FrameworkInfo((2,)))
        a.add_framework(2, FrameworkInfo((3,), Capability.REVOCABLE_RESOURCES))
        a.update_quota(3, (6.0, 0.0, 0.0), (math.inf, math.inf, math.inf))
        for agent in range(12):
            a.add_agent(agent, AgentInfo(CPU, revocable=(1.0, 0.0, 0.0) if agent % 3 else None))
        return a

    full, listed = cluster(), cluster()
    for now in (0.0, 1.0):
        everyone = list(reversed(range(12)))
        assert listed.allocate(now, everyone).as_tuples() == offers(full, now)


def test_quota_headroom_counts_the_whole_cluster_not_the_candidates(make):
    a = make()
    a.add_framework(0, FrameworkInfo((1,)))  # eng, guaranteed 8 cpus, but suppressed
    a.add_framework(1, FrameworkInfo((3,)))  # ops, no quota
    a.suppress(0, ALL_ROLES)
    a.update_quota(1, (8.0, 0.0, 0.0), (math.inf, math.inf, math.inf))
    for agent in range(4):
        a.add_agent(agent, AgentInfo(CPU))
    # 16 cpus free in the cluster, 8 held back: ops may take two agents, one at a time...
    assert [r[:2] for r in a.allocate(0.0, [0]).as_tuples()] == [(1, 0)]
    assert [r[:2] for r in a.allocate(0.0, [1]).as_tuples()] == [(1, 1)]
    # ...but not a third, although the candidate alone would look like spare capacity.
    assert a.allocate(0.0, [2]).as_tuples() == []


BAD_CALLS = [
    ("unknown framework", lambda a: a.recover_resources(9, 0, 0, CPU, 0.0, 0.0), 3),
    ("unknown agent", lambda a: a.remove_agent(9), 3),
    ("duplicate framework", lambda a: a.add_framework(0, FrameworkInfo((0,))), 4),
    ("duplicate agent", lambda a: a.add_agent(0, AgentInfo(CPU)), 4),
    ("unknown role", lambda a: a.add_framework(5, FrameworkInfo((42,))), 3),
    ("negative resources", lambda a: a.add_agent(5, AgentInfo((-1.0, 0.0, 0.0))), 2),
    ("NaN resources", lambda a: a.add_agent(5, AgentInfo((math.nan, 0.0, 0.0))), 2),
    ("infinite resources", lambda a: a.add_agent(5, AgentInfo((math.inf, 0.0, 0.0))), 2),
    ("recover more than allocated", lambda a: a.recover_resources(0, 0, 0, (100.0, 0.0, 0.0), 0.0, 0.0), 2),
    ("recover from a role it holds nothing in", lambda a: a.recover_resources(0, 0, 3, CPU, 0.0, 0.0), 2),
    ("bad weight", lambda a: a.update_weights({0: 0.0}), 2),
    ("guarantee above limit", lambda a: a.update_quota(0, (2.0, 0.0, 0.0), (1.0, math.inf, math.inf)), 2),
    ("allocation beyond the agent", lambda a: a.add_agent(5, AgentInfo(CPU, allocations=(Allocation(0, 0, (8.0, 0.0, 0.0)),))), 2),
    ("duplicate role handle", lambda a: a.add_role(0, "other"), 4),
    ("empty role path segment", lambda a: a.add_role(9, "eng//x"), 2),
    ("no roles", lambda a: a.add_framework(6, FrameworkInfo(())), 2),
    ("suppress a role it is not in", lambda a: a.suppress(0, 3), 2),
    ("unknown agent among the agents to allocate", lambda a: a.allocate(0.0, [1, 9]), 3),
    ("initialize twice", lambda a: a.initialize(__import__("pymesos_modules.kinds.allocator", fromlist=["x"]).AllocatorOptions()), 7),
]  # fmt: skip


@pytest.mark.parametrize(("what", "call", "status"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_calls_fail_clearly_and_change_nothing(make, what, call, status):
    def cluster():
        a = make(random_seed=3)
        a.add_framework(0, FrameworkInfo((0,)))
        a.add_framework(1, FrameworkInfo((1,)))
        for agent in range(4):
            a.add_agent(agent, AgentInfo(CPU))
        first = offers(a)
        a.recover_resources(*first[0][:3], first[0][5], 0.0, 0.0)
        return a

    victim, witness = cluster(), cluster()
    with pytest.raises(AllocatorCallError) as caught:
        call(victim)
    assert caught.value.status == status, str(caught.value)
    assert caught.value.call in str(caught.value)
    for now in (0.0, 10.0):
        assert offers(victim, now) == offers(witness, now)
    stats_v, stats_w = victim.stats(), witness.stats()
    for key in ("frameworks", "agents", "roles", "active_filters"):
        assert stats_v[key] == stats_w[key]
