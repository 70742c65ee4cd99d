"""The resource estimator kind: how much of an agent may be oversubscribed now.

Also home of :class:`AgentUsage`, what the agent tells both its estimator and
its QoS controller.  The C function table is ``pmm_resource_estimator_vtable``
in ``include/pymesos_modules/resource_estimator.h``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from pymesos_modules.abi import NativeCallError
from pymesos_modules.kinds.base import NativeModule, native_json, register_kind


@dataclass(frozen=True)
class ExecutorUsage:
    """One running task as the estimator and the QoS controller see it."""

    container_id: str
    task_id: str
    framework_id: str
    resources: dict[str, float]
    revocable: bool
    statistics: dict[str, float]


@dataclass(frozen=True)
class AgentUsage:
    """The agent's total (non-revocable) resources and every running task's usage."""

    total: dict[str, float]
    executors: list[ExecutorUsage]

    def to_json(self) -> str:
        """The ``usage_json`` document of resource_estimator.h."""
        return json.dumps(asdict(self))


@runtime_checkable
class ResourceEstimator(Protocol):
    """What the agent asks its ``--resource_estimator``."""

    def oversubscribable(self, usage: AgentUsage) -> dict[str, float]:
        """The revocable resources the agent may offer now (a total, not a delta)."""


class NativeResourceEstimator(NativeModule):
    """A native resource estimator behind the :class:`ResourceEstimator` Protocol."""

    kind = "resource_estimator"

    def oversubscribable(self, usage: AgentUsage) -> dict[str, float]:
        """pmm_resource_estimator_vtable.oversubscribable."""
        text = self.instance.call_output("oversubscribable", usage.to_json())
        answer = native_json(self.name, "oversubscribable", text, dict) or {}
        try:
            return {str(name): float(amount) for name, amount in answer.items()}
        except (TypeError, ValueError) as exc:
            raise NativeCallError(self.name, "oversubscribable", 1, f"bad amount: {exc}") from None


register_kind("resource_estimator", NativeResourceEstimator, ResourceEstimator)
