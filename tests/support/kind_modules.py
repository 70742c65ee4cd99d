"""Python modules of the estimator, QoS controller, hook and anonymous kinds (tests/kinds)."""

from __future__ import annotations

from typing import Any

from pymesos_modules.kinds.qos_controller import QoSCorrection
from pymesos_modules.kinds.resource_estimator import AgentUsage


class ShareEstimator:
    """Offers ``fraction`` of the agent's total as revocable resources."""

    kind = "resource_estimator"

    def __init__(self, parameters: dict[str, str]) -> None:
        self.fraction = float(parameters.get("fraction", "0.5"))

    def oversubscribable(self, usage: AgentUsage) -> dict[str, float]:
        return {name: amount * self.fraction for name, amount in usage.total.items()}


class KillRevocable:
    """Preempts every revocable task, always."""

    kind = "qos_controller"

    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters

    def corrections(self, usage: AgentUsage) -> list[QoSCorrection]:
        return [
            QoSCorrection(e.container_id, e.task_id, e.framework_id, "python says so")
            for e in usage.executors
            if e.revocable
        ]


class TagHook:
    """Appends its ``tag`` at every moment; ``name`` is what the chain logs."""

    kind = "hook"

    def __init__(self, parameters: dict[str, str], name: str = "") -> None:
        self.tag = parameters.get("tag", "py")
        self.name = name
        self.lost: list[tuple[str, str]] = []

    def master_launch_task_label_decorator(
        self, task_info: dict[str, Any], framework_info: dict[str, Any], agent_id: str
    ) -> list[dict[str, str]]:
        labels = (task_info.get("labels") or {}).get("labels", [])
        return [*labels, {"key": "tag", "value": self.tag}]

    agent_run_task_label_decorator = master_launch_task_label_decorator

    def master_agent_lost(self, agent_id: str, hostname: str) -> None:
        self.lost.append((agent_id, hostname))

    def agent_task_environment_decorator(
        self, task_info: dict[str, Any], environment: dict[str, str]
    ) -> dict[str, str]:
        return {**environment, "TAGS": environment.get("TAGS", "") + self.tag}

    def agent_task_status_decorator(self, framework_id: str, status: dict[str, Any]) -> dict:
        labels = (status.get("labels") or {}).get("labels", [])
        return {"labels": [*labels, {"key": "status", "value": self.tag}]}

    def agent_resources_decorator(self, agent_info: dict[str, Any]) -> list[dict[str, Any]]:
        extra = {"name": self.tag, "type": "SCALAR", "scalar": {"value": 1}}
        return [*agent_info["resources"], extra]

    def agent_attributes_decorator(self, agent_info: dict[str, Any]) -> list[dict[str, Any]]:
        extra = {"name": self.tag, "type": "TEXT", "text": {"value": self.tag}}
        return [*agent_info["attributes"], extra]


class Heartbeat:
    """An anonymous module: counts its instances in a class attribute."""

    kind = "anonymous"
    alive = 0

    def __init__(self, parameters: dict[str, str]) -> None:
        Heartbeat.alive += 1
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            Heartbeat.alive -= 1


class NoEstimate:
    """Claims to be an estimator but has no oversubscribable(): must be refused."""

    kind = "resource_estimator"

    def __init__(self, parameters: dict[str, str]) -> None:
        pass
