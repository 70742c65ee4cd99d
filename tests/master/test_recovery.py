"""Durable admission, unreachable agents, and a restarted master's recovery (in process).

Time is driven by the test: the timeouts are called, never slept through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pymesos_modules.allocators.drf import DRFAllocator
from pymesos_modules.master.base import CallError
from pymesos_modules.master.master import Master, MasterFlags
from pymesos_modules.master.registry import (
    Change,
    InMemoryBackend,
    LocalBackend,
    Registrar,
    RegistryError,
)
from pymesos_modules.master.resources import parse_resources
from pymesos_modules.master.simulated import InProcessFramework, SimulatedAgent

RESOURCES = "cpus:4;mem:4096"
AWARE = [{"type": "PARTITION_AWARE"}]


def new_master(registrar: Registrar) -> Master:
    master = Master(DRFAllocator(), MasterFlags(agent_reregister_timeout=5.0), registrar=registrar)
    master.recover()
    return master


async def admit(master: Master, host: str, agent_id: str | None = None) -> SimulatedAgent:
    agent = SimulatedAgent(master, call_later=lambda _delay, callback: callback())
    agent.agent_id = await master.admit_agent(
        agent, host, parse_resources(RESOURCES), agent_id=agent_id
    )
    return agent


def framework(master: Master, name: str, aware: bool) -> InProcessFramework:
    info = {"user": "u", "name": name, "roles": ["*"], "capabilities": AWARE if aware else []}
    subscribed = InProcessFramework(master, info)
    subscribed.subscribe()
    return subscribed


def run_on(master: Master, fw: InProcessFramework, agent_id: str, task_id: str) -> None:
    """Launch a task on an offer of ``agent_id``."""
    master.allocate_now()
    (offer,) = [
        o
        for o in master.offers.values()
        if o.agent_id == agent_id and o.framework_id == fw.framework.framework_id
    ]
    task = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
    }
    fw.call(
        {
            "type": "ACCEPT",
            "accept": {
                "offer_ids": [{"value": offer.offer_id}],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            },
        }
    )


def reconcile(fw: InProcessFramework, task_id: str, agent_id: str | None) -> list[dict[str, Any]]:
    """The statuses one explicit reconciliation of ``task_id`` brings."""
    before = len(fw.events)
    entry: dict[str, Any] = {"task_id": {"value": task_id}}
    if agent_id is not None:
        entry["agent_id"] = {"value": agent_id}
    fw.call({"type": "RECONCILE", "reconcile": {"tasks": [entry]}})
    return [e["update"]["status"] for e in fw.events[before:] if e["type"] == "UPDATE"]


def last_status(fw: InProcessFramework, task_id: str) -> dict[str, Any]:
    return [
        e["update"]["status"]
        for e in fw.of_type("UPDATE")
        if e["update"]["status"]["task_id"]["value"] == task_id
    ][-1]


async def test_a_restarted_master_expects_admitted_agents_and_finds_the_missing_unreachable(
    tmp_path: Path,
) -> None:
    first = new_master(Registrar(LocalBackend(tmp_path)))
    stays = await admit(first, "stays")
    dies = await admit(first, "dies")
    first.registrar.close()

    master = new_master(Registrar(LocalBackend(tmp_path)))
    assert set(master.recovering) == {stays.agent_id, dies.agent_id}
    assert {a["id"] for a in master.state()["recovered_slaves"]} == set(master.recovering)
    aware, plain = framework(master, "aware", True), framework(master, "plain", False)
    # While the agent may still come back, reconciliation of its tasks waits, as Mesos.
    assert reconcile(aware, "t", dies.agent_id) == []
    back = await admit(master, "stays", agent_id=stays.agent_id)
    assert back.agent_id == stays.agent_id and list(master.recovering) == [dies.agent_id]

    await master.recovered_agents_timeout()
    assert master.recovering == {}
    assert set(master.registrar.unreachable) == {dies.agent_id}
    assert master.snapshot_metrics()["master/slaves_unreachable"] == 1.0
    assert master.snapshot_metrics()["master/recovery_slave_removals"] == 1.0
    (unreachable,) = reconcile(aware, "t", dies.agent_id)
    assert unreachable["state"] == "TASK_UNREACHABLE"
    assert unreachable["reason"] == "REASON_RECONCILIATION"
    assert unreachable["unreachable_time"]["nanoseconds"] > 0
    assert [s["state"] for s in reconcile(plain, "t", dies.agent_id)] == ["TASK_LOST"]
    # The rest of Mesos' answers for tasks a master does not know.
    assert [s["state"] for s in reconcile(aware, "t", stays.agent_id)] == ["TASK_GONE"]
    assert [s["state"] for s in reconcile(aware, "t", None)] == ["TASK_UNKNOWN"]
    assert [s["state"] for s in reconcile(plain, "t", None)] == ["TASK_LOST"]
    master.registrar.close()

    # The unreachable list outlives this master too.
    third = new_master(Registrar(LocalBackend(tmp_path)))
    assert set(third.registrar.unreachable) == {dies.agent_id}
    assert set(third.recovering) == {stays.agent_id}
    third.registrar.close()


async def test_only_agents_the_registry_admitted_may_reregister(tmp_path: Path) -> None:
    first = new_master(Registrar(LocalBackend(tmp_path)))
    known = await admit(first, "known")
    first.registrar.close()
    master = new_master(Registrar(LocalBackend(tmp_path)))
    assert master.admissible(known.agent_id)
    assert not master.admissible("never-admitted")
    # A master on a new registry adopts whoever re-registers (today's behaviour).
    fresh = new_master(Registrar(InMemoryBackend()))
    assert fresh.admissible("never-admitted")


async def test_an_agent_away_too_long_is_unreachable_and_its_tasks_say_so() -> None:
    master = new_master(Registrar(InMemoryBackend()))
    agent = await admit(master, "a")
    aware, plain = framework(master, "aware", True), framework(master, "plain", False)
    run_on(master, aware, agent.agent_id, "t-aware")
    run_on(master, plain, agent.agent_id, "t-plain")
    master.disconnect_agent(agent.agent_id)

    await master.mark_unreachable(agent.agent_id)
    assert agent.agent_id not in master.agents
    assert set(master.registrar.unreachable) == {agent.agent_id}
    assert last_status(aware, "t-aware")["state"] == "TASK_UNREACHABLE"
    assert last_status(plain, "t-plain")["state"] == "TASK_LOST"
    assert "unreachable_time" in last_status(plain, "t-plain")
    # The partition-aware framework's task stays known, and reconciles as unreachable.
    assert [s["state"] for s in reconcile(aware, "t-aware", None)] == ["TASK_UNREACHABLE"]
    assert master.snapshot_metrics()["master/tasks_unreachable"] == 1.0

    # The agent comes back with its task: admitted again, the task known on it again.
    task = {
        "framework_id": {"value": aware.framework.framework_id},
        "task_info": {
            "task_id": {"value": "t-aware"},
            "name": "t-aware",
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
        },
        "state": "TASK_RUNNING",
    }
    back = SimulatedAgent(master)
    await master.admit_agent(
        back, "a", parse_resources(RESOURCES), agent_id=agent.agent_id, tasks=[task]
    )
    assert master.registrar.unreachable == {}
    assert agent.agent_id in master.registrar.admitted
    assert [s["state"] for s in reconcile(aware, "t-aware", None)] == ["TASK_RUNNING"]


async def test_an_agent_back_while_it_is_marked_unreachable_stays() -> None:
    master = new_master(Registrar(InMemoryBackend()))
    agent = await admit(master, "a")
    master.disconnect_agent(agent.agent_id)
    marking = asyncio.ensure_future(master.mark_unreachable(agent.agent_id))
    await asyncio.sleep(0)  # the registry write is under way
    master.reconnect_agent(agent.agent_id, agent)
    await marking
    assert agent.agent_id in master.agents
    assert agent.agent_id in master.registrar.admitted
    assert master.registrar.unreachable == {}


class FailingBackend(InMemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def store(self, changes: Sequence[Change]) -> None:
        if self.fail:
            raise RegistryError("the registry disk is full")
        super().store(changes)


async def test_an_agent_is_not_admitted_when_its_admission_cannot_be_written() -> None:
    backend = FailingBackend()
    master = new_master(Registrar(backend))
    backend.fail = True
    with pytest.raises(CallError) as refused:
        await admit(master, "a")
    assert refused.value.status == 503
    assert "the registry disk is full" in refused.value.message
    assert master.agents == {} and master.registrar.admitted == {}


async def test_a_thousand_agents_registering_at_once_are_a_few_registry_writes() -> None:
    master = new_master(Registrar(InMemoryBackend()))
    before = master.registrar.writes
    agents = await asyncio.gather(*(admit(master, f"h{i}") for i in range(1000)))
    assert len(master.agents) == 1000 == len(master.registrar.admitted)
    assert len({a.agent_id for a in agents}) == 1000
    assert master.registrar.writes - before <= 3
