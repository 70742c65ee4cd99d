"""The agent's status update manager: every update reaches the master, in order, at least once.

As Mesos' TaskStatusUpdateManager: each update gets a uuid; per task only the
oldest unacknowledged update is in flight, resent with backoff (Mesos: 10 s
doubling to 10 min) until the master forwards the framework's acknowledgement
(ACKNOWLEDGED on the agent's stream); then the task's next update goes out.
While the master is away nothing is sent and nothing is dropped; after
(re-)registration every stream's head is sent at once.

Each task's stream is also a log of records, ``{"type": "UPDATE", "status"}``
and ``{"type": "ACK", "uuid"}`` in the order they happened (Mesos'
StatusUpdateRecord); the ``checkpoint`` callback gets each new record, to
append where it survives the agent, before the update can go out, so an agent
that restarts recovers its unacknowledged updates
(:meth:`~StatusUpdateManager.recover`), in order and with their uuids.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: Mesos' STATUS_UPDATE_RETRY_INTERVAL_MIN / _MAX.
RETRY_BASE = 10.0
RETRY_MAX = 600.0

Sender = Callable[[str, dict[str, Any]], Awaitable[None]]
#: (framework id, task id, the stream's new record) -> why it could not be written (None: it
#: was); appends it to the stream's checkpoint, where it survives a restart
Checkpointer = Callable[[str, str, dict[str, Any]], str | None]


def new_uuid() -> str:
    """A status update uuid: 16 random bytes, base64 as in the v1 JSON mapping."""
    return base64.b64encode(uuid.uuid4().bytes).decode()


@dataclass
class PendingUpdate:
    """One update waiting for its acknowledgement."""

    framework_id: str
    status: dict[str, Any]
    #: seconds until the next resend once this one is sent
    interval: float
    #: loop time of the next send (0: as soon as connected)
    due: float = 0.0
    sends: int = 0
    #: the timer that makes it due again, once sent
    timer: asyncio.TimerHandle | None = None

    def settle(self) -> None:
        """No more resends (acknowledged or forgotten)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    @property
    def uuid(self) -> str:
        """The update's uuid."""
        return str(self.status["uuid"])


