"""The master_detector kind: who leads now, and every change.

As Mesos' MasterDetector modules: :meth:`MasterDetector.detect` answers the
leading master's MasterInfo (JSON as ``master_detector.h`` describes) or None,
and waits for a change when asked with the generation last seen.  Built in
(``--master_detector``):

- :class:`StandaloneDetector` (``standalone``): a leader appointed by hand
  (an agent's ``--master=HOST:PORT``, a single master itself).
- :class:`ZooKeeperDetector` (``zookeeper``): reads the lowest ``json.info_``
  znode under ``--zk`` as Mesos' and pymesos' detectors do.  A dropped
  connection keeps the last leader (the session may well survive, as Mesos'
  detector does); an expired session means no leader until it reconnects.

:func:`detector_for_master` turns an agent's ``--master`` into a detector, and
:func:`leader_url` a MasterInfo into the URL to talk to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pymesos_modules.abi import ElectionCalls, NativeCallError
from pymesos_modules.kinds.base import NativeModule, native_json, register_kind
from pymesos_modules.zookeeper import (
    Versioned,
    ZkUrl,
    ZooKeeperError,
    connect,
    leading_node,
    parse_zk_url,
    release,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """The leader at ``generation`` (which grows by one at every change); None: no leader."""

    generation: int
    leader: dict[str, Any] | None


@runtime_checkable
class MasterDetector(Protocol):
    """A master_detector module."""

    def detect(self, known: int, timeout: float) -> Detection:
        """The leader once the generation differs from ``known``, or after ``timeout`` s."""

    def close(self) -> None:
        """Release whatever the module holds."""


def check_master_info(info: Any, where: str) -> dict[str, Any]:
    """``info`` if it is a MasterInfo we can reach (``address`` with a host and a port)."""
    address = info.get("address") if isinstance(info, dict) else None
    if not isinstance(address, dict):
        raise ValueError(f"{where}: MasterInfo {info!r} has no 'address' object")
    host = address.get("ip") or address.get("hostname")
    port = address.get("port")
    if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(
            f"{where}: MasterInfo address {address!r} needs 'ip' or 'hostname' and a 'port'"
        )
    return info


def leader_url(info: Mapping[str, Any]) -> str:
    """The base URL of the master ``info`` describes (its address' IP, else hostname)."""
    address = info["address"]
    return f"http://{address.get('ip') or address['hostname']}:{address['port']}"


class StandaloneDetector:
    """A leader appointed by hand (None: no leader yet)."""

    kind = "master_detector"

    def __init__(self, leader: Mapping[str, Any] | None = None) -> None:
        self._leader: Versioned[dict[str, Any] | None] = Versioned(
            dict(leader) if leader is not None else None
        )

    def appoint(self, leader: Mapping[str, Any] | None) -> None:
        """Make ``leader`` the detected master (None: no leader)."""
        self._leader.set(dict(leader) if leader is not None else None)

    def detect(self, known: int, timeout: float) -> Detection:
        """See :meth:`MasterDetector.detect`."""
        return Detection(*self._leader.wait(known, timeout))

    def close(self) -> None:
        """Nothing to release."""


class ZooKeeperDetector:
    """Follows the lowest ``json.info_`` child of ``url.path`` (other children are ignored)."""

    kind = "master_detector"

    def __init__(self, url: ZkUrl, session_timeout: float, client: Any = None) -> None:
        from kazoo.recipe.watchers import ChildrenWatch

        self.url = url
        self._own_client = client is None
        self._client = client or connect(url, session_timeout, "--master_detector=zookeeper")
        #: (znode name, MasterInfo) of the leader; a new znode is a new leader
        self._leader: Versioned[tuple[str | None, dict[str, Any] | None]] = Versioned((None, None))
        self._closed = False
        self._client.add_listener(self._on_connection)
        # The path may not exist before the first master contends; waiting on it is fine.
        self._client.ensure_path(url.path)
        ChildrenWatch(self._client, url.path, self._on_children)

    def _on_children(self, children: list[str]) -> bool:
        """A new list of contenders: read the leader's MasterInfo if the leader changed."""
        if self._closed:
            return False
        node = leading_node(children)
        if node == self._leader.get()[1][0]:
            return True
        info = None
        if node is not None:
            info = self._read(node)
            if info is None:
                node = None
        self._leader.set((node, info), lambda old, new: old[0] != new[0])
        return True

    def _read(self, node: str) -> dict[str, Any] | None:
        """The MasterInfo in ``node``; None when it is gone or unreadable (logged)."""
        from kazoo.exceptions import NoNodeError

        try:
            data, _ = self._client.get(f"{self.url.path}/{node}")
        except NoNodeError:
            return None  # it went away already: the next children event tells who leads
        try:
            return check_master_info(json.loads(data), f"{self.url}/{node}")
        except (ValueError, UnicodeDecodeError) as exc:
            logger.error(
                "ignoring the leader znode %s/%s: not MasterInfo JSON: %s", self.url, node, exc
            )
            return None

    def _on_connection(self, state: str) -> None:
        """kazoo's session events (on kazoo's thread; must not block)."""
        from kazoo.protocol.states import KazooState

        if state == KazooState.LOST:
            self._leader.set((None, None), lambda old, new: old[0] != new[0])
        elif state == KazooState.CONNECTED and not self._closed:
            self._client.handler.spawn(self._recheck)

    def _recheck(self) -> None:
        try:
            self._on_children(self._client.get_children(self.url.path))
        except Exception as exc:  # dropped again: the next event decides
            logger.info("cannot re-read the masters under %s: %s", self.url, exc)

    def detect(self, known: int, timeout: float) -> Detection:
        """See :meth:`MasterDetector.detect`."""
        generation, (_, info) = self._leader.wait(known, timeout)
        return Detection(generation, info)

    def close(self) -> None:
        """Stop watching; close our ZooKeeper session."""
        self._closed = True
        release(self._client, self._on_connection, self._own_client)


class NativeMasterDetector(NativeModule):
    """A native master_detector (``pmm_master_detector_vtable``)."""

    kind = "master_detector"

    def __init__(self, instance: Any) -> None:
        super().__init__(instance)
        self._calls = ElectionCalls(instance)

    def detect(self, known: int, timeout: float) -> Detection:
        """pmm_master_detector_vtable.detect; the answer is checked (see the header)."""
        generation, text = self._calls.detect(known, timeout)
        info = native_json(self.name, "detect", text, dict)
        if info is not None:
            try:
                check_master_info(info, f"module '{self.name}': detect()")
            except ValueError as exc:
                raise NativeCallError(self.name, "detect", 2, str(exc)) from None
        return Detection(generation, info)


def detector_for_master(master: str, session_timeout: float) -> MasterDetector:
    """An agent's ``--master``: ``zk://``/``file://`` -> ZooKeeper, ``HOST:PORT`` -> standalone.

    Raises :class:`ZooKeeperError` (a ValueError) naming ``--master`` when it does not
    parse or ZooKeeper cannot be reached.
    """
    if master.startswith(("zk://", "file://")):
        return ZooKeeperDetector(parse_zk_url(master, "--master"), session_timeout)
    url = master if master.startswith(("http://", "https://")) else f"http://{master}"
    host, _, port = url.split("://", 1)[1].split("/", 1)[0].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ZooKeeperError(
            f"--master={master}: expected HOST:PORT (e.g. 127.0.0.1:5050) or zk://host:port/path"
        )
    return StandaloneDetector({"address": {"ip": host, "hostname": host, "port": int(port)}})


class Follower:
    """Follows a waiting call (a detector's ``detect``, a contender's ``watch``) on a
    thread of its own and hands every new answer to ``on_change`` on the event loop.

    A thread, not the loop's default executor: the waits would hold its few
    workers (the master's allocation cycles run there).  ``stop()`` ends it
    within one ``poll`` interval.  A failing call is logged and retried after
    ``poll`` seconds (a module in trouble must not kill the agent or master).
    ``known`` is the generation the caller has already handled.
    """

    def __init__(
        self,
        wait: Callable[[int, float], Any],
        on_change: Callable[[Any], None],
        name: str,
        poll: float = 0.5,
        known: int = 0,
    ) -> None:
        self._known = known
        self._wait = wait
        self._on_change = on_change
        self._poll = poll
        self._stopping = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        known = self._known
        while not self._stopping.is_set():
            try:
                answer = self._wait(known, self._poll)
            except Exception:
                logger.exception("%s failed; retrying", self._thread.name)
                self._stopping.wait(self._poll)
                continue
            if answer.generation != known and not self._stopping.is_set():
                known = answer.generation
                try:
                    self._loop.call_soon_threadsafe(self._on_change, answer)
                except RuntimeError:  # the loop is closed: nobody is listening any more
                    return

    def stop(self) -> None:
        """Stop following (no call of ``on_change`` starts after this returns... once the
        thread has seen the flag; callbacks already queued on the loop still run)."""
        self._stopping.set()


register_kind("master_detector", NativeMasterDetector, MasterDetector)
