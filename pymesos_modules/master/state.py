"""Records the master keeps: frameworks, agents, offers, tasks, and id <-> handle maps."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymesos_modules.master.resources import Ranges, Resources

#: One piece of an offer or a task's resources: (pool, revocable, one float per resource name).
Piece = tuple[int, bool, tuple[float, ...]]


class TaskState(enum.StrEnum):
    """Mesos task states (v1 names)."""

    STAGING = "TASK_STAGING"
    STARTING = "TASK_STARTING"
    RUNNING = "TASK_RUNNING"
    KILLING = "TASK_KILLING"
    FINISHED = "TASK_FINISHED"
    FAILED = "TASK_FAILED"
    KILLED = "TASK_KILLED"
    ERROR = "TASK_ERROR"
    LOST = "TASK_LOST"
    DROPPED = "TASK_DROPPED"
    UNREACHABLE = "TASK_UNREACHABLE"
    GONE = "TASK_GONE"
    UNKNOWN = "TASK_UNKNOWN"

    @property
    def terminal(self) -> bool:
        """True for states a task never leaves."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({
    TaskState.FINISHED, TaskState.FAILED, TaskState.KILLED, TaskState.ERROR,
    TaskState.LOST, TaskState.DROPPED, TaskState.GONE,
})  # fmt: skip
#: A state by its v1 name: a dict lookup, where ``TaskState(name)`` goes through Enum's call.
TASK_STATES: dict[str, TaskState] = {state.value: state for state in TaskState}


class HandleMap:
    """Ids (strings) to dense integer handles for the allocator; freed handles are reused.

    A handle removed while an allocation cycle may be running is *held* until
    :meth:`release_held`: that cycle's offers may still name it, and they must
    not reach whoever would get the handle next.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, int] = {}
        self._by_handle: dict[int, str] = {}
        self._free: list[int] = []
        self._held: list[int] = []
        self._next = 0

    def add(self, ident: str) -> int:
        """The handle for ``ident``, allocating one if needed."""
        handle = self._by_id.get(ident)
        if handle is None:
            if self._free:
                handle = self._free.pop()
            else:
                handle, self._next = self._next, self._next + 1
            self._by_id[ident] = handle
            self._by_handle[handle] = ident
        return handle

    def get(self, ident: str) -> int | None:
        """The handle of ``ident`` or None."""
        return self._by_id.get(ident)

    def ident(self, handle: int) -> str:
        """The id behind a handle."""
        return self._by_handle[handle]

    def find(self, handle: int) -> str | None:
        """The id behind a handle, or None when it was removed."""
        return self._by_handle.get(handle)

    def remove(self, ident: str, hold: bool = False) -> None:
        """Forget an id; its handle becomes reusable (after :meth:`release_held` if ``hold``)."""
        handle = self._by_id.pop(ident)
        del self._by_handle[handle]
        (self._held if hold else self._free).append(handle)

    def release_held(self) -> None:
        """Held handles become reusable (no offer naming them is left)."""
        self._free.extend(self._held)
        self._held.clear()


class EventSink(Protocol):
    """Where a framework's events go: an HTTP stream or an in-process framework."""

    def send(self, event: dict[str, Any]) -> None:
        """Deliver one event (must not block)."""

    def close(self) -> None:
        """The master is done with this subscriber."""


class AgentBackend(Protocol):
    """How the master reaches an agent to run and kill tasks."""

    def run_task(self, framework_id: str, task: dict[str, Any]) -> None:
        """Start a task (the agent reports back through Master.status_update)."""

    def kill_task(self, framework_id: str, task_id: str) -> None:
        """Kill a task."""

    def message(self, framework_id: str, executor_id: str, data: bytes) -> None:
        """Deliver a framework message to an executor."""


@dataclass
class Task:
    """A task the master knows of, with its latest status."""

    task_id: str
    framework_id: str
    agent_id: str
    name: str
    role: str
    state: TaskState
    resources: Resources
    pieces: list[Piece]
    ports: Ranges
    info: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)


@dataclass
class Offer:
    """An outstanding offer."""

    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    pieces: list[Piece]
    ports: Ranges
    created: float


@dataclass
class Framework:
    """A subscribed (or disconnected, within its failover timeout) framework."""

    framework_id: str
    handle: int
    info: dict[str, Any]
    roles: list[str]
    capabilities: set[str]
    failover_timeout: float
    sink: EventSink | None = None
    stream_id: str | None = None
    connected: bool = True
    disconnected_at: float | None = None
    suppressed: set[str] = field(default_factory=set)
    tasks: dict[str, Task] = field(default_factory=dict)
    offers: set[str] = field(default_factory=set)
    #: Status updates sent but not acknowledged yet: uuid -> UPDATE event.
    unacknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: list[Task] = field(default_factory=list)
    removal: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        """The framework's name from its FrameworkInfo."""
        return str(self.info.get("name", ""))


@dataclass
class Agent:
    """A registered agent."""

    agent_id: str
    handle: int
    hostname: str
    resources: Resources
    attributes: dict[str, Any]
    backend: AgentBackend
    active: bool = True
    free_ports: Ranges = ()
    tasks: dict[str, Task] = field(default_factory=dict)
    registered_at: float = 0.0


@dataclass
class Executor:
    """An executor on one agent and the resources it holds: a group's (DEFAULT) executor
    until its last task ends, a custom executor until the agent reports it exited."""

    info: dict[str, Any]
    pieces: list[Piece]
    ports: Ranges
    role: str
    task_ids: set[str] = field(default_factory=set)

    @property
    def custom(self) -> bool:
        """A framework's own executor (it outlives its tasks, as Mesos)."""
        return self.info.get("type", "CUSTOM") == "CUSTOM"
