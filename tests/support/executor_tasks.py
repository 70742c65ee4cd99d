"""Tasks for the pymesos test executor (tests/support/pymesos_executor.py), and task groups
for the agent's default executor."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

from support import pymesos_site
from support.agent_tasks import follow, launch, task_info

EXECUTOR = Path(__file__).resolve().parent / "pymesos_executor.py"


def environment_of(pid: int) -> dict[str, str]:
    """A running process' environment, as the kernel shows it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def executor_info(executor_id: str = "pyexec", cpus: float = 0.1, **extra: Any) -> dict[str, Any]:
    """An ExecutorInfo running the pymesos test executor."""
    site = str(pymesos_site.prepare())
    return {
        "executor_id": {"value": executor_id},
        "name": "pymesos test executor",
        "command": {
            "shell": False,
            "value": sys.executable,
            "arguments": [sys.executable, "-P", str(EXECUTOR)],
            "environment": {"variables": [{"name": "PYTHONPATH", "value": site}]},
        },
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
        ],
        **extra,
    }


def on_executor(offer: dict[str, Any], task_id: str, what: str, **info: Any) -> dict[str, Any]:
    """A task for the test executor; ``what`` is what it does (see pymesos_executor.py)."""
    task = task_info(offer, task_id, "unused", cpus=0.2, mem=32)
    del task["command"]
    task["executor"] = executor_info(**info)
    task["data"] = base64.b64encode(what.encode()).decode()
    return task


async def waiting_on_executor(scheduler: Any, *task_ids: str) -> None:
    """Launch ``task_ids`` on the test executor, each waiting for a message, and follow each
    to TASK_RUNNING."""
    await launch(scheduler, *[lambda o, t=t: on_executor(o, t, "wait") for t in task_ids])
    for task_id in task_ids:
        await follow(scheduler, task_id, until="TASK_RUNNING")


async def message_executor(
    scheduler: Any, agent_id: str, data: bytes, executor_id: str = "pyexec"
) -> None:
    """The framework's MESSAGE (``data``) for its executor on ``agent_id``; 202 asserted."""
    message = {
        "type": "MESSAGE",
        "message": {
            "agent_id": {"value": agent_id},
            "executor_id": {"value": executor_id},
            "data": base64.b64encode(data).decode(),
        },
    }
    assert await scheduler.call(message) == 202, scheduler.last_text


async def shutdown_executor(scheduler: Any, agent_id: str, executor_id: str = "pyexec") -> None:
    """The scheduler's SHUTDOWN call for its executor on ``agent_id``; 202 asserted."""
    call = {
        "type": "SHUTDOWN",
        "shutdown": {"executor_id": {"value": executor_id}, "agent_id": {"value": agent_id}},
    }
    assert await scheduler.call(call) == 202, scheduler.last_text


DEFAULT = {
    "executor_id": {"value": "group-executor"},
    "type": "DEFAULT",
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
    ],
}


async def launch_group(
    scheduler: Any, *tasks: tuple[str, str | dict[str, Any]], offer: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One LAUNCH_GROUP of (task id, shell command or CommandInfo) on the default executor, on
    ``offer`` or the next one offered."""
    if offer is None:
        event = await scheduler.next("OFFERS", 20)
        offer = event["offers"]["offers"][0]
    infos = [task_info(offer, task_id, command, cpus=0.1, mem=32) for task_id, command in tasks]
    await accept_group(scheduler, offer, infos)
    return offer


async def accept_group(
    scheduler: Any,
    offer: dict[str, Any],
    infos: list[dict[str, Any]],
    executor: dict[str, Any] | None = None,
) -> None:
    """ACCEPT ``offer`` with one LAUNCH_GROUP of the TaskInfos ``infos`` on ``executor``
    (the default executor :data:`DEFAULT` if not given); 202 asserted."""
    call = {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [
                {
                    "type": "LAUNCH_GROUP",
                    "launch_group": {
                        "executor": executor or DEFAULT,
                        "task_group": {"tasks": infos},
                    },
                }
            ],
            "filters": {"refuse_seconds": 0},
        },
    }
    assert await scheduler.call(call) == 202, scheduler.last_text


def sandbox_of(agent: Any, framework_id: str) -> Path:
    """The default executor's sandbox (it may have exited already)."""
    executor = agent.agent.executor_room.find(framework_id, "group-executor")
    if executor is None:
        executor = agent.agent.completed_executors[-1]
    return executor.container.sandbox
