"""The resource estimator kind: how much of an agent may be oversubscribed now.

Also home of :class:`AgentUsage`, what the agent tells both its estimator and
its QoS controller.  The C function table is ``pmm_resource_estimator_vtable``
in ``include/pymesos_modules/resource_estimator.h``.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from pymesos_modules.abi import NativeCallError, NativeInstance
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
    """A native resource estimator behind the :class:`ResourceEstimator` Protocol.

    Calls on one instance are serialized, as resource_estimator.h promises modules.
    """

    kind = "resource_estimator"

    def __init__(self, instance: NativeInstance) -> None:
        super().__init__(instance)
        self._lock = threading.Lock()

    def oversubscribable(self, usage: AgentUsage) -> dict[str, float]:
        """pmm_resource_estimator_vtable.oversubscribable; amounts checked finite and >= 0."""
        with self._lock:
            text = self.instance.call_output("oversubscribable", usage.to_json())
        answer = native_json(self.name, "oversubscribable", text, dict) or {}
        out: dict[str, float] = {}
        for name, amount in answer.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise NativeCallError(
                    self.name, "oversubscribable", 1, f"bad amount for '{name}': {amount!r}"
                )
            if not math.isfinite(amount) or amount < 0:
                raise NativeCallError(
                    self.name, "oversubscribable", 1, f"'{name}' amount {amount} is not >= 0"
                )
            out[name] = float(amount)
        return out


register_kind("resource_estimator", NativeResourceEstimator, ResourceEstimator)
