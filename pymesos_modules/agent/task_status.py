"""Status updates of tasks: what a container's state changes become, and when a task is gone.

:class:`TaskStatus` turns a task's new state into a Mesos TaskStatus (the
hooks decorate it) for the status update manager (:mod:`.status_updates`),
which delivers it reliably; it checkpoints each task's update stream beside
the task, and forgets a task once it has ended and its terminal update is
acknowledged (its checkpoint goes with it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pymesos_modules.agent import health
from pymesos_modules.agent.records import TERMINAL, Container, set_optional

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent

logger = logging.getLogger(__name__)


class TaskStatus:
    """The agent's status updates room; all state it changes is the agent's."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def update(
        self,
        container: Container,
        state: str,
        message: str | None = None,
        reason: str | None = None,
        source: str = "SOURCE_EXECUTOR",
        healthy: bool | None = None,
        check_status: dict[str, Any] | None = None,
    ) -> None:
        """The task is now in ``state``: count it and queue its (decorated) update
        (``healthy``, ``check_status``: the results of its checks, when they say)."""
        container.state = state
        status: dict[str, Any] = {
            "task_id": {"value": container.task_id},
            "state": state,
            "source": source,
            "executor_id": {"value": container.executor_id},
            "container_status": {"container_id": {"value": container.container_id}},
        }
        if self.agent.agent_id:
            status["agent_id"] = {"value": self.agent.agent_id}
        if container.process is not None:
            status["container_status"]["executor_pid"] = container.process.pid
        if check_status is None and container.executor is None:
            check_status = health.empty_check_status(container.info)
        set_optional(
            status, message=message, reason=reason, healthy=healthy, check_status=check_status
        )
        self.agent.counters["status_updates"] += 1
        key = f"tasks_{state.removeprefix('TASK_').lower()}"
        if state in TERMINAL and key in self.agent.counters:
            self.agent.counters[key] += 1
        self.agent.updates.add(
            container.framework_id, self._decorate(container.framework_id, status)
        )

    def _decorate(self, framework_id: str, status: dict[str, Any]) -> dict[str, Any]:
        """Hooks' status decorators: their labels and container_status replace the update's."""
        return self.agent.modules.hook_chain.decorate_status(framework_id, status)

    def update_without_container(
        self, framework_id: str, task_id: str, state: str, reason: str, message: str
    ) -> None:
        """An update from the agent itself about a task it does not run (lost, invalid)."""
        status = {
            "task_id": {"value": task_id},
            "state": state,
            "source": "SOURCE_SLAVE",
            "reason": reason,
            "message": message,
        }
        self.agent.updates.add(framework_id, self._decorate(framework_id, status))

    def update_from_executor(self, container: Container, status: dict[str, Any]) -> None:
        """A custom executor's update of its task (checked by :mod:`.executors`): the task is
        in its state now; the update goes out with the executor's uuid."""
        state = status["state"]
        container.state = state
        self.agent.counters["status_updates"] += 1
        key = f"tasks_{state.removeprefix('TASK_').lower()}"
        if state in TERMINAL and key in self.agent.counters:
            self.agent.counters[key] += 1
        if self.agent.agent_id:
            status["agent_id"] = {"value": self.agent.agent_id}
        self.agent.updates.add(
            container.framework_id, self._decorate(container.framework_id, status)
        )

    def acknowledged(self, framework_id: str, task_id: str, ack: str) -> None:
        """ACKNOWLEDGED: stop resending (an executor hears of its own updates' acks); a task
        whose terminal update is acked is forgotten."""
        status = self.agent.updates.acknowledge(framework_id, task_id, ack)
        if status is None:
            return
        container = self.agent.find(framework_id, task_id)
        if container is not None and container.on_executor:
            self.agent.executor_room.acknowledged(container, status)
        if status.get("state") not in TERMINAL:
            return
        if container is not None and container.finished.is_set():
            self.forget(container)

    def finished(self, container: Container) -> None:
        """The task's coroutine is done: forget it now if its terminal update is acknowledged."""
        container.finished.set()
        if container.state in TERMINAL and not self.agent.updates.pending(
            container.framework_id, container.task_id
        ):
            self.forget(container)

    def forget(self, container: Container) -> None:
        """The task is over and its terminal update acknowledged: drop it and its checkpoint."""
        executor = container.executor
        if executor is not None:  # its executor's run stays while the executor needs it
            if container.run_dir is not None:
                self.agent.meta.forget_task(container.run_dir, container.task_id)
        elif container.run_dir is not None:
            self.agent.meta.forget_run(container.run_dir)
        self.agent.updates.forget_task(container.framework_id, container.task_id)
        tasks = self.agent.containers.get(container.framework_id, {})
        if tasks.get(container.task_id) is container:
            del tasks[container.task_id]
        if not tasks:
            self.agent.containers.pop(container.framework_id, None)
        self.agent.completed.append(container)
        del self.agent.completed[:-1000]
        if executor is not None:
            self.agent.executor_room.forget_if_done(executor)

    def checkpoint(self, framework_id: str, task_id: str, record: dict[str, Any]) -> str | None:
        """The status update manager's hook: a record of a task's update stream, before the
        update goes out; why it could not be written (e.g. a full disk), if it could not."""
        container = self.agent.find(framework_id, task_id)
        if container is None or container.run_dir is None:
            return None  # e.g. TASK_LOST of a task this agent does not know: nothing to recover
        try:
            self.agent.meta.append_update(container.run_dir, task_id, record)
        except OSError as exc:
            logger.error("cannot checkpoint the updates of task %s: %s", task_id, exc)
            return str(exc.strerror or exc)
        return None
