"""A custom executor written against the unmodified pymesos 0.3.15 ``MesosExecutorDriver``.

Run by the agent as ``ExecutorInfo.command`` (``python -P this_file``, pymesos on
PYTHONPATH).  What it does with a task is the task's ``data`` (base64 text):

- ``finish``: TASK_RUNNING, then TASK_FINISHED at once;
- ``wait``: TASK_RUNNING, a framework message ``hello <task id> <pid>`` to the
  scheduler, then waits for the scheduler's message ``finish <task id>``: it
  answers ``done <task id>`` and finishes the task;
- ``fail``: TASK_RUNNING, then TASK_FAILED;
- ``stubborn``: as ``wait``, and the executor then never ends on SHUTDOWN (its
  ``shutdown()`` blocks), so only the agent's kill after the grace period ends it.

A kill ends the task TASK_KILLED.  Every call the executor gets is appended to
``calls.log`` in its sandbox (its working directory), for the tests to read.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
import time
from typing import Any

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data


def _log(line: str) -> None:
    with open("calls.log", "a") as out:
        out.write(line + "\n")


class TestExecutor(Executor):
    """See the module docstring."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: dict[str, dict[str, Any]] = {}
        self.stubborn = False

    def registered(self, driver: Any, executor_info: Any, framework_info: Any, agent_info: Any):
        _log(f"registered {executor_info['executor_id']['value']} {agent_info['hostname']}")

    def reregistered(self, driver: Any, agent_info: Any) -> None:
        _log("reregistered")

    def disconnected(self, driver: Any) -> None:
        _log("disconnected")

    def _status(self, driver: Any, task: dict[str, Any], state: str, message: str = "") -> None:
        update = {"task_id": task["task_id"], "state": state, "timestamp": time.time()}
        if message:
            update["message"] = message
        driver.sendStatusUpdate(update)

    def launchTask(self, driver: Any, task: dict[str, Any]) -> None:
        what = decode_data(task.get("data", "")).decode() if task.get("data") else "finish"
        task_id = task["task_id"]["value"]
        _log(f"launch {task_id} {what}")
        self._status(driver, task, "TASK_RUNNING")
        if what == "finish":
            self._status(driver, task, "TASK_FINISHED", "finished by the executor")
        elif what == "fail":
            self._status(driver, task, "TASK_FAILED", "failed by the executor")
        else:
            self.stubborn = self.stubborn or what == "stubborn"
            with self.lock:
                self.waiting[task_id] = task
            hello = f"hello {task_id} {os.getpid()}".encode()
            driver.sendFrameworkMessage(encode_data(hello))

    def killTask(self, driver: Any, task_id: dict[str, str]) -> None:
        _log(f"kill {task_id['value']}")
        with self.lock:
            task = self.waiting.pop(task_id["value"], None)
        if task is not None:
            self._status(driver, task, "TASK_KILLED", "killed by the executor")

    def frameworkMessage(self, driver: Any, message: str) -> None:
        text = base64.b64decode(message).decode()
        _log(f"message {text}")
        verb, _, task_id = text.partition(" ")
        if verb != "finish":
            return
        with self.lock:
            task = self.waiting.pop(task_id, None)
        if task is not None:
            driver.sendFrameworkMessage(encode_data(f"done {task_id}".encode()))
            self._status(driver, task, "TASK_FINISHED", "finished on request")

    def shutdown(self, driver: Any) -> None:
        _log("shutdown")
        while self.stubborn:  # the agent's kill ends this
            time.sleep(1)

    def error(self, driver: Any, message: str) -> None:
        _log(f"error {message}")


def main() -> int:
    driver = MesosExecutorDriver(TestExecutor(), use_addict=False)
    status = driver.run()
    _log(f"driver ended {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
