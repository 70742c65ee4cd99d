"""The QoS controller kind: which revocable tasks to kill to keep an agent healthy.

The C function table is ``pmm_qos_controller_vtable`` in
``include/pymesos_modules/qos_controller.h``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pymesos_modules.abi import NativeCallError, NativeInstance
from pymesos_modules.kinds.base import NativeModule, native_json, register_kind
from pymesos_modules.kinds.resource_estimator import AgentUsage


@dataclass(frozen=True)
class QoSCorrection:
    """Kill this (revocable) task, and why."""

    container_id: str
    task_id: str
    framework_id: str
    message: str


@runtime_checkable
class QoSController(Protocol):
    """What the agent asks its ``--qos_controller``."""

    def corrections(self, usage: AgentUsage) -> list[QoSCorrection]:
        """The tasks to kill now (only revocable ones are acted on)."""


class NativeQoSController(NativeModule):
    """A native QoS controller behind the :class:`QoSController` Protocol.

    Calls on one instance are serialized, as qos_controller.h promises modules.
    """

    kind = "qos_controller"

    def __init__(self, instance: NativeInstance) -> None:
        super().__init__(instance)
        self._lock = threading.Lock()

    def corrections(self, usage: AgentUsage) -> list[QoSCorrection]:
        """pmm_qos_controller_vtable.corrections; each correction checked."""
        with self._lock:
            text = self.instance.call_output("corrections", usage.to_json())
        answer = native_json(self.name, "corrections", text, list) or []
        out: list[QoSCorrection] = []
        for index, c in enumerate(answer):
            fields = ("container_id", "task_id", "framework_id")
            if not isinstance(c, dict) or not all(isinstance(c.get(f), str) for f in fields):
                raise NativeCallError(
                    self.name,
                    "corrections",
                    1,
                    f"correction [{index}] needs string container_id, task_id and framework_id",
                )
            message = c.get("message", "")
            if not isinstance(message, str):
                message = str(message)
            out.append(QoSCorrection(c["container_id"], c["task_id"], c["framework_id"], message))
        return out


register_kind("qos_controller", NativeQoSController, QoSController)
