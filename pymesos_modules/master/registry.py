"""The registry: what must outlive a master process, and the registrar that writes it.

As Mesos' registry (src/master/registry.proto) it holds this master's
MasterInfo, the admitted agents, the unreachable agents (and since when), the
gone agents, quota and weights.  It holds no tasks: agents report those when
they re-register.  As Mesos' registrar (src/master/registrar.cpp), operations
are written before the action they record is acknowledged (an agent is
admitted once its admission is durable) and batched: whatever operations
arrive while a write is under way become the next single write, so 10k agents
registering at once are a handful of writes, not 10k in series.

The registry is plain data: collections of records (JSON objects) by key,
so a backend stores small independent records (a ZooKeeper backend can put
each in its own node, far below ZooKeeper's 1 MB limit):

==============  ==========  ============================================
collection      key         record
==============  ==========  ============================================
``meta``        ``format``  ``{"version": int, "writer": str}``
``master``      ``info``    the MasterInfo of the master that last recovered it
``admitted``    agent id    ``{"id", "hostname", "resources", "attributes", "admitted_at"}``
``unreachable`` agent id    ``{"id", "hostname", "since"}`` (``since``: Unix time)
``gone``        agent id    ``{"id", "since"}``
``quota``       role        the role's quota (reserved for the quota API)
``weights``     role        ``{"weight": float}`` (reserved for the weights API)
==============  ==========  ============================================

A backend is anything with the three methods of :class:`RegistryBackend`;
:data:`BACKENDS` maps ``--registry`` names to factories; ``zookeeper`` lives
in :mod:`pymesos_modules.master.registry_zk` (compare-and-set writes, records
packed in buckets under ``<--zk path>/registry``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pymesos_modules import __version__

logger = logging.getLogger(__name__)

#: The layout of the records this code writes; a registry of a higher format is refused.
REGISTRY_FORMAT = 1

#: Every collection a registry holds (a backend may be asked for any of them).
COLLECTIONS = ("meta", "master", "admitted", "unreachable", "gone", "quota", "weights")

#: One record: plain JSON data.
Record = dict[str, Any]

#: Mesos' defaults: --registry_max_agent_age (2 weeks) and --registry_max_agent_count.
MAX_AGENT_AGE = 14 * 24 * 3600.0
MAX_AGENT_COUNT = 100 * 1024


class RegistryError(Exception):
    """The registry cannot be read or written; the message names the store at fault."""


@dataclass(frozen=True)
class Change:
    """One change to the registry: put ``record`` under ``collection``/``key``, or delete it."""

    collection: str
    key: str
    record: Record | None


def apply_changes(records: dict[str, dict[str, Record]], changes: Iterable[Change]) -> None:
    """Apply ``changes`` in order to ``records`` (collection -> key -> record)."""
    for change in changes:
        rows = records.setdefault(change.collection, {})
        if change.record is None:
            rows.pop(change.key, None)
        else:
            rows[change.key] = change.record


class RegistryBackend(Protocol):
    """Where the registry lives.  Small on purpose: a backend stores; the registrar decides.

    Both methods block (the registrar calls them from a worker thread, one at a
    time).  A backend that can be written by several masters at once (ZooKeeper)
    must refuse a write from a master that is no longer the leader: compare and
    set on a version it read in :meth:`load`, and raise RegistryError.
    """

    #: where the registry is, for messages (a file path, a ``zk://`` URL)
    where: str

    def load(self) -> dict[str, dict[str, Record]]:
        """Every record by collection and key ({} when the registry is new).

        RegistryError, naming :attr:`where`, when the store is unreadable or corrupt.
        """

    def store(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in order, all or nothing; they are durable when this returns.

        RegistryError, naming :attr:`where`, when they could not be written.
        """

    def close(self) -> None:
        """Release the store."""


class InMemoryBackend:
    """``--registry=in_memory``: gone with the process (a standalone master without a work_dir)."""

    where = "the in-memory registry"

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Record]] = {}

    def load(self) -> dict[str, dict[str, Record]]:
        """A copy of what was stored."""
        return {c: dict(rows) for c, rows in self._records.items()}

    def store(self, changes: Sequence[Change]) -> None:
        """Keep a copy of ``changes`` (as plain data, as a real store would)."""
        copies = [
            Change(
                c.collection, c.key, None if c.record is None else json.loads(json.dumps(c.record))
            )
            for c in changes
        ]
        apply_changes(self._records, copies)

    def close(self) -> None:
        """Nothing to release."""