class StatusUpdateManager:
    """Per-task queues of unacknowledged updates and the loop that (re)sends their heads."""

    def __init__(
        self,
        send: Sender,
        retry_base: float = RETRY_BASE,
        retry_max: float = RETRY_MAX,
        checkpoint: Checkpointer | None = None,
    ) -> None:
        self._send = send
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._checkpoint = checkpoint
        self._streams: dict[tuple[str, str], deque[PendingUpdate]] = {}
        #: every task's records until the task is forgotten (what the checkpoint holds)
        self._logs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._wake = asyncio.Event()
        #: streams whose head may be due now: the sending loop looks at these only, so an
        #: agent with many tasks in flight does not scan them all on every update
        self._ready: deque[tuple[str, str]] = deque()
        self._connected = False
        self._task: asyncio.Task | None = None
        #: sends on their way to the master
        self._sending: set[asyncio.Task] = set()
        self._stopping = False
        #: updates sent again after their first send (a metric)
        self.retries = 0

    # --- feeding ------------------------------------------------------------------------

    def add(self, framework_id: str, status: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (a uuid and timestamp are added if missing); returns the status."""
        status = dict(status)
        status.setdefault("uuid", new_uuid())
        status.setdefault("timestamp", time.time())
        key = (framework_id, status["task_id"]["value"])
        problem = self._record(key, {"type": "UPDATE", "status": status})
        if problem is not None:
            # The update still goes out; the framework learns what it cannot count on.
            note = (
                f"this update could not be checkpointed on the agent ({problem}), so an "
                f"agent restarted before it is acknowledged will not send it again"
            )
            status["message"] = f"{status['message']}; {note}" if status.get("message") else note
        queue = self._streams.setdefault(key, deque())
        queue.append(PendingUpdate(framework_id, status, self.retry_base))
        if len(queue) == 1:
            self._due(key)
        return status

    def recover(
        self,
        framework_id: str,
        task_id: str,
        records: list[dict[str, Any]],
        pending: list[dict[str, Any]],
    ) -> None:
        """Take over a stream a previous agent checkpointed: its log and its unacknowledged
        ``pending`` statuses, which go out in order (with their uuids) once connected."""
        key = (framework_id, task_id)
        self._logs[key] = list(records)
        if pending:
            self._streams[key] = deque(
                PendingUpdate(framework_id, s, self.retry_base) for s in pending
            )
            self._due(key)

    def _record(self, key: tuple[str, str], record: dict[str, Any]) -> str | None:
        """Log a record and checkpoint the stream; why the checkpoint failed, if it did."""
        log = self._logs.setdefault(key, [])
        log.append(record)
        if self._checkpoint is not None:
            return self._checkpoint(key[0], key[1], record)
        return None

    def acknowledge(self, framework_id: str, task_id: str, ack: str) -> dict[str, Any] | None:
        """The master says the framework acknowledged ``ack``; the acked status, or None."""
        queue = self._streams.get((framework_id, task_id))
        if not queue or queue[0].uuid != ack:
            logger.info(
                "ignoring acknowledgement %s of task %s (framework %s): not the update in flight",
                ack,
                task_id,
                framework_id,
            )
            return None
        self._record((framework_id, task_id), {"type": "ACK", "uuid": ack})
        done = queue.popleft()
        done.settle()
        if queue:
            queue[0].due = 0.0
            self._due((framework_id, task_id))
        else:
            del self._streams[(framework_id, task_id)]
        return done.status

    def _due(self, key: tuple[str, str]) -> None:
        """The stream's head may be sent now."""
        self._ready.append(key)
        self._wake.set()

    def forget_task(self, framework_id: str, task_id: str) -> None:
        """Drop a task's stream and log (the agent forgot the task)."""
        for pending in self._streams.pop((framework_id, task_id), ()):
            pending.settle()
        self._logs.pop((framework_id, task_id), None)

    def forget_framework(self, framework_id: str) -> None:
        """Drop every pending update of a framework (the master removed it)."""
        for key in [k for k in self._logs if k[0] == framework_id]:
            self.forget_task(*key)

    def clear(self) -> None:
        """Drop everything (the master removed this agent)."""
        for queue in self._streams.values():
            for pending in queue:
                pending.settle()
        self._streams.clear()
        self._logs.clear()

    def set_connected(self, connected: bool) -> None:
        """Registered (send every head now) or lost the master (hold everything)."""
        self._connected = connected
        if connected:
            for key, queue in self._streams.items():
                queue[0].due = 0.0
                self._ready.append(key)
            self._wake.set()

    # --- views ------------------------------------------------------------------------------

    def pending(self, framework_id: str | None = None, task_id: str | None = None) -> int:
        """How many updates wait for acknowledgement (of one task, if given)."""
        if framework_id is not None and task_id is not None:
            return len(self._streams.get((framework_id, task_id), ()))
        return sum(
            len(q)
            for (f, t), q in self._streams.items()
            if (framework_id is None or f == framework_id) and (task_id is None or t == task_id)
        )

    def known(self, framework_id: str, task_id: str, uuid: str) -> bool:
        """An update with this uuid was added for the task already (a resent one)."""
        log = self._logs.get((framework_id, task_id), ())
        return any(r["type"] == "UPDATE" and r["status"]["uuid"] == uuid for r in log)

    def unacknowledged(self, framework_id: str, task_id: str) -> list[dict[str, Any]]:
        """The pending statuses of a task, oldest first."""
        return [p.status for p in self._streams.get((framework_id, task_id), ())]

    # --- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sending loop on the running event loop."""
        self._task = asyncio.create_task(self._run(), name="status-update-manager")

    async def stop(self) -> None:
        """Stop the sending loop (pending updates stay where the checkpoint put them)."""
        # A flag as well as cancel(): Python 3.11's wait_for can swallow a cancel.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if not self._connected:
                self._ready.clear()  # registering marks every stream due again
                continue
            now = loop.time()
            while self._ready:
                queue = self._streams.get(self._ready.popleft())
                # A head already sent is due again only when its timer says so.
                if queue and queue[0].due <= now:
                    # Not awaited here: one stream's round trip to the master must not
                    # hold the others' (only a stream's head is ever in flight).
                    self._spawn(self._send_head(queue[0], now))

    def _spawn(self, send: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(send)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_head(self, head: PendingUpdate, now: float) -> None:
        if head.sends:
            self.retries += 1
        head.sends += 1
        head.due = now + head.interval
        head.interval = min(head.interval * 2, self.retry_max)
        key = (head.framework_id, head.status["task_id"]["value"])
        head.settle()  # a resend came early (a new registration): one timer at a time
        head.timer = asyncio.get_running_loop().call_at(head.due, self._due, key)
        try:
            await self._send(head.framework_id, head.status)
        except Exception as exc:  # the master went away; the next registration resends it
            logger.info(
                "could not send %s of task %s: %s",
                head.status.get("state"),
                head.status["task_id"]["value"],
                exc,
            )
