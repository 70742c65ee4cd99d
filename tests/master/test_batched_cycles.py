"""Events batch into allocation cycles as in Mesos: a burst is one cycle over the union of
the agents it named; a framework event, and the allocation_interval timer, visit every agent.

Cycles are observed through an allocator that records what each one was asked to visit,
never through timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection
from typing import Any

from pymesos_modules.allocators.drf import DRFAllocator
from pymesos_modules.kinds.allocator import OfferBatch
from pymesos_modules.master.master import Master, MasterFlags
from pymesos_modules.master.resources import parse_resources
from pymesos_modules.master.simulated import InProcessFramework, SimulatedAgent

#: How long a test waits for the master's loop before it fails (a guard, not a clock).
GUARD = 30.0


class RecordingAllocator(DRFAllocator):
    """The Python DRF twin, remembering the agents each cycle visits (None: every agent)."""

    def __init__(self) -> None:
        super().__init__(name="recording/drf")
        self.cycles: list[tuple[int, ...] | None] = []
        self.on_cycle: Callable[[], None] | None = None
        self._guard = threading.Lock()

    def allocate(self, now: float, agents: Collection[int] | None = None) -> OfferBatch:
        with self._guard:
            self.cycles.append(None if agents is None else tuple(agents))
        if self.on_cycle is not None:
            self.on_cycle()
        return super().allocate(now, agents)


class LegacyRecordingAllocator(DRFAllocator):
    """A Python allocator written before allocate() took ``agents``."""

    def __init__(self) -> None:
        super().__init__(name="legacy/drf")
        self.cycles = 0

    def allocate(self, now: float) -> OfferBatch:  # type: ignore[override]
        self.cycles += 1
        return super().allocate(now)


def cluster(
    allocator: Any, hosts: tuple[str, ...] = ("a", "b", "c"), interval: float = 1.0
) -> tuple[Master, dict[str, int], InProcessFramework]:
    """A master over ``allocator`` with one agent per host and one framework holding offers."""
    master = Master(allocator, MasterFlags(allocation_interval=interval))
    handles = {}
    for host in hosts:
        agent = SimulatedAgent(master, call_later=lambda _delay, callback: callback())
        agent.agent_id = master.register_agent(agent, host, parse_resources("cpus:2;mem:1024"))
        handles[host] = master.agents[agent.agent_id].handle
    framework = InProcessFramework(master, {"user": "u", "name": "fw", "roles": ["*"]})
    framework.subscribe()
    return master, handles, framework


def offers_on(master: Master, framework: InProcessFramework) -> dict[str, str]:
    """hostname -> offer id of the framework's outstanding offers."""
    return {
        master.agents[o.agent_id].hostname: o.offer_id
        for o in master.offers.values()
        if o.framework_id == framework.framework.framework_id
    }


def decline(framework: InProcessFramework, offer_id: str) -> None:
    framework.call(
        {
            "type": "DECLINE",
            "decline": {"offer_ids": [{"value": offer_id}], "filters": {"refuse_seconds": 0}},
        }
    )


def test_recovers_on_two_agents_become_one_cycle_over_both():
    allocator = RecordingAllocator()
    master, handles, framework = cluster(allocator)
    assert master.allocate_pending() == 3
    assert allocator.cycles == [None]  # a framework subscribed: every agent
    offers = offers_on(master, framework)
    decline(framework, offers["a"])
    decline(framework, offers["b"])
    assert master.allocate_pending() == 2
    assert allocator.cycles == [None, tuple(sorted((handles["a"], handles["b"])))]
    assert sorted(offers_on(master, framework)) == ["a", "b", "c"]
    assert master.allocate_pending() == 0  # nothing asked for another cycle...
    assert len(allocator.cycles) == 2  # ...so none ran


def test_a_framework_event_makes_the_next_cycle_visit_every_agent():
    allocator = RecordingAllocator()
    master, handles, framework = cluster(allocator)
    master.allocate_pending()
    decline(framework, offers_on(master, framework)["a"])
    framework.call({"type": "SUPPRESS", "suppress": {}})  # no cycle for a suppress, as Mesos
    assert master.allocate_pending() == 0  # suppressed: agent a is visited, offered to nobody
    assert allocator.cycles[-1] == (handles["a"],)
    framework.call({"type": "REVIVE", "revive": {}})
    assert master.allocate_pending() == 1
    assert allocator.cycles[-1] is None
    other = InProcessFramework(master, {"user": "u", "name": "other", "roles": ["*"]})
    other.subscribe()
    master.allocate_pending()
    assert allocator.cycles[-1] is None


def test_a_removed_agent_leaves_the_pending_cycle():
    allocator = RecordingAllocator()
    master, handles, framework = cluster(allocator)
    master.allocate_pending()
    offers = offers_on(master, framework)
    decline(framework, offers["a"])
    decline(framework, offers["b"])
    gone = next(a for a in master.agents.values() if a.hostname == "b")
    master.remove_agent(gone.agent_id)
    assert master.allocate_pending() == 1
    assert allocator.cycles[-1] == (handles["a"],)


def test_an_allocator_without_agent_sets_gets_full_cycles():
    allocator = LegacyRecordingAllocator()
    master, _, framework = cluster(allocator)
    master.allocate_pending()
    decline(framework, offers_on(master, framework)["a"])
    assert master.allocate_pending() == 1
    assert allocator.cycles == 2


async def test_a_burst_in_the_running_loop_is_one_cycle_over_its_agents():
    allocator = RecordingAllocator()
    # The timer is an hour away: every cycle here comes from events.
    master, handles, framework = cluster(allocator, interval=3600.0)
    offered = asyncio.Event()
    framework.on_event = lambda event: offered.set() if event["type"] == "OFFERS" else None
    await master.start()
    try:
        await asyncio.wait_for(offered.wait(), GUARD)
        assert allocator.cycles == [None]
        offered.clear()
        offers = offers_on(master, framework)
        decline(framework, offers["a"])  # no await in between: one burst
        decline(framework, offers["c"])
        await asyncio.wait_for(offered.wait(), GUARD)
        assert allocator.cycles == [None, tuple(sorted((handles["a"], handles["c"])))]
    finally:
        await master.stop()


async def test_the_interval_timer_visits_every_agent_without_any_event():
    allocator = RecordingAllocator()
    master, _, _ = cluster(allocator, interval=0.01)
    master.allocate_now()  # what registration and subscription asked for is done
    allocator.cycles.clear()
    loop = asyncio.get_running_loop()
    ticks = asyncio.Queue()
    allocator.on_cycle = lambda: loop.call_soon_threadsafe(ticks.put_nowait, None)
    await master.start()
    try:
        for _ in range(2):
            await asyncio.wait_for(ticks.get(), GUARD)
        assert allocator.cycles[:2] == [None, None]
    finally:
        await master.stop()
