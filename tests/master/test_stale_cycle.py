"""A framework or agent removed while an allocation cycle runs: the cycle's offers for it are
dropped, and its handle is not handed to anyone else before they are (the allocation loop used
to die with KeyError, and a framework that got the handle could be offered the old one's)."""

from __future__ import annotations

import pytest

from pymesos_modules.allocators import resolve_allocator
from pymesos_modules.manager import ModuleManager
from pymesos_modules.master.master import Master, MasterFlags
from pymesos_modules.master.resources import parse_resources
from pymesos_modules.master.simulated import InProcessFramework, SimulatedAgent
from pymesos_modules.master.state import HandleMap


def test_a_held_handle_is_reused_only_after_release():
    handles = HandleMap()
    a, b = handles.add("a"), handles.add("b")
    handles.remove("a", hold=True)
    assert handles.find(a) is None
    c = handles.add("c")
    assert c not in (a, b)
    handles.release_held()
    assert handles.add("d") == a


@pytest.mark.parametrize("allocator", ["python/drf", "native/drf"])
def test_a_framework_removed_during_a_cycle_gets_none_of_its_offers(allocator):
    master = Master(resolve_allocator(allocator, ModuleManager()), MasterFlags())
    agent = SimulatedAgent(master, call_later=lambda _delay, callback: callback())
    agent.agent_id = master.register_agent(agent, "h1", parse_resources("cpus:2;mem:1024"))
    old = InProcessFramework(master, {"user": "u", "name": "old", "roles": ["*"]})
    old.subscribe()
    master._allocate_in_thread(None)  # the cycle ran; its offers wait for delivery
    master.remove_framework(old.framework.framework_id)
    new = InProcessFramework(master, {"user": "u", "name": "new", "roles": ["*"]})
    new.subscribe()
    assert new.framework.handle != old.framework.handle
    assert master._deliver(master._pending_batch) == 0
    assert not old.of_type("OFFERS") and not new.of_type("OFFERS")
    assert master.allocate_now() == 1  # the resources were not lost with the old framework
    assert new.of_type("OFFERS")


def test_an_agent_removed_during_a_cycle_is_offered_to_nobody():
    master = Master(resolve_allocator("python/drf", ModuleManager()), MasterFlags())
    agent = SimulatedAgent(master, call_later=lambda _delay, callback: callback())
    agent.agent_id = master.register_agent(agent, "h1", parse_resources("cpus:2;mem:1024"))
    framework = InProcessFramework(master, {"user": "u", "name": "f", "roles": ["*"]})
    framework.subscribe()
    master._allocate_in_thread(None)
    master.remove_agent(agent.agent_id)
    assert master._deliver(master._pending_batch) == 0
    assert master.offers == {}
