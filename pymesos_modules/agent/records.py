"""What the agent keeps: one record per task or container, one per custom executor, and small
resource helpers.

The :class:`~pymesos_modules.agent.agent.Agent` owns every record; its rooms
(registration, the containerizer, status updates, recovery, views) read and
change them through it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymesos_modules.agent.launcher import ProcessId
from pymesos_modules.agent.modules import Named

#: Why a restarted agent kills what a framework without FrameworkInfo.checkpoint left running.
NOT_CHECKPOINTED = (
    "the agent restarted and the framework does not checkpoint (FrameworkInfo.checkpoint)"
)

TERMINAL = frozenset(
    {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED"}
)


@dataclass
class Container:
    """One task on this agent, or one executor's container.

    A command task is its own container (Mesos: a command executor's), with
    its process.  A task given to a custom executor is a record without a
    process of its own (``executor`` is that executor); the executor's
    container is a Container too, whose ``executor`` is the executor and whose
    task id is the executor id.
    """

    framework_id: str
    task_id: str
    container_id: str
    info: dict[str, Any]
    framework_info: dict[str, Any]
    sandbox: Path
    resources: dict[str, float]
    ports: list[int]
    revocable: bool
    state: str = "TASK_STAGING"
    #: the task's process (the leader of its process group), once started
    process: ProcessId | None = None
    #: the launcher supervising it (see :mod:`.launcher`)
    launcher: ProcessId | None = None
    #: the run's checkpoint folder; None: not checkpointed (any more)
    run_dir: Path | None = None
    #: taken over from a previous agent's checkpoint
    recovered: bool = False
    prepared: list[Named] = field(default_factory=list)
    kill_requested: bool = False
    kill_grace: float = 0.0
    kill_reason: str | None = None
    kill_message: str | None = None
    kill_source: str = "SOURCE_EXECUTOR"
    #: the state a killed task ends in (TASK_LOST: killed because the agent restarted)
    kill_state: str = "TASK_KILLED"
    limitation: Any = None
    #: the raw waitpid status and its returncode form (negative: the signal)
    wait_status: int | None = None
    returncode: int | None = None
    runner: asyncio.Task | None = None
    started: float = field(default_factory=time.time)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    #: the custom executor this task runs on, or whose container this is (None: a command task)
    executor: Executor | None = None
    #: the running health checker and general checker of a command task (see :mod:`.health`)
    checkers: list[asyncio.Task] = field(default_factory=list)
    #: killed because its health check failed too often (its TASK_KILLED says unhealthy)
    killed_unhealthy: bool = False

    @property
    def executor_id(self) -> str:
        """A command task's executor id is its task id, as in Mesos."""
        return self.executor.executor_id if self.executor is not None else self.task_id

    @property
    def is_executor(self) -> bool:
        """This is a custom executor's own container (not a task)."""
        return self.executor is not None and self.executor.container is self

    @property
    def on_executor(self) -> bool:
        """This is a task given to a custom executor (no process of its own)."""
        return self.executor is not None and self.executor.container is not self

    @property
    def running(self) -> bool:
        """The task process was started and has not ended."""
        return self.process is not None and self.returncode is None

    @property
    def revocable_resources(self) -> dict[str, float]:
        """The scalars of the task's resources that are revocable."""
        items = self.info.get("resources") or []
        return scalars([r for r in items if isinstance(r, dict) and "revocable" in r])


@dataclass(eq=False)
class Executor:
    """A custom executor (``TaskInfo.executor``) on this agent, as Mesos' slave keeps it."""

    framework_id: str
    executor_id: str
    #: the ExecutorInfo it was launched with
    info: dict[str, Any]
    #: its container: the process running ``info.command``, its sandbox and isolators
    container: Container
    #: the framework asked for checkpointing (FrameworkInfo.checkpoint)
    checkpoint: bool = False
    #: REGISTERING until it subscribes, RUNNING, TERMINATING, TERMINATED (Mesos' states)
    state: str = "REGISTERING"
    #: task id -> the record of every task given to it, until the agent forgets the task
    tasks: dict[str, Container] = field(default_factory=dict)
    #: tasks waiting for it to subscribe, in order
    queued: list[str] = field(default_factory=list)
    #: task id -> the ids of the task group it came in (tasks given one by one are not here)
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: its SUBSCRIBE stream, while connected (see :mod:`.executors`)
    sink: Any = None
    #: the registration or shutdown timer
    timer: asyncio.TimerHandle | None = None
    #: (state, reason, message) its unfinished tasks get when it ends, when the agent knows why
    termination: tuple[str, str | None, str] | None = None
    #: taken over from a previous agent's checkpoint
    recovered: bool = False

    def __str__(self) -> str:
        return f"'{self.executor_id}' of framework {self.framework_id}"


def set_optional(status: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Set a TaskStatus' optional fields (``message``, ``reason``, ``healthy``,
    ``check_status``) that have a value; ``status`` itself, for chaining."""
    for name, value in fields.items():
        if value is not None and value != "":
            status[name] = value
    return status


def scalars(items: list[dict[str, Any]]) -> dict[str, float]:
    """The SCALAR resources of Mesos Resource JSON, summed by name."""
    out: dict[str, float] = {}
    for item in items:
        if item.get("type", "SCALAR") == "SCALAR":
            value = float((item.get("scalar") or {}).get("value", 0.0))
            out[item["name"]] = out.get(item["name"], 0.0) + value
    return out


def ports_of(items: list[dict[str, Any]]) -> list[int]:
    """Every port of the RANGES resource named ``ports``."""
    out: list[int] = []
    for item in items:
        if item.get("name") == "ports" and item.get("type") == "RANGES":
            for r in (item.get("ranges") or {}).get("range", []):
                out.extend(range(int(r["begin"]), int(r["end"]) + 1))
    return out
