"""The registry: backends, the batched registrar, and the --registry flags."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence

import pytest

from pymesos_modules.master.registry import (
    REGISTRY_FORMAT,
    AgentEntry,
    Change,
    InMemoryBackend,
    LocalBackend,
    Registrar,
    RegistryError,
    backend_name,
    open_backend,
)

INFO = {"id": "m1", "hostname": "localhost", "port": 5050}


class CountingBackend(InMemoryBackend):
    """An in-memory backend that counts its writes and can be told to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.stores: list[int] = []
        self.fail = False

    def store(self, changes: Sequence[Change]) -> None:
        if self.fail:
            raise RegistryError("the store is down")
        self.stores.append(len(changes))
        super().store(changes)


def entry(index: int) -> AgentEntry:
    return AgentEntry(f"a{index}", f"host{index}", [], {}, 1.0)


def test_local_registry_outlives_its_backend_object(tmp_path):
    registrar = Registrar(LocalBackend(tmp_path))
    registrar.recover(INFO)
    assert not registrar.recovered  # a new registry
    since = time.time()

    async def admit() -> None:
        await registrar.admit(entry(1))
        await registrar.admit(entry(2))
        await registrar.mark_unreachable(["a2"], since=since)

    asyncio.run(admit())
    registrar.close()

    again = Registrar(LocalBackend(tmp_path))
    again.recover({**INFO, "id": "m2"})
    assert again.recovered
    assert set(again.admitted) == {"a1"}
    assert again.admitted["a1"]["hostname"] == "host1"
    assert again.unreachable == {"a2": {"id": "a2", "hostname": "host2", "since": since}}
    assert again.records["master"]["info"]["id"] == "m2"
    again.close()


def test_ten_thousand_admissions_at_once_are_a_few_writes_and_all_durable(tmp_path):
    backend = LocalBackend(tmp_path)
    registrar = Registrar(backend)
    registrar.recover(INFO)
    writes_before = registrar.writes

    async def admit_all() -> None:
        await asyncio.gather(*(registrar.admit(entry(i)) for i in range(10_000)))

    asyncio.run(admit_all())
    # The first admission is written alone; every one that came while it was
    # written goes in the next write (Mesos' registrar batches the same way).
    assert registrar.writes - writes_before <= 3
    registrar.close()
    assert len(LocalBackend(tmp_path).load()["admitted"]) == 10_000


def test_a_failed_write_fails_its_operations_and_changes_nothing():
    backend = CountingBackend()
    registrar = Registrar(backend)
    registrar.recover(INFO)
    backend.fail = True

    async def admit() -> None:
        await registrar.admit(entry(1))

    with pytest.raises(RegistryError, match="the store is down"):
        asyncio.run(admit())
    assert registrar.admitted == {}
    backend.fail = False
    asyncio.run(admit())
    assert set(registrar.admitted) == {"a1"}


def test_unreachable_agents_are_pruned_by_age_and_count():
    now = [1000.0]
    registrar = Registrar(
        CountingBackend(), max_agent_age=100.0, max_agent_count=2, clock=lambda: now[0]
    )
    registrar.recover(INFO)

    async def run() -> None:
        await asyncio.gather(*(registrar.admit(entry(i)) for i in range(4)))
        await registrar.mark_unreachable(["a0"], since=850.0)  # already older than 100 s
        await registrar.mark_unreachable(["a1"], since=990.0)
        await registrar.mark_unreachable(["a2"], since=995.0)
        await registrar.mark_unreachable(["a3"], since=999.0)

    asyncio.run(run())
    # a0 is past the age; of a1..a3 the newest two stay.
    assert sorted(registrar.unreachable) == ["a2", "a3"]


def test_a_registry_of_a_newer_format_is_refused_naming_the_file(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.store([Change("meta", "format", {"version": REGISTRY_FORMAT + 1, "writer": "9.9"})])
    backend.close()
    with pytest.raises(RegistryError) as error:
        Registrar(LocalBackend(tmp_path)).recover(INFO)
    text = str(error.value)
    assert str(tmp_path / "registry.sqlite") in text
    assert f"format {REGISTRY_FORMAT + 1}" in text and "9.9" in text


def test_a_corrupt_registry_file_is_named_never_reset(tmp_path):
    path = tmp_path / "registry.sqlite"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(RegistryError, match=str(path)):
        Registrar(LocalBackend(tmp_path)).recover(INFO)
    assert path.read_bytes().startswith(b"this is not a database")


def test_a_corrupt_record_is_named(tmp_path):
    LocalBackend(tmp_path).close()
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        db.execute("INSERT INTO records VALUES ('admitted', 'a1', '{not json')")
    with pytest.raises(RegistryError, match=r"record admitted/a1 is corrupt"):
        Registrar(LocalBackend(tmp_path)).recover(INFO)


@pytest.mark.parametrize(
    ("registry", "work_dir", "zk", "expected"),
    [
        (None, None, None, "in_memory"),
        (None, "/w", None, "local"),
        ("replicated_log", "/w", None, "local"),
        ("replicated_log", "/w", "zk://h:2181/mesos", "zookeeper"),
        ("in_memory", "/w", None, "in_memory"),
        (None, "/w", "zk://h:2181/mesos", "zookeeper"),  # HA masters share the registry
    ],
)
def test_the_registry_flag_reads_as_mesos(registry, work_dir, zk, expected):
    assert backend_name(registry, work_dir, zk) == expected


def test_bad_registry_flags_are_clear_errors(tmp_path):
    with pytest.raises(RegistryError, match="--registry=local keeps the registry under --work_dir"):
        open_backend("local", None)
    with pytest.raises(RegistryError, match="--registry=leveldb: unknown registry backend"):
        open_backend("leveldb", str(tmp_path))
    with pytest.raises(RegistryError, match="--registry_max_agent_count must be >= 1"):
        Registrar(InMemoryBackend(), max_agent_count=0)
