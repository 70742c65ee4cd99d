"""The isolator kind: modules that take part in every task the agent runs.

The agent calls each isolator of ``--isolation`` (in order) at the moments Mesos
does: :meth:`Isolator.prepare` before the task process exists,
:meth:`~Isolator.isolate` once it does, :meth:`~Isolator.update` when its
resources change, :meth:`~Isolator.usage` for ``/monitor/statistics``,
:meth:`~Isolator.watch` about once a second and once more after the task
exited, and :meth:`~Isolator.cleanup` at the end.  The C function table is
``pmm_isolator_vtable`` in ``include/pymesos_modules/isolator.h``.  An isolator
may also have ``recover(container_ids)``: at agent start, the containers a previous
agent left that this one takes over (whatever else it finds is an orphan).
"""

from __future__ import annotations

import json
import resource
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pymesos_modules.abi import IsolatorCalls, NativeCallError, NativeInstance
from pymesos_modules.kinds.base import NativeModule, native_json, register_kind

#: Mesos RLimitInfo.RLimit.Type names -> resource.RLIMIT_* (those this platform has).
RLIMITS: dict[str, int] = {
    f"RLMT_{name}": getattr(resource, f"RLIMIT_{name}")
    for name in (
        "AS", "CORE", "CPU", "DATA", "FSIZE", "LOCKS", "MEMLOCK", "MSGQUEUE", "NICE",
        "NOFILE", "NPROC", "RSS", "RTPRIO", "RTTIME", "SIGPENDING", "STACK",
    )
    if hasattr(resource, f"RLIMIT_{name}")
}  # fmt: skip


@dataclass(frozen=True)
class ContainerConfig:
    """What an isolator's prepare() learns about the container."""

    container_id: str
    task_id: str
    framework_id: str
    sandbox: str
    user: str | None
    resources: dict[str, float]
    task: dict[str, Any]


@dataclass(frozen=True)
class RLimit:
    """One resource limit (Mesos RLimitInfo); ``None`` means unlimited."""

    resource: str
    soft: int | None
    hard: int | None

    def __post_init__(self) -> None:
        if self.resource not in RLIMITS:
            raise ValueError(f"unknown rlimit type '{self.resource}' (known: {', '.join(RLIMITS)})")
        for name, value in (("soft", self.soft), ("hard", self.hard)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"rlimit {self.resource}: {name} must be a count >= 0")
        if self.hard is not None and (self.soft is None or self.soft > self.hard):
            raise ValueError(f"rlimit {self.resource}: soft {self.soft} above hard {self.hard}")


@dataclass
class LaunchInfo:
    """What an isolator asks of the task process before it runs."""

    environment: dict[str, str] = field(default_factory=dict)
    rlimits: list[RLimit] = field(default_factory=list)
    working_directory: str | None = None
    #: cgroup folders the task process joins between fork and exec (absolute paths)
    cgroups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Limitation:
    """A container exceeded what it may use; the agent fails its task with ``reason``."""

    reason: str
    message: str
    resources: dict[str, float]


@runtime_checkable
class Isolator(Protocol):
    """What the agent calls on every isolator of ``--isolation``."""

    def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        """Before the task process exists: environment, rlimits, working directory."""

    def isolate(self, container_id: str, pid: int) -> None:
        """The task process (leader of its own process group) exists."""

    def update(self, container_id: str, resources: dict[str, float]) -> None:
        """The task's resources are now ``resources``."""

    def usage(self, container_id: str) -> dict[str, float]:
        """Mesos ResourceStatistics fields this isolator measures."""

    def watch(self, container_id: str, wait_status: int | None) -> Limitation | None:
        """A limitation the container hit, if any (``wait_status`` once it exited)."""

    def cleanup(self, container_id: str) -> None:
        """The task is gone: release the container."""

    # Optional (the agent calls it when present): ``recover(container_ids) -> None``,
    # once at agent start with the containers it takes over; the rest are orphans.


def launch_info_from_json(module: str, document: dict[str, Any]) -> LaunchInfo:
    """Parse the launch-info document of isolator.h; errors name the module and field."""
    try:
        environment = document.get("environment") or {}
        if not isinstance(environment, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
        ):
            raise ValueError("'environment' must map names to strings")
        rlimits = [
            RLimit(item["type"], item.get("soft"), item.get("hard"))
            for item in document.get("rlimits") or []
        ]
        workdir = document.get("working_directory")
        if workdir is not None and not isinstance(workdir, str):
            raise ValueError("'working_directory' must be a string")
        cgroups = document.get("cgroups") or []
        if not isinstance(cgroups, list) or not all(
            isinstance(c, str) and c.startswith("/") for c in cgroups
        ):
            raise ValueError("'cgroups' must be a list of absolute folder paths")
    except (KeyError, TypeError, ValueError) as exc:
        raise NativeCallError(module, "prepare", 1, f"bad launch info: {exc}") from None
    return LaunchInfo(dict(environment), rlimits, workdir, list(cgroups))


class NativeIsolator(NativeModule):
    """A native isolator instance behind the :class:`Isolator` Protocol.

    Safe to call from several threads: calls on one instance are serialized
    here, which is the promise isolator.h makes to module authors (a module
    never sees two calls on one instance at once).  cffi releases the GIL
    during the call, so other instances and Python keep running.
    """

    kind = "isolator"

    def __init__(self, instance: NativeInstance) -> None:
        super().__init__(instance)
        self._calls = IsolatorCalls(instance)
        self._lock = threading.Lock()

    def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        """pmm_isolator_vtable.prepare."""
        task_json = json.dumps(config.task)
        with self._lock:
            text = self._calls.prepare(
                config.container_id,
                config.task_id,
                config.framework_id,
                config.sandbox,
                config.user,
                config.resources,
                task_json,
            )
        document = native_json(self.name, "prepare", text, dict)
        return None if document is None else launch_info_from_json(self.name, document)

    def isolate(self, container_id: str, pid: int) -> None:
        """pmm_isolator_vtable.isolate."""
        with self._lock:
            self._calls.isolate(container_id, pid)

    def update(self, container_id: str, resources: dict[str, float]) -> None:
        """pmm_isolator_vtable.update."""
        with self._lock:
            self._calls.update(container_id, resources)

    def usage(self, container_id: str) -> dict[str, float]:
        """pmm_isolator_vtable.usage."""
        with self._lock:
            return self._calls.usage(container_id)

    def watch(self, container_id: str, wait_status: int | None) -> Limitation | None:
        """pmm_isolator_vtable.watch."""
        with self._lock:
            text = self._calls.watch(container_id, wait_status)
        document = native_json(self.name, "watch", text, dict)
        if document is None:
            return None
        try:
            resources = {str(k): float(v) for k, v in (document.get("resources") or {}).items()}
            return Limitation(str(document["reason"]), str(document["message"]), resources)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NativeCallError(self.name, "watch", 1, f"bad limitation: {exc}") from None

    def cleanup(self, container_id: str) -> None:
        """pmm_isolator_vtable.cleanup."""
        with self._lock:
            self._calls.cleanup(container_id)

    def recover(self, container_ids: list[str]) -> bool:
        """pmm_isolator_vtable.recover; False when the module has no such call (it
        keeps nothing across agent restarts)."""
        with self._lock:
            return self._calls.recover(container_ids)


register_kind("isolator", NativeIsolator, Isolator)
