"""Which master the agent talks to: ``--master=HOST:PORT``, or the leader a detector finds.

``--master=zk://host:port[,host:port]/path`` (or ``file://`` to a file holding
it, as Mesos) makes the agent follow the leading master through the
``zookeeper`` master detector: every change of leader ends the current
connection at once and the agent re-registers with the new leader (Mesos'
agent does the same on every ``detected()``).  No leader: the agent waits,
its tasks keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pymesos_modules.kinds.master_detector import (
    Detection,
    Follower,
    MasterDetector,
    detector_for_master,
    leader_url,
)

logger = logging.getLogger(__name__)


def follows_zookeeper(master: str) -> bool:
    """True when ``--master`` names ZooKeeper rather than one master."""
    return master.startswith(("zk://", "file://"))


class LeaderLink:
    """The leading master's URL, kept current by a detector (see module docstring)."""

    def __init__(self, master: str, session_timeout: float, fixed_url: str | None) -> None:
        self.master = master
        self.session_timeout = session_timeout
        #: the leader's base URL; None while no master leads (or before detection)
        self.url: str | None = fixed_url
        #: bumped at every change of leader
        self.changes = 0
        self._changed = asyncio.Event()
        self._detector: MasterDetector | None = None
        self._follower: Follower | None = None
        self._on_change: list[Any] = []

    async def start(self, on_change: Any) -> None:
        """Connect the detector (ZooKeeper only) and follow it; ``on_change()`` runs at
        every new leader.  Raises ZooKeeperError naming ``--master`` when ZooKeeper is
        unreachable or the URL does not parse."""
        if not follows_zookeeper(self.master):
            return
        self._on_change.append(on_change)
        self._detector = await asyncio.to_thread(
            detector_for_master, self.master, self.session_timeout
        )
        self._follower = Follower(self._detector.detect, self._detected, "agent-detector")

    def _detected(self, detection: Detection) -> None:
        url = leader_url(detection.leader) if detection.leader is not None else None
        if url == self.url:
            return
        logger.info("the leading master is now %s", url or "none (waiting for one)")
        self.url = url
        self.changes += 1
        self._changed.set()
        for callback in self._on_change:
            callback()

    async def wait_for_leader(self) -> str:
        """The leader's URL, waiting while there is none."""
        while self.url is None:
            self._changed.clear()
            await self._changed.wait()
        return self.url

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the leader changes meanwhile."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def stop(self) -> None:
        """Stop following and close the detector."""
        if self._follower is not None:
            self._follower.stop()
        if self._detector is not None:
            await asyncio.to_thread(self._detector.close)
