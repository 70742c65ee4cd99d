"""The records the agent hands to modules (kinds contract), from pymesos_modules.kinds.

TEMPORARY fallback while kinds/isolator.py and kinds/resource_estimator.py are
being written: the same fields as /work/notes/kinds-contract.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

try:
    from pymesos_modules.kinds.isolator import ContainerConfig
except ImportError:

    @dataclass(frozen=True)
    class ContainerConfig:  # type: ignore[no-redef]
        """What an isolator's prepare() learns about the container."""

        container_id: str
        task_id: str
        framework_id: str
        sandbox: str
        user: str | None
        resources: dict[str, float]
        task: dict[str, Any]


try:
    from pymesos_modules.kinds.resource_estimator import AgentUsage, ExecutorUsage
except ImportError:

    @dataclass(frozen=True)
    class ExecutorUsage:  # type: ignore[no-redef]
        """One running task as the estimator and the QoS controller see it."""

        container_id: str
        task_id: str
        framework_id: str
        resources: dict[str, float]
        revocable: bool
        statistics: dict[str, float]

    @dataclass(frozen=True)
    class AgentUsage:  # type: ignore[no-redef]
        """The agent's total and every running task's usage."""

        total: dict[str, float]
        executors: list[ExecutorUsage]


__all__ = ["AgentUsage", "ContainerConfig", "ExecutorUsage"]
