"""Simulated agents and in-process frameworks: the master without sockets or processes.

A :class:`SimulatedAgent` runs no processes: a launched task goes
TASK_STARTING -> TASK_RUNNING at once and TASK_FINISHED after the number of
seconds in its ``pmm.duration`` label (never, without one), and a kill makes
it TASK_KILLED.  The simulator, the benchmark and tests use it; real agents
speak to the master over HTTP.

An :class:`InProcessFramework` subscribes through the same code path as the
HTTP API and collects the same events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pymesos_modules.master.master import Master
from pymesos_modules.master.state import Framework

logger = logging.getLogger(__name__)

DURATION_LABEL = "pmm.duration"


def task_duration(task: dict[str, Any]) -> float | None:
    """The simulated run time of a task, from its ``pmm.duration`` label."""
    for label in (task.get("labels") or {}).get("labels", []):
        if label.get("key") == DURATION_LABEL:
            try:
                return float(label.get("value"))
            except (TypeError, ValueError):
                return None
    return None


class SimulatedAgent:
    """An agent backend whose tasks only exist as state changes (see module docstring)."""

    def __init__(
        self,
        master: Master,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        self.master = master
        self.agent_id = ""
        self.running: dict[str, str] = {}  # task id -> framework id
        self.messages: list[tuple[str, str, bytes]] = []
        self._call_later = call_later or self._loop_call_later
        self._timers: dict[str, Any] = {}
        #: tasks launched since the last start: (framework id, TaskInfo)
        self._starting: list[tuple[str, dict[str, Any]]] = []

    @staticmethod
    def _loop_call_later(delay: float, callback: Callable[[], None]) -> Any:
        return asyncio.get_running_loop().call_later(delay, callback)

    def _status(self, framework_id: str, task_id: str, state: str, message: str = "") -> None:
        if state not in ("TASK_STARTING", "TASK_RUNNING"):
            self.running.pop(task_id, None)
            timer = self._timers.pop(task_id, None)
            if timer is not None and hasattr(timer, "cancel"):
                timer.cancel()
        self.master.status_update(
            self.agent_id,
            framework_id,
            {"task_id": {"value": task_id}, "state": state, "message": message},
        )

    def run_task(self, framework_id: str, task: dict[str, Any]) -> None:
        """Start a simulated task (with the others launched at the same moment)."""
        self.running[task["task_id"]["value"]] = framework_id
        # One timer for every task launched before it fires (an ACCEPT launches many),
        # not one each: the tasks start in the order they were launched either way.
        self._starting.append((framework_id, task))
        if len(self._starting) == 1:
            self._call_later(0.0, self._start_launched)

    def _start_launched(self) -> None:
        starting, self._starting = self._starting, []
        for framework_id, task in starting:
            self._start(framework_id, task)

    def _start(self, framework_id: str, task: dict[str, Any]) -> None:
        task_id = task["task_id"]["value"]
        if task_id not in self.running:  # killed before it started
            return
        self._status(framework_id, task_id, "TASK_STARTING")
        self._status(framework_id, task_id, "TASK_RUNNING")
        duration = task_duration(task)
        if duration is not None:
            self._timers[task_id] = self._call_later(
                duration,
                lambda: self._status(
                    framework_id, task_id, "TASK_FINISHED", "simulated task finished"
                ),
            )

    def kill_task(self, framework_id: str, task_id: str) -> None:
        """Kill a simulated task."""
        if task_id in self.running:
            self._call_later(
                0.0,
                lambda: self._status(
                    framework_id, task_id, "TASK_KILLED", "killed by the framework"
                ),
            )

    def message(self, framework_id: str, executor_id: str, data: bytes) -> None:
        """Keep framework messages (there is no executor to hand them to)."""
        self.messages.append((framework_id, executor_id, data))


class InProcessFramework:
    """A framework living in the master's process: same calls, same events, no sockets."""

    def __init__(self, master: Master, info: dict[str, Any]) -> None:
        self.master = master
        self.info = info
        self.events: list[dict[str, Any]] = []
        self.framework: Framework | None = None
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self.closed = False

    def send(self, event: dict[str, Any]) -> None:
        """Receive an event from the master."""
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def close(self) -> None:
        """The master closed the subscription."""
        self.closed = True

    def subscribe(self) -> str:
        """SUBSCRIBE; returns the framework id."""
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self.info}}
        if self.framework is not None:
            call["framework_id"] = {"value": self.framework.framework_id}
        self.framework = self.master.subscribe(call, self)
        return self.framework.framework_id

    def call(self, call: dict[str, Any]) -> None:
        """Send a non-SUBSCRIBE call."""
        assert self.framework is not None, "subscribe first"
        call = {"framework_id": {"value": self.framework.framework_id}, **call}
        self.master.call(self.master.framework_for_call(call, None), call)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Events received so far of one type."""
        return [e for e in self.events if e.get("type") == kind]
