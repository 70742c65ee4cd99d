"""The zookeeper registry backend against a real ZooKeeper: layout, compare-and-set, scale."""

from __future__ import annotations

import asyncio
import json

import pytest
from kazoo.client import KazooClient

from pymesos_modules.master.registry import (
    AgentEntry,
    Change,
    Registrar,
    RegistryError,
    open_backend,
)
from pymesos_modules.master.registry_zk import ZooKeeperBackend, bucket
from pymesos_modules.zookeeper import master_info, parse_zk_url

SESSION = 10.0


def agent(index: int) -> Change:
    agent_id = f"{index:08x}-5b0c-4c1e-9e1e-0123456789ab-S{index}"
    record = {
        "id": agent_id,
        "hostname": f"node-{index}.example.org",
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 8}}],
        "attributes": {"rack": f"r{index % 40}"},
        "admitted_at": 1_700_000_000.0 + index,
    }
    return Change("admitted", agent_id, record)


@pytest.fixture
def backends(zk_url):
    made: list[ZooKeeperBackend] = []

    def make() -> ZooKeeperBackend:
        made.append(ZooKeeperBackend(parse_zk_url(zk_url), SESSION))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def test_records_round_trip_packed_in_buckets(backends, zookeeper, zk_url):
    first = backends()
    assert first.load() == {}
    changes = [agent(1), agent(2), Change("weights", "eng/ml", {"weight": 2.0})]
    first.store(changes)
    first.store([Change("admitted", agent(2).key, None), agent(3)])
    loaded = backends().load()
    assert loaded == {
        "admitted": {agent(1).key: agent(1).record, agent(3).key: agent(3).record},
        "weights": {"eng/ml": {"weight": 2.0}},
    }
    client = KazooClient(hosts=zookeeper.hosts)
    client.start()
    try:
        root = f"{parse_zk_url(zk_url).path}/registry"
        raw, _ = client.get(f"{root}/weights/{bucket('eng/ml')}")
        assert json.loads(raw) == {"eng/ml": {"weight": 2.0}}
        assert json.loads(client.get(root)[0]) == {"layout": 1}
    finally:
        client.stop()


def test_a_deposed_master_cannot_overwrite_the_new_leaders_registry(backends):
    old, new = backends(), backends()
    old.load()
    old.store([agent(1)])
    new.load()  # the new leader recovers ...
    new.store([agent(2)])  # ... and writes: the token moves on
    with pytest.raises(RegistryError, match="another master has written the registry"):
        old.store([Change("admitted", agent(2).key, None), agent(3)])
    assert set(backends().load()["admitted"]) == {agent(1).key, agent(2).key}


def test_a_newer_layout_and_a_corrupt_record_are_clear_errors(backends, zookeeper, zk_url):
    backend = backends()
    backend.load()
    backend.store([agent(1)])
    root = f"{parse_zk_url(zk_url).path}/registry"
    client = KazooClient(hosts=zookeeper.hosts)
    client.start()
    try:
        node = f"{root}/admitted/{bucket(agent(1).key)}"
        client.set(node, b"{not json")
        with pytest.raises(RegistryError, match=f"registry: {node} is corrupt"):
            backends().load()
        client.set(root, json.dumps({"layout": 2}).encode())
        with pytest.raises(RegistryError, match="layout 2 was written by a newer"):
            backends().load()
    finally:
        client.stop()


def test_a_bucket_past_the_node_limit_is_refused_whole(backends, monkeypatch):
    from pymesos_modules.master import registry_zk

    backend = backends()
    backend.load()
    monkeypatch.setattr(registry_zk, "MAX_NODE_BYTES", 400)  # two agents
    with pytest.raises(RegistryError, match="over ZooKeeper's node limit"):
        backend.store([agent(i) for i in range(300)])
    assert backends().load() == {}


def test_fifty_thousand_agents_fit_and_come_back(backends, zookeeper, zk_url):
    backend = backends()
    backend.load()
    changes = [agent(i) for i in range(50_000)]
    backend.store(changes)
    loaded = backends().load()
    assert len(loaded["admitted"]) == 50_000
    assert loaded["admitted"][changes[12345].key] == changes[12345].record
    client = KazooClient(hosts=zookeeper.hosts)
    client.start()
    try:
        folder = f"{parse_zk_url(zk_url).path}/registry/admitted"
        buckets = client.get_children(folder)
        assert len(buckets) == 256
        largest = max(client.exists(f"{folder}/{b}").dataLength for b in buckets)
        assert largest < 200 * 1024  # far from ZooKeeper's 1 MB node limit
    finally:
        client.stop()


async def test_the_registrar_recovers_what_the_last_leader_admitted(backends):
    first = Registrar(backends())
    first.recover(master_info("m1", "127.0.0.1", 5050, "m1", "0.1.0"))
    await asyncio.gather(*(first.admit(AgentEntry(f"a{i}", f"h{i}")) for i in range(20)))
    second = Registrar(backends())
    second.recover(master_info("m2", "127.0.0.1", 5051, "m2", "0.1.0"))
    assert second.recovered and set(second.admitted) == {f"a{i}" for i in range(20)}
    assert second.records["master"]["info"]["id"] == "m2"
    with pytest.raises(RegistryError, match="another master"):
        await first.admit(AgentEntry("late", "h"))


def test_the_registry_flags_open_zookeeper_with_zk(zk_url):
    backend = open_backend("replicated_log", None, zk_url, SESSION)
    try:
        assert isinstance(backend, ZooKeeperBackend)
        assert backend.where == f"{zk_url}/registry"
    finally:
        backend.close()
    with pytest.raises(RegistryError, match="--registry=zookeeper keeps the registry under --zk"):
        open_backend("zookeeper", None, None)
    with pytest.raises(RegistryError, match="--zk: zk://h has no znode path"):
        open_backend("zookeeper", None, "zk://h")
