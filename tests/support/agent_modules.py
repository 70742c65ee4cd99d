"""Python modules of the agent-side kinds for the agent tests (loaded with {"python": ...})."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymesos_modules.kinds.isolator import LaunchInfo, Limitation, RLimit
from pymesos_modules.kinds.qos_controller import QoSCorrection


class BaseIsolator:
    """Records every call; does nothing."""

    kind = "isolator"

    def __init__(self, parameters: dict[str, str], name: str = "") -> None:
        self.parameters = parameters
        self.name = name
        self.calls: list[tuple[str, Any]] = []
        self.sandboxes: dict[str, str] = {}

    def prepare(self, config: Any) -> LaunchInfo | None:
        self.calls.append(("prepare", config.container_id))
        self.sandboxes[config.container_id] = config.sandbox
        return None

    def isolate(self, container_id: str, pid: int) -> None:
        self.calls.append(("isolate", container_id))

    def update(self, container_id: str, resources: dict[str, float]) -> None:
        self.calls.append(("update", container_id))

    def usage(self, container_id: str) -> dict[str, float]:
        return {}

    def watch(self, container_id: str, wait_status: int | None) -> Limitation | None:
        if wait_status is not None:
            self.calls.append(("watch-exit", wait_status))
        return None

    def cleanup(self, container_id: str) -> None:
        self.calls.append(("cleanup", container_id))

    def close(self) -> None:
        self.calls.append(("close", None))


class EnvIsolator(BaseIsolator):
    """Sets ISOLATED=<parameter value>, an rlimit, and reports fixed usage."""

    def prepare(self, config: Any) -> LaunchInfo:
        super().prepare(config)
        return LaunchInfo(
            environment={"ISOLATED": self.parameters.get("value", "yes")},
            rlimits=[RLimit("RLMT_NOFILE", 64, 64)],
        )

    def usage(self, container_id: str) -> dict[str, float]:
        return {"cpus_user_time_secs": 1.5, "processes": 1.0}


class ClashingIsolator(BaseIsolator):
    """Sets ISOLATED to something else: composing it after EnvIsolator must fail the task."""

    def prepare(self, config: Any) -> LaunchInfo:
        super().prepare(config)
        return LaunchInfo(environment={"ISOLATED": "other"})


class FailingIsolator(BaseIsolator):
    """prepare() fails, as a native module returning an error status would."""

    def prepare(self, config: Any) -> LaunchInfo:
        super().prepare(config)
        raise RuntimeError("no cgroup for you")


class FileLimitIsolator(BaseIsolator):
    """Reports a memory limitation once the task creates 'over' in its sandbox."""

    def watch(self, container_id: str, wait_status: int | None) -> Limitation | None:
        super().watch(container_id, wait_status)
        if (Path(self.sandboxes[container_id]) / "over").exists():
            return Limitation(
                "REASON_CONTAINER_LIMITATION_MEMORY",
                "Memory limit exceeded: 80 MB used of 64 MB",
                {"mem": 64.0},
            )
        return None


class FixedEstimator:
    """Always offers the amounts given as parameters as revocable."""

    kind = "resource_estimator"

    def __init__(self, parameters: dict[str, str]) -> None:
        self.amounts = {k: float(v) for k, v in parameters.items()}
        self.seen: list[Any] = []

    def oversubscribable(self, usage: Any) -> dict[str, float]:
        self.seen.append(usage)
        return dict(self.amounts)


class PreemptEverything:
    """Asks to kill every running task (the agent must spare non-revocable ones)."""

    kind = "qos_controller"

    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters
        self.rounds = 0

    def corrections(self, usage: Any) -> list[QoSCorrection]:
        self.rounds += 1
        return [
            QoSCorrection(e.container_id, e.task_id, e.framework_id, "load too high")
            for e in usage.executors
        ]


class TaggingHook:
    """Uses every agent-side hook point; 'tag' parameter tells chained instances apart."""

    kind = "hook"

    def __init__(self, parameters: dict[str, str]) -> None:
        self.tag = parameters.get("tag", "hook")

    def agent_run_task_label_decorator(
        self, task_info: dict, framework_info: dict, agent_info: dict
    ) -> list[dict]:
        labels = list((task_info.get("labels") or {}).get("labels", []))
        return [*labels, {"key": self.tag, "value": agent_info["hostname"]}]

    def agent_task_environment_decorator(
        self, task_info: dict, environment: dict[str, str]
    ) -> dict[str, str]:
        seen = environment.get("HOOKS", "")
        return {**environment, "HOOKS": f"{seen}{self.tag};"}

    def agent_task_status_decorator(self, framework_id: str, status: dict) -> dict:
        labels = list((status.get("labels") or {}).get("labels", []))
        return {"labels": [*labels, {"key": self.tag, "value": status["state"]}]}

    def agent_resources_decorator(self, agent_info: dict) -> list[dict]:
        return [
            {**r, "scalar": {"value": r["scalar"]["value"] - 1}} if r["name"] == "cpus" else r
            for r in agent_info["resources"]
        ]

    def agent_attributes_decorator(self, agent_info: dict) -> list[dict]:
        return [
            *agent_info["attributes"],
            {"name": self.tag, "type": "TEXT", "text": {"value": "on"}},
        ]


class BrokenHook:
    """Every hook point raises: the agent logs it and goes on."""

    kind = "hook"

    def __init__(self, parameters: dict[str, str]) -> None:
        pass

    def agent_task_environment_decorator(self, task_info: dict, environment: dict) -> dict:
        raise RuntimeError("broken hook")

    def agent_task_status_decorator(self, framework_id: str, status: dict) -> dict:
        raise RuntimeError("broken hook")
