"""Leadership: whether this master leads, who does, and what happens when that changes.

The master contends through its contender (``--master_contender``) and learns
the leader from its detector (``--master_detector``), as a Mesos master does.

- Until elected, a master is a standby: it does not allocate and takes no
  scheduler or agent calls (the HTTP layer answers them with 307 and the
  leader's ``Location``, or 503 while no master leads).
- Elected: ``on_elected`` recovers the registry and starts the allocation
  loop; only when it has returned does the gate open (``elected``,
  ``elected_time``).  If it fails (an unreadable registry) the master stands
  down: :attr:`deposed` is set and another master can lead.
- A leader that stops being elected (its ZooKeeper connection dropped, its
  session expired, it withdrew) stops leading at once: the gate closes before
  anything else runs, ``on_deposed`` closes every stream and stops the
  allocation loop, and :attr:`deposed` is set.  It never leads again: its
  in-memory state may be stale once another master has led (Mesos' master
  exits for the same reason); ``pymesos-modules master`` exits with status 1
  and a supervisor restarts it as a fresh standby.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymesos_modules.kinds.master_contender import Candidacy, MasterContender
from pymesos_modules.kinds.master_detector import Detection, Follower, MasterDetector

logger = logging.getLogger(__name__)


class Leadership:
    """This master's standing in the election (see module docstring)."""

    def __init__(
        self,
        contender: MasterContender,
        detector: MasterDetector,
        info: dict[str, Any],
    ) -> None:
        self.contender = contender
        self.detector = detector
        #: this master's MasterInfo, as published
        self.info = info
        self.elected = False
        #: when this master was elected (seconds since the epoch); None while standby
        self.elected_time: float | None = None
        #: the leading master's MasterInfo as detected (None: no leader known)
        self.leader: dict[str, Any] | None = None
        #: set once this master led and then stopped leading
        self.deposed = asyncio.Event()
        self._followers: list[Follower] = []
        self._on_elected: Callable[[], Awaitable[None]] | None = None
        self._on_deposed: Callable[[], Awaitable[None]] | None = None
        self._tasks: set[asyncio.Task] = set()
        #: won the election (taking calls once on_elected has returned)
        self._leading = False

    async def start(
        self,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
    ) -> None:
        """Contend, then follow the contender and the detector."""
        self._on_elected, self._on_deposed = on_elected, on_deposed
        await asyncio.to_thread(self.contender.contend, self.info)
        # A contender that decides at once (standalone) leads before start() returns,
        # so a single master serves as soon as it is started, as before elections.
        first = await asyncio.to_thread(self.contender.watch, 0, 0.0)
        if first.elected:
            self._leading = True
            await on_elected()  # an error here fails the start, as before elections
            self._open()
        self._followers = [
            Follower(
                self.contender.watch, self._candidacy, "master-contender", known=first.generation
            ),
            Follower(self.detector.detect, self._detected, "master-detector"),
        ]

    def _open(self) -> None:
        """Take calls from now on (unless deposed while getting ready)."""
        if self._leading and not self.deposed.is_set():
            self.elected, self.elected_time, self.leader = True, time.time(), self.info
            logger.info("elected the leading master")

    async def _become_leader(self) -> None:
        assert self._on_elected is not None
        try:
            await self._on_elected()
        except Exception:
            logger.exception("could not take up leadership; standing down")
            self._leading = False
            self.deposed.set()
            return
        self._open()

    def _background(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _candidacy(self, candidacy: Candidacy) -> None:
        """A change of the contender's state (on the event loop)."""
        if candidacy.elected and not self._leading and not self.deposed.is_set():
            logger.info("won the election; recovering before taking calls")
            self._leading = True
            self._background(self._become_leader())
        elif not candidacy.elected and self._leading:
            # Stop leading before anything else runs on the loop: from here on no
            # call is taken and no offer is made.
            logger.error(
                "no longer the leading master (contender: %s); stopping leading", candidacy.state
            )
            self.elected = self._leading = False
            self.elected_time = None
            self.deposed.set()
            if self._on_deposed is not None:
                self._background(self._on_deposed())
        elif candidacy.state == "lost" and not self.deposed.is_set():
            logger.error("left the leader election (contender lost its candidacy)")
            self.deposed.set()

    def _detected(self, detection: Detection) -> None:
        """A change of leader as the detector sees it (on the event loop)."""
        if self.elected:
            return  # we lead: our own contender is the authority
        self.leader = detection.leader
        where = detection.leader.get("address") if detection.leader else None
        logger.info("the leading master is now %s", where or "none")

    def is_self(self, info: dict[str, Any] | None) -> bool:
        """True when ``info`` describes this master."""
        return info is not None and info.get("id") == self.info.get("id")

    async def stop(self) -> None:
        """Stop following and withdraw from the election (the owner closes the modules)."""
        self.elected = self._leading = False
        for follower in self._followers:
            follower.stop()
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
        try:
            await asyncio.to_thread(self.contender.withdraw)
        except Exception:
            logger.exception("the master contender failed to withdraw")

    def decorate_state(self, state: dict[str, Any]) -> None:
        """``/state``: ``leader_info`` (and ``leader``, the pid), ``elected_time`` only
        while elected (Mesos' shape)."""
        state.pop("elected_time", None)
        if self.elected and self.elected_time is not None:
            state["elected_time"] = self.elected_time
        if self.leader is not None:
            state["leader_info"] = self.leader
            if "pid" in self.leader:
                state["leader"] = self.leader["pid"]
        else:
            state.pop("leader_info", None)
            state.pop("leader", None)
