"""The master_contender kind: this master enters the leader election and learns the outcome.

As Mesos' MasterContender modules: :meth:`MasterContender.contend` once with
this master's MasterInfo (JSON, see ``master_contender.h``), then
:meth:`MasterContender.watch` reports every change of state: ``standby`` (in
the election, not leading, or cannot tell right now), ``elected``, ``lost``
(the candidacy ended for good).  Built in (``--master_contender``):

- :class:`StandaloneContender` (``standalone``): elected at once, as a single
  Mesos master is.
- :class:`ZooKeeperContender` (``zookeeper``): Mesos' znode layout on kazoo
  (``--zk``); see :mod:`pymesos_modules.zookeeper`.  It reads ``standby`` as
  soon as its ZooKeeper connection drops, because from then on ZooKeeper may
  expire the session and elect another master without this one hearing of it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pymesos_modules.abi import ElectionCalls
from pymesos_modules.kinds.base import NativeModule, register_kind
from pymesos_modules.zookeeper import (
    INFO_PREFIX,
    Versioned,
    ZkUrl,
    connect,
    leading_node,
    release,
)

logger = logging.getLogger(__name__)

STANDBY = "standby"
ELECTED = "elected"
LOST = "lost"


@dataclass(frozen=True)
class Candidacy:
    """The contender's state at ``generation`` (which grows by one at every change)."""

    generation: int
    state: str

    @property
    def elected(self) -> bool:
        """This master leads."""
        return self.state == ELECTED


@runtime_checkable
class MasterContender(Protocol):
    """A master_contender module."""

    def contend(self, master_info: Mapping[str, Any]) -> None:
        """Enter the election as the master described by ``master_info`` (once)."""

    def watch(self, known: int, timeout: float) -> Candidacy:
        """The state once its generation differs from ``known``, or after ``timeout`` s."""

    def withdraw(self) -> None:
        """Leave the election (idempotent); the state becomes ``lost``."""

    def close(self) -> None:
        """Withdraw and release whatever the module holds."""


def _not_after_lost(old: str, new: str) -> bool:
    """A lost candidacy never comes back: later news must not overwrite it."""
    return old != LOST and old != new


class StandaloneContender:
    """Always elected once it contends: one master, no election (Mesos' standalone)."""

    kind = "master_contender"

    def __init__(self) -> None:
        self._state: Versioned[str] = Versioned(STANDBY)

    def contend(self, master_info: Mapping[str, Any]) -> None:
        """Elected at once."""
        self._state.set(ELECTED, _not_after_lost)

    def watch(self, known: int, timeout: float) -> Candidacy:
        """See :meth:`MasterContender.watch`."""
        return Candidacy(*self._state.wait(known, timeout))

    def withdraw(self) -> None:
        """Lost."""
        self._state.set(LOST, _not_after_lost)

    def close(self) -> None:
        """Withdraw."""
        self.withdraw()


