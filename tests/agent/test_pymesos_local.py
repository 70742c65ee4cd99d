"""An unmodified pymesos 0.3.15 framework runs command tasks against `local` mode.

pymesos comes from tests/support/pymesos_site.py (prepared by tests/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import uuid
from typing import Any

import pytest

from pymesos_modules.local import register, start_local

pymesos = pytest.importorskip("pymesos")


class CommandScheduler(pymesos.Scheduler):
    """Launches one shell command per offer until ``count`` are launched."""

    def __init__(self, count: int, folder: str) -> None:
        self.updates: queue.Queue[tuple[str, str, str]] = queue.Queue()
        self.count, self.folder = count, folder
        self.launched = 0

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            if self.launched >= self.count:
                driver.declineOffer(offer["id"])
                continue
            self.launched += 1
            task_id = f"pymesos-{self.launched}-{uuid.uuid4().hex[:6]}"
            command = f"echo $MESOS_TASK_ID > {self.folder}/$MESOS_TASK_ID"
            task = {
                "task_id": {"value": task_id},
                "agent_id": offer["agent_id"],
                "name": task_id,
                "command": {"value": command},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
            }
            driver.launchTasks(offer["id"], [task])

    def statusUpdate(self, driver: Any, update: Any) -> None:
        self.updates.put((update["task_id"]["value"], update["state"], update.get("message", "")))


async def test_pymesos_driver_runs_command_tasks_on_local_mode(tmp_path):
    parser = argparse.ArgumentParser()
    register(parser)
    args = parser.parse_args(
        [
            "--port=0",
            "--num_agents=2",
            f"--work_dir={tmp_path / 'local'}",
            "--resources=cpus:1;mem:256;ports:[31000-31001]",
            "--allocator=python/drf",
            "--allocation_interval=0.05",
        ]
    )
    local = await start_local(args)
    scheduler = CommandScheduler(3, str(tmp_path))
    framework = {"user": "tester", "name": "pymesos-local", "hostname": "localhost"}
    address = local.master.url.removeprefix("http://")
    driver = pymesos.MesosSchedulerDriver(scheduler, framework, address, use_addict=False)
    await asyncio.to_thread(driver.start)
    try:
        finished: dict[str, list[str]] = {}

        def wait() -> None:
            states: dict[str, list[str]] = {}
            while sum(s[-1] == "TASK_FINISHED" for s in states.values()) < 3:
                task_id, state, message = scheduler.updates.get(timeout=60)
                states.setdefault(task_id, []).append(state)
                assert state not in ("TASK_FAILED", "TASK_LOST", "TASK_ERROR"), message
            finished.update(states)

        await asyncio.to_thread(wait)
        for task_id, states in finished.items():
            assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
            assert (tmp_path / task_id).read_text() == f"{task_id}\n"
    finally:
        await asyncio.to_thread(driver.stop)
        await asyncio.to_thread(driver.join)
        await local.stop()
