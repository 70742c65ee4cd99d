"""An unmodified pymesos 0.3.15 framework runs command tasks against `local` mode.

pymesos comes from tests/support/pymesos_site.py (prepared by tests/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import queue
import sys
import uuid
from pathlib import Path
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
    # The user must exist on the agent, which runs tasks as their user (--switch_user).
    framework = {"user": getpass.getuser(), "name": "pymesos-local", "hostname": "localhost"}
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


class ExecutorScheduler(pymesos.Scheduler):
    """Runs tasks on the pymesos test executor (tests/support/pymesos_executor.py): each
    says hello by framework message, is told to finish by one, and answers "done"."""

    def __init__(self, executor: dict[str, Any], tasks: list[str]) -> None:
        self.events: queue.Queue[tuple[str, ...]] = queue.Queue()
        self.executor, self.tasks = executor, list(tasks)

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            if not self.tasks:
                driver.declineOffer(offer["id"])
                continue
            task_id = self.tasks.pop(0)
            task = {
                "task_id": {"value": task_id},
                "agent_id": offer["agent_id"],
                "name": task_id,
                "executor": self.executor,
                "data": pymesos.encode_data(b"wait"),
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.2}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
            }
            driver.launchTasks(offer["id"], [task])

    def statusUpdate(self, driver: Any, update: Any) -> None:
        self.events.put(("update", update["task_id"]["value"], update["state"]))

    def frameworkMessage(self, driver: Any, executor_id: Any, agent_id: Any, data: str) -> None:
        text = pymesos.decode_data(data).decode()
        self.events.put(("message", executor_id["value"], text))
        verb, task_id, *_ = text.split()
        if verb == "hello":
            reply = pymesos.encode_data(f"finish {task_id}".encode())
            driver.sendFrameworkMessage(executor_id, agent_id, reply)


async def test_pymesos_executor_runs_tasks_and_trades_messages_on_local_mode(tmp_path):
    from support import pymesos_site

    parser = argparse.ArgumentParser()
    register(parser)
    args = parser.parse_args(
        [
            "--port=0",
            "--num_agents=1",
            f"--work_dir={tmp_path / 'local'}",
            "--resources=cpus:2;mem:512",
            "--allocator=python/drf",
            "--allocation_interval=0.05",
        ]
    )
    local = await start_local(args)
    program = Path(__file__).resolve().parents[1] / "support" / "pymesos_executor.py"
    executor = {
        "executor_id": {"value": "pymesos-executor"},
        "name": "pymesos executor",
        "command": {
            "shell": False,
            "value": sys.executable,
            "arguments": [sys.executable, "-P", str(program)],
            "environment": {
                "variables": [{"name": "PYTHONPATH", "value": str(pymesos_site.prepare())}]
            },
        },
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
        ],
    }
    scheduler = ExecutorScheduler(executor, ["first", "second"])
    framework = {"user": getpass.getuser(), "name": "pymesos-executors", "hostname": "localhost"}
    address = local.master.url.removeprefix("http://")
    driver = pymesos.MesosSchedulerDriver(scheduler, framework, address, use_addict=False)
    await asyncio.to_thread(driver.start)
    try:

        def wait() -> tuple[dict[str, list[str]], list[tuple[str, ...]]]:
            states: dict[str, list[str]] = {}
            messages = []
            while sum(s[-1] == "TASK_FINISHED" for s in states.values()) < 2:
                kind, *rest = scheduler.events.get(timeout=60)
                if kind == "update":
                    task_id, state = rest
                    states.setdefault(task_id, []).append(state)
                    assert state not in ("TASK_FAILED", "TASK_LOST", "TASK_ERROR"), states
                else:
                    messages.append(tuple(rest))
            return states, messages

        states, messages = await asyncio.to_thread(wait)
        assert states == {
            "first": ["TASK_RUNNING", "TASK_FINISHED"],
            "second": ["TASK_RUNNING", "TASK_FINISHED"],
        }
        hellos = [m for m in messages if m[1].startswith("hello")]
        assert {m[1].split()[1] for m in hellos} == {"first", "second"}
        # Both tasks ran on one executor process: the same pid said hello twice.
        assert len({m[1].split()[2] for m in hellos}) == 1
        assert all(m[0] == "pymesos-executor" for m in messages)

        def done() -> set[str]:
            seen = {m[1] for m in messages if m[1].startswith("done")}
            while len(seen) < 2:
                kind, *rest = scheduler.events.get(timeout=60)
                if kind == "message" and rest[1].startswith("done"):
                    seen.add(rest[1])
            return seen

        assert await asyncio.to_thread(done) == {"done first", "done second"}
    finally:
        await asyncio.to_thread(driver.stop)
        await asyncio.to_thread(driver.join)
        await local.stop()
