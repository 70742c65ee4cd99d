"""ZooKeeper as Mesos uses it: ``--zk`` URLs, the ``json.info_`` znodes, and connecting.

- :func:`parse_zk_url`: Mesos' ``zk://[user:password@]host:port[,host:port]/path``,
  or ``file:///path`` naming a file that holds such a URL.
- :func:`connect`: a started kazoo client, or :class:`ZooKeeperUnreachable` after
  a bounded wait naming the servers.
- Mesos' layout: every master contending publishes an ephemeral sequential
  child ``json.info_<10 digits>`` of the path holding its MasterInfo as JSON
  (:func:`master_info`); the lowest sequence number leads (:func:`leading_node`);
  children of other names (``log_replicas``, old ``info_`` nodes) are ignored.
- :class:`Versioned`: a value with a generation that threads can wait on, the
  shape the contender and detector kinds answer in.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

#: Prefix of the znodes Mesos' masters (>= 0.24) publish their MasterInfo JSON under.
INFO_PREFIX = "json.info_"
_SEQUENCE = re.compile(r"^json\.info_(\d+)$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?$")

T = TypeVar("T")


class ZooKeeperError(ValueError):
    """A ZooKeeper flag or server we cannot use; the message names the flag and why."""


class ZkUrlError(ZooKeeperError):
    """A ``--zk`` (or ``--master=zk://``) value that does not parse."""


class ZooKeeperUnreachable(ZooKeeperError):
    """No ZooKeeper server answered within the bounded wait."""


@dataclass(frozen=True)
class ZkUrl:
    """A parsed ``zk://`` URL."""

    #: kazoo's connection string, ``host:port,host:port``
    hosts: str
    #: the znode the masters publish under, e.g. ``/mesos``
    path: str
    #: ``(user, password)`` for ZooKeeper's digest scheme, as Mesos takes them
    credentials: tuple[str, str] | None = None

    def __str__(self) -> str:
        """The URL without its password (safe for logs and endpoints)."""
        user = f"{self.credentials[0]}:***@" if self.credentials else ""
        return f"zk://{user}{self.hosts}{self.path}"


def parse_zk_url(value: str, flag: str = "--zk") -> ZkUrl:
    """Parse ``value`` (see the module docstring); :class:`ZkUrlError` names ``flag``."""
    text = value.strip()
    if text.startswith("file://"):
        path = Path(text.removeprefix("file://"))
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise ZkUrlError(f"{flag}: cannot read {path}: {exc.strerror}") from None
        if text.startswith("file://"):
            raise ZkUrlError(f"{flag}: {path} holds another file:// URL; it must hold a zk:// URL")
        return parse_zk_url(text, f"{flag} (from {path})")
    if not text.startswith("zk://"):
        raise ZkUrlError(
            f"{flag}: expected zk://host:port[,host:port]/path or file:///path, found {text!r}"
        )
    rest = text.removeprefix("zk://")
    authority, slash, path = rest.partition("/")
    if not slash or not path.strip("/"):
        raise ZkUrlError(f"{flag}: {_masked(text)} has no znode path (e.g. zk://host:2181/mesos)")
    credentials = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if not user or not colon:
            raise ZkUrlError(f"{flag}: credentials in {_masked(text)} must be user:password@")
        credentials = (user, password)
    hosts = [h.strip() for h in authority.split(",")]
    for host in hosts:
        if not host or not _HOST.match(host):
            raise ZkUrlError(f"{flag}: {_masked(text)}: bad server {host!r} (expected host:port)")
        if host.count(":") == 1 and not 0 < int(host.rsplit(":", 1)[1]) < 65536:
            raise ZkUrlError(f"{flag}: {_masked(text)}: port of {host!r} is out of range")
    path = "/" + path.strip("/")
    if "//" in path or any(part in (".", "..") for part in path.split("/")):
        raise ZkUrlError(f"{flag}: {_masked(text)}: bad znode path {path!r}")
    return ZkUrl(",".join(hosts), path, credentials)


def _masked(url: str) -> str:
    """``url`` with any password replaced, for error messages."""
    return re.sub(r"(zk://[^:/@]+:)[^@/]*@", r"\1***@", url)


def connect(url: ZkUrl, session_timeout: float, purpose: str) -> Any:
    """A started kazoo client for ``url``.

    Waits at most ``session_timeout`` seconds (at least 1) for a server while
    kazoo retries every server in the list, then gives up with
    :class:`ZooKeeperUnreachable` naming ``purpose`` (a flag) and the servers.
    """
    from kazoo.client import KazooClient
    from kazoo.handlers.threading import KazooTimeoutError

    auth = None
    if url.credentials is not None:
        auth = [("digest", f"{url.credentials[0]}:{url.credentials[1]}")]
    client = KazooClient(hosts=url.hosts, timeout=session_timeout, auth_data=auth)
    wait = max(1.0, session_timeout)
    try:
        client.start(timeout=wait)
    except KazooTimeoutError:
        client.stop()
        client.close()
        raise ZooKeeperUnreachable(
            f"{purpose}: no ZooKeeper server of {url} answered within {wait:g} s "
            f"(servers tried: {url.hosts}); is ZooKeeper running there?"
        ) from None
    return client


def release(client: Any, listener: Callable[[str], None], own: bool) -> None:
    """Stop ``listener`` hearing ``client``'s session events; close the client if ``own``."""
    client.remove_listener(listener)
    if own:
        client.stop()
        client.close()


def ip_number(ip: str) -> int:
    """An IPv4 address as Mesos writes MasterInfo.ip: the in_addr's bytes (network order)
    read as a little-endian uint32 (127.0.0.1 -> 16777343)."""
    try:
        return int.from_bytes(socket.inet_aton(ip), "little")
    except OSError:
        return 0


def master_info(master_id: str, ip: str, port: int, hostname: str, version: str) -> dict[str, Any]:
    """Mesos' MasterInfo as the JSON its masters publish in ZooKeeper."""
    return {
        "id": master_id,
        "ip": ip_number(ip),
        "port": port,
        "pid": f"master@{ip}:{port}",
        "hostname": hostname,
        "version": version,
        "address": {"ip": ip, "hostname": hostname, "port": port},
    }


def sequence(name: str) -> int | None:
    """The sequence number of a ``json.info_`` child; None for any other child."""
    match = _SEQUENCE.match(name)
    return int(match.group(1)) if match else None


def leading_node(children: Iterable[str]) -> str | None:
    """The child that leads: the ``json.info_`` node with the lowest sequence number."""
    numbered = [(n, c) for c in children if (n := sequence(c)) is not None]
    return min(numbered)[1] if numbered else None


class Versioned(Generic[T]):
    """A value with a generation, bumped on every change, that threads wait on."""

    def __init__(self, value: T) -> None:
        self._condition = threading.Condition()
        self._value = value
        self._generation = 1

    def set(self, value: T, changed: Callable[[T, T], bool] | None = None) -> bool:
        """Store ``value``; a new generation when it differs (by ``changed``, else !=)."""
        with self._condition:
            differs = changed(self._value, value) if changed else self._value != value
            if not differs:
                return False
            self._value = value
            self._generation += 1
            self._condition.notify_all()
            return True

    def get(self) -> tuple[int, T]:
        """(generation, value) now."""
        with self._condition:
            return self._generation, self._value

    def wait(self, known: int, timeout: float) -> tuple[int, T]:
        """(generation, value) once the generation differs from ``known``, or after
        ``timeout`` seconds (then possibly unchanged)."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._condition:
            while self._generation == known:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
            return self._generation, self._value