class LocalBackend:
    """``--registry=local``: one SQLite file under --work_dir, for a single master.

    Every write is one transaction with ``synchronous=FULL``: once store()
    returns, the records survive a kill -9 of the process (and a power cut).
    """

    FILE = "registry.sqlite"

    def __init__(self, work_dir: str | Path) -> None:
        folder = Path(work_dir)
        self.path = folder / self.FILE
        self.where = str(self.path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # One writer (the registrar's thread) at a time; the lock makes it explicit.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                " collection TEXT NOT NULL, key TEXT NOT NULL, record TEXT NOT NULL,"
                " PRIMARY KEY (collection, key))"
            )
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(f"{self.where}: cannot open the registry: {exc}") from None
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict[str, Record]]:
        """Every record; RegistryError names the file, and the record, that is corrupt."""
        out: dict[str, dict[str, Record]] = {}
        with self._lock:
            try:
                (check,) = self._db.execute("PRAGMA quick_check").fetchone()
                if check != "ok":
                    raise RegistryError(f"{self.where}: the registry is corrupt: {check}")
                rows = self._db.execute("SELECT collection, key, record FROM records").fetchall()
            except sqlite3.Error as exc:
                raise RegistryError(f"{self.where}: the registry is corrupt: {exc}") from None
        for collection, key, text in rows:
            try:
                record = json.loads(text)
            except ValueError as exc:
                raise RegistryError(
                    f"{self.where}: record {collection}/{key} is corrupt: {exc}"
                ) from None
            if not isinstance(record, dict):
                raise RegistryError(f"{self.where}: record {collection}/{key} is not an object")
            out.setdefault(collection, {})[key] = record
        return out

    def store(self, changes: Sequence[Change]) -> None:
        """One transaction for all ``changes``."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for change in changes:
                    if change.record is None:
                        self._db.execute(
                            "DELETE FROM records WHERE collection = ? AND key = ?",
                            (change.collection, change.key),
                        )
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                            (change.collection, change.key, json.dumps(change.record)),
                        )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise RegistryError(f"{self.where}: cannot write the registry: {exc}") from None

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()


@dataclass(frozen=True)
class StoreFlags:
    """The flags a backend may need: --work_dir, --zk, --zk_session_timeout."""

    work_dir: str | None = None
    zk: str | None = None
    zk_session_timeout: float = 10.0


def _zookeeper(flags: StoreFlags) -> RegistryBackend:
    from pymesos_modules.master.registry_zk import ZooKeeperBackend  # it imports this module
    from pymesos_modules.zookeeper import ZooKeeperError, parse_zk_url

    if not flags.zk:
        raise RegistryError("--registry=zookeeper keeps the registry under --zk: give one")
    try:
        return ZooKeeperBackend(parse_zk_url(flags.zk, "--zk"), flags.zk_session_timeout)
    except ZooKeeperError as exc:
        raise RegistryError(str(exc)) from None


#: ``--registry`` names -> factories taking the flags a backend may need.
BACKENDS: dict[str, Callable[[StoreFlags], RegistryBackend]] = {
    "in_memory": lambda flags: InMemoryBackend(),
    "local": lambda flags: LocalBackend(_need_work_dir(flags.work_dir)),
    "zookeeper": _zookeeper,
}


def _need_work_dir(work_dir: str | None) -> str:
    if not work_dir:
        raise RegistryError("--registry=local keeps the registry under --work_dir: give one")
    return work_dir


def backend_name(registry: str | None, work_dir: str | None, zk: str | None) -> str:
    """The backend ``--registry`` selects, as Mesos reads the flag.

    Unset: as Mesos' default (``replicated_log``) with --zk, so masters that elect a
    leader share its registry; without --zk ``local`` with a --work_dir, else
    ``in_memory``.  ``replicated_log`` means ``zookeeper`` with --zk and ``local``
    without: ZooKeeper's own quorum does what Mesos' replicated log (and its
    --quorum) did.
    """
    if registry in (None, ""):
        if zk:
            return "zookeeper"
        return "local" if work_dir else "in_memory"
    if registry == "replicated_log":
        return "zookeeper" if zk else "local"
    return registry


def open_backend(
    registry: str | None,
    work_dir: str | None,
    zk: str | None = None,
    zk_session_timeout: float = 10.0,
) -> RegistryBackend:
    """The backend the --registry, --work_dir and --zk flags select; RegistryError says why not."""
    name = backend_name(registry, work_dir, zk)
    factory = BACKENDS.get(name)
    if factory is None:
        known = ", ".join(sorted([*BACKENDS, "replicated_log"]))
        raise RegistryError(f"--registry={registry}: unknown registry backend (known: {known})")
    return factory(StoreFlags(work_dir, zk, zk_session_timeout))


@dataclass
class AgentEntry:
    """An admitted agent as the registry keeps it."""

    agent_id: str
    hostname: str
    resources: list[Any] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    admitted_at: float = 0.0

    def record(self) -> Record:
        """The plain record."""
        return {
            "id": self.agent_id,
            "hostname": self.hostname,
            "resources": self.resources,
            "attributes": self.attributes,
            "admitted_at": self.admitted_at,
        }


class Registrar:
    """Reads the registry once, then writes batched operations to it (Mesos' registrar).

    Operations are coroutines that return once their change is durable; the
    registrar's view (:attr:`admitted`, :attr:`unreachable`, :attr:`gone`) changes
    only then.  While one write is under way, the operations that arrive wait
    and become the next write together.
    """

    def __init__(
        self,
        backend: RegistryBackend,
        max_agent_age: float = MAX_AGENT_AGE,
        max_agent_count: int = MAX_AGENT_COUNT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not max_agent_age > 0:
            raise RegistryError("--registry_max_agent_age must be a number of seconds > 0")
        if max_agent_count < 1:
            raise RegistryError("--registry_max_agent_count must be >= 1")
        self.backend = backend
        self.max_agent_age = max_agent_age
        self.max_agent_count = max_agent_count
        self.clock = clock
        self.records: dict[str, dict[str, Record]] = {c: {} for c in COLLECTIONS}
        #: True when :meth:`recover` found a registry a previous master wrote
        self.recovered = False
        self.writes = 0
        self._queue: list[tuple[list[Change], bool, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    # --- reading ----------------------------------------------------------------------

    @property
    def admitted(self) -> dict[str, Record]:
        """Admitted agents by id."""
        return self.records["admitted"]

    @property
    def unreachable(self) -> dict[str, Record]:
        """Unreachable agents by id."""
        return self.records["unreachable"]

    @property
    def gone(self) -> dict[str, Record]:
        """Gone agents by id."""
        return self.records["gone"]

    def recover(self, master_info: Record) -> None:
        """Read the registry (blocking, before serving) and record this master in it.

        RegistryError if it is corrupt or of a newer format than this code reads.
        """
        loaded = self.backend.load()
        meta = loaded.get("meta", {}).get("format")
        if meta is not None:
            version = meta.get("version")
            if not isinstance(version, int):
                raise RegistryError(f"{self.backend.where}: meta/format has no integer version")
            if version > REGISTRY_FORMAT:
                raise RegistryError(
                    f"{self.backend.where}: the registry has format {version}, written by "
                    f"pymesos-modules {meta.get('writer', '?')}; this master "
                    f"({__version__}) reads format {REGISTRY_FORMAT} and older. Run a newer "
                    "master, or move the registry away to start a new cluster."
                )
        unknown = sorted(set(loaded) - set(COLLECTIONS))
        if unknown:
            raise RegistryError(f"{self.backend.where}: unknown collections {unknown}")
        for collection, rows in loaded.items():
            self.records[collection] = dict(rows)
        self.recovered = bool(self.admitted or self.unreachable or "master" in loaded)
        changes = [
            Change("meta", "format", {"version": REGISTRY_FORMAT, "writer": __version__}),
            Change("master", "info", master_info),
            *self._prune(),
        ]
        self.backend.store(changes)
        self.writes += 1
        apply_changes(self.records, changes)

    # --- operations -------------------------------------------------------------------

    async def admit(self, entry: AgentEntry) -> None:
        """Admit an agent (it leaves the unreachable list if it was there)."""
        await self._submit(
            [
                Change("admitted", entry.agent_id, entry.record()),
                Change("unreachable", entry.agent_id, None),
            ]
        )

    async def mark_unreachable(self, agent_ids: Iterable[str], since: float | None = None) -> None:
        """Admitted agents become unreachable (pruned to the age and count bounds)."""
        now = self.clock() if since is None else since
        changes: list[Change] = []
        for agent_id in agent_ids:
            admitted = self.admitted.get(agent_id, {})
            record = {"id": agent_id, "hostname": admitted.get("hostname", ""), "since": now}
            changes += [
                Change("admitted", agent_id, None),
                Change("unreachable", agent_id, record),
            ]
        if changes:
            await self._submit(changes, prune=True)

    async def remove(self, agent_id: str) -> None:
        """Forget an agent (it was removed, not lost: it may register anew)."""
        await self._submit(
            [Change("admitted", agent_id, None), Change("unreachable", agent_id, None)]
        )

    # --- the batched writer --------------------------------------------------------------

    async def _submit(self, changes: list[Change], prune: bool = False) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((changes, prune, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await future

    async def _write_all(self) -> None:
        """Write what is queued as one batch, then what queued meanwhile, until none is left."""
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            changes: list[Change] = []
            for more, prune, _ in batch:
                changes += more
                if prune:
                    changes += self._prune(changes)
            try:
                await loop.run_in_executor(None, self.backend.store, changes)
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, RegistryError)
                    else RegistryError(f"{self.backend.where}: cannot write the registry: {exc}")
                )
                logger.error("%s", error)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.writes += 1
            apply_changes(self.records, changes)
            for _, _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _prune(self, pending: Sequence[Change] = ()) -> list[Change]:
        """Unreachable entries past --registry_max_agent_age, or beyond the newest
        --registry_max_agent_count, are dropped (Mesos' registry GC)."""
        view = dict(self.unreachable)
        for change in pending:
            if change.collection == "unreachable":
                if change.record is None:
                    view.pop(change.key, None)
                else:
                    view[change.key] = change.record
        cutoff = self.clock() - self.max_agent_age
        newest = sorted(view, key=lambda k: float(view[k].get("since", 0.0)), reverse=True)
        drop = {k for k in view if float(view[k].get("since", 0.0)) < cutoff}
        drop |= set(newest[self.max_agent_count :])
        return [Change("unreachable", k, None) for k in sorted(drop)]

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()
