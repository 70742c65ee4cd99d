"""Cycles over a set of agents beyond the DRF rules: first fit, old allocators, bad handles."""

from __future__ import annotations

import pytest

from pymesos_modules.allocators import create_builtin
from pymesos_modules.allocators.drf import DRFAllocator
from pymesos_modules.kinds.allocator import (
    AgentInfo,
    AllocatorCallError,
    AllocatorOptions,
    FrameworkInfo,
    OfferBatch,
    takes_agents,
)

CPU = (4.0, 1024.0, 0.0)


def first_fit():
    a = create_builtin("python/first_fit")
    a.initialize(AllocatorOptions(resource_names=("cpus", "mem", "gpus")))
    a.add_framework(0, FrameworkInfo((0,)))
    for agent in range(4):
        a.add_agent(agent, AgentInfo(CPU))
    return a


def test_first_fit_offers_only_the_candidates():
    a = first_fit()
    a.deactivate_agent(3)
    assert [r[1] for r in a.allocate(0.0, [3, 2, 0, 2]).as_tuples()] == [0, 2]
    assert [r[1] for r in a.allocate(0.0).as_tuples()] == [1]


def test_first_fit_refuses_an_unknown_agent_and_changes_nothing():
    a, witness = first_fit(), first_fit()
    with pytest.raises(AllocatorCallError) as caught:
        a.allocate(0.0, [1, 7])
    assert caught.value.status == 3 and "unknown agent 7" in str(caught.value)
    assert a.allocate(0.0).as_tuples() == witness.allocate(0.0).as_tuples()
    assert a.stats() == witness.stats()


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5])
@pytest.mark.parametrize("kind", ["python/drf", "pybind/drf"])
def test_a_value_no_handle_can_be_is_an_unknown_agent(kind, bad):
    a = create_builtin(kind)
    a.initialize(AllocatorOptions(resource_names=("cpus", "mem", "gpus")))
    a.add_agent(0, AgentInfo(CPU))
    with pytest.raises(AllocatorCallError) as caught:
        a.allocate(0.0, [0, bad])
    assert caught.value.status == 3 and f"unknown agent {bad!r}" in str(caught.value)
    assert a.stats()["allocation_runs"] == 0


class LegacyAllocator(DRFAllocator):
    """Written against the Protocol before ``agents`` existed."""

    def allocate(self, now: float) -> OfferBatch:  # type: ignore[override]
        return super().allocate(now)


def test_allocators_without_agents_are_told_apart():
    assert takes_agents(create_builtin("python/drf"))
    assert takes_agents(create_builtin("python/first_fit"))
    assert takes_agents(create_builtin("pybind/drf"))
    assert not takes_agents(LegacyAllocator())
