"""An unmodified pymesos 0.3.15 MesosSchedulerDriver against our master (loopback).

pymesos cannot be a plain test dependency (see tests/support/pymesos_site.py);
tests/conftest.py prepares it once per machine, and the test skips only when no
package index is reachable.
"""

from __future__ import annotations

import asyncio
import queue
import uuid
from typing import Any

import pytest

pymesos = pytest.importorskip("pymesos")


class RecordingScheduler(pymesos.Scheduler):
    """Launches one command task on the first offer and records what happens."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.launched = False

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.events.put(("registered", framework_id))

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            if self.launched:
                driver.declineOffer(offer["id"])
                continue
            self.launched = True
            task = {
                "task_id": {"value": str(uuid.uuid4())},
                "agent_id": offer["agent_id"],
                "name": "pymesos-task",
                "command": {"value": "true"},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
                "labels": {"labels": [{"key": "pmm.duration", "value": "0"}]},
            }
            driver.launchTasks(offer["id"], [task])

    def statusUpdate(self, driver: Any, update: Any) -> None:
        self.events.put(("update", update["state"]))


async def _next(events: queue.Queue, kind: str, timeout: float = 20.0) -> Any:
    def wait() -> Any:
        while True:
            got, value = events.get(timeout=timeout)
            if got == kind:
                return value

    return await asyncio.to_thread(wait)


async def test_pymesos_driver_subscribes_launches_and_gets_updates(master_factory):
    running = await master_factory(allocator="python/drf", simulated_agents=1)
    scheduler = RecordingScheduler()
    address = running.url.removeprefix("http://")
    framework = {"user": "tester", "name": "pymesos-e2e", "hostname": "localhost"}
    driver = pymesos.MesosSchedulerDriver(scheduler, framework, address, use_addict=False)
    # start() asks /version synchronously: off the loop thread, or the master cannot answer.
    await asyncio.to_thread(driver.start)
    try:
        framework_id = await _next(scheduler.events, "registered")
        assert framework_id["value"] in running.master.frameworks
        states = [await _next(scheduler.events, "update") for _ in range(3)]
        assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    finally:
        await asyncio.to_thread(driver.stop)
        await asyncio.to_thread(driver.join)
