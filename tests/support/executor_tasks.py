"""Tasks for the pymesos test executor (tests/support/pymesos_executor.py)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

from support import pymesos_site
from support.agent_tasks import task_info

EXECUTOR = Path(__file__).resolve().parent / "pymesos_executor.py"


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