class ZooKeeperContender:
    """Contends through an ephemeral sequential ``json.info_`` znode under ``url.path``.

    Not kazoo's Election or Lock recipes: their node names do not sort by
    sequence the way Mesos' and pymesos' detectors read them.
    """

    kind = "master_contender"

    def __init__(self, url: ZkUrl, session_timeout: float, client: Any = None) -> None:
        self.url = url
        self._own_client = client is None
        self._client = client or connect(url, session_timeout, "--master_contender=zookeeper")
        self._state: Versioned[str] = Versioned(STANDBY)
        self._node: str | None = None
        self._lock = threading.Lock()
        self._client.add_listener(self._on_connection)

    @property
    def node(self) -> str | None:
        """The name of this master's znode (``json.info_0000000003``), once contending."""
        return self._node

    def contend(self, master_info: Mapping[str, Any]) -> None:
        """Publish ``master_info`` and follow the children of the path."""
        from kazoo.recipe.watchers import ChildrenWatch

        with self._lock:
            if self._node is not None:
                raise RuntimeError("contend() was already called on this contender")
            self._client.ensure_path(self.url.path)
            created = self._client.create(
                f"{self.url.path}/{INFO_PREFIX}",
                json.dumps(dict(master_info)).encode(),
                ephemeral=True,
                sequence=True,
            )
            self._node = created.rsplit("/", 1)[1]
        logger.info("contending for leadership as %s%s", self.url, f"/{self._node}")
        ChildrenWatch(self._client, self.url.path, self._on_children)

    def _on_children(self, children: list[str]) -> bool:
        """A new list of contenders: lead when ours is the lowest ``json.info_``."""
        node = self._node
        if node is None or self._state.get()[1] == LOST:
            return False  # stop watching
        if node not in children:
            # Our ephemeral node is gone: the session expired (or someone deleted it).
            self._state.set(LOST, _not_after_lost)
            return False
        self._state.set(ELECTED if leading_node(children) == node else STANDBY, _not_after_lost)
        return True

    def _on_connection(self, state: str) -> None:
        """kazoo's session events (called on kazoo's thread; must not block)."""
        from kazoo.protocol.states import KazooState

        if state == KazooState.SUSPENDED:
            # Stop leading at once: ZooKeeper may expire the session and elect
            # another master while we cannot hear it.
            self._state.set(STANDBY, _not_after_lost)
        elif state == KazooState.LOST:
            self._state.set(LOST, _not_after_lost)
        elif state == KazooState.CONNECTED and self._node is not None:
            # The session survived: our node may still lead; ask again.
            self._client.handler.spawn(self._recheck)

    def _recheck(self) -> None:
        try:
            self._on_children(self._client.get_children(self.url.path))
        except Exception as exc:  # the connection dropped again: the next event decides
            logger.info("cannot re-read the contenders under %s: %s", self.url, exc)

    def watch(self, known: int, timeout: float) -> Candidacy:
        """See :meth:`MasterContender.watch`."""
        return Candidacy(*self._state.wait(known, timeout))

    def withdraw(self) -> None:
        """Delete our znode (when still connected) and become ``lost``."""
        self._state.set(LOST, _not_after_lost)
        with self._lock:
            node, self._node = self._node, None
        if node is not None and self._client.connected:
            # Bounded: kazoo would queue the request until a server answers, and
            # an ephemeral node goes with its session anyway.
            try:
                self._client.delete_async(f"{self.url.path}/{node}").get(timeout=2.0)
            except Exception as exc:
                logger.info("could not delete %s/%s: %s", self.url, node, exc)

    def close(self) -> None:
        """Withdraw and close our ZooKeeper session."""
        self.withdraw()
        release(self._client, self._on_connection, self._own_client)


class NativeMasterContender(NativeModule):
    """A native master_contender (``pmm_master_contender_vtable``)."""

    kind = "master_contender"

    def __init__(self, instance: Any) -> None:
        super().__init__(instance)
        self._calls = ElectionCalls(instance)
        self._withdrawn = False

    def contend(self, master_info: Mapping[str, Any]) -> None:
        """pmm_master_contender_vtable.contend."""
        self.instance.call("contend", json.dumps(dict(master_info)).encode())

    def watch(self, known: int, timeout: float) -> Candidacy:
        """pmm_master_contender_vtable.watch."""
        return Candidacy(*self._calls.watch(known, timeout))

    def withdraw(self) -> None:
        """pmm_master_contender_vtable.withdraw."""
        self._withdrawn = True
        self.instance.call("withdraw")

    def close(self) -> None:
        """Withdraw (as the header promises the module), then destroy."""
        if self.instance.alive and not self._withdrawn:
            try:
                self.withdraw()
            except Exception:
                logger.exception("master contender %r failed to withdraw", self.name)
        super().close()


register_kind("master_contender", NativeMasterContender, MasterContender)
