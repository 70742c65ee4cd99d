"""The QoS controller kind: which revocable tasks to kill to keep an agent healthy.

The C function table is ``pmm_qos_controller_vtable`` in
``include/pymesos_modules/qos_controller.h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pymesos_modules.abi import NativeCallError
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
    """A native QoS controller behind the :class:`QoSController` Protocol."""

    kind = "qos_controller"

    def corrections(self, usage: AgentUsage) -> list[QoSCorrection]:
        """pmm_qos_controller_vtable.corrections."""
        text = self.instance.call_output("corrections", usage.to_json())
        answer = native_json(self.name, "corrections", text, list) or []
        try:
            return [
                QoSCorrection(
                    str(c["container_id"]),
                    str(c["task_id"]),
                    str(c["framework_id"]),
                    str(c.get("message", "")),
                )
                for c in answer
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise NativeCallError(self.name, "corrections", 1, f"bad correction: {exc}") from None


register_kind("qos_controller", NativeQoSController, QoSController)
