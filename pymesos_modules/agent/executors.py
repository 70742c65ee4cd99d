"""Custom executors: launched in their sandbox, subscribed over the v1 executor API, fed tasks.

As Mesos' agent (src/slave/slave.cpp) runs an executor given by
``TaskInfo.executor``:

- the first task of an executor starts it: its ``ExecutorInfo.command`` runs
  in a container of its own (the containerizer's launch, isolators and all)
  with Mesos' executor environment (``MESOS_AGENT_ENDPOINT``, ...); the
  executor is REGISTERING and its tasks wait (queued, TASK_STAGING);
- it SUBSCRIBEs on ``POST /api/v1/executor`` (:mod:`pymesos_modules.http.executor_api`):
  it is RUNNING, gets SUBSCRIBED and a LAUNCH per queued task; later tasks of
  the same executor go to it at once;
- its UPDATEs are the tasks' status updates (their uuids kept, so the
  framework's acknowledgement comes back to it as ACKNOWLEDGED); its MESSAGEs
  go to the framework through the master, the framework's messages come to
  it as MESSAGE;
- it must subscribe within ``--executor_registration_timeout`` or it is
  destroyed and its tasks fail (REASON_EXECUTOR_REGISTRATION_TIMEOUT); a
  SHUTDOWN (framework removal, the agent stopping) gives it
  ``--executor_shutdown_grace_period`` (or ``ExecutorInfo.shutdown_grace_period``)
  before it is killed;
- when its process ends, every task it had not finished gets a terminal
  update from the agent (TASK_FAILED, REASON_EXECUTOR_TERMINATED, unless a
  registration timeout or a kill says otherwise) and the master is told
  (EXITED_EXECUTOR) so it gives the executor's resources back.

The executor's container holds the executor's resources plus those of its
live tasks (the isolators' ``update()`` follows each task), as Mesos.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from pymesos_modules import paths
from pymesos_modules.agent import containers, default_executor
from pymesos_modules.agent.containers import LaunchError
from pymesos_modules.agent.records import (
    NOT_CHECKPOINTED,
    TERMINAL,
    Container,
    Executor,
    ports_of,
    scalars,
)

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent

logger = logging.getLogger(__name__)

#: Mesos' DEFAULT_EXECUTOR_HEARTBEAT_INTERVAL.
HEARTBEAT_INTERVAL = 30.0

#: Task states an executor may report (TASK_STAGING is the agent's alone, as Mesos).
EXECUTOR_STATES = frozenset(
    {
        "TASK_STARTING",
        "TASK_RUNNING",
        "TASK_KILLING",
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_UNREACHABLE",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_UNKNOWN",
    }
)


class EventSink(Protocol):
    """Where an executor's events go: its SUBSCRIBE stream (http/executor_api.py)."""

    closed: bool

    def send(self, event: dict[str, Any]) -> None:
        """Queue one event (never blocks)."""

    def close(self) -> None:
        """End the stream."""


class ExecutorCallError(Exception):
    """A call of the executor API that cannot be taken; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _data(value: Any, field: str) -> str:
    """A base64 ``bytes`` field, checked; ExecutorCallError (400) names the field."""
    if not isinstance(value, str):
        raise ExecutorCallError(400, f"{field} must be a base64 string")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ExecutorCallError(400, f"{field} is not valid base64") from None
    return value


def _seconds(nanos: Any) -> float | None:
    """A DurationInfo's seconds, if it has a number of nanoseconds."""
    value = (nanos or {}).get("nanoseconds") if isinstance(nanos, dict) else None
    return int(value) / 1e9 if isinstance(value, int | float | str) else None


def _duration(seconds: float) -> str:
    """Seconds as Mesos prints a Duration (what executors parse from the environment)."""
    return f"{seconds:g}secs"


class Executors:
    """The agent's custom executors room; all state it changes is the agent's."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    # --- lookups -----------------------------------------------------------------------------

    def find(self, framework_id: str, executor_id: str) -> Executor | None:
        """The executor, if the agent runs it."""
        return self.agent.executors.get(framework_id, {}).get(executor_id)

    def all(self) -> list[Executor]:
        """Every executor the agent runs."""
        return [e for executors in self.agent.executors.values() for e in executors.values()]

    # --- RUN_TASK with TaskInfo.executor -----------------------------------------------------

    def run_task(self, framework_id: str, framework_info: dict[str, Any], task: Container) -> None:
        """Give ``task`` (its record, already tracked by the agent) to its executor: start the
        executor if it is not running here, queue the task until it subscribes."""
        self.run_task_group(framework_id, framework_info, task.info["executor"], [task], False)

    def run_task_group(
        self,
        framework_id: str,
        framework_info: dict[str, Any],
        info: dict[str, Any],
        tasks: list[Container],
        group: bool = True,
    ) -> None:
        """Give ``tasks`` (records tracked by the agent) to the executor ``info`` names, as one
        LAUNCH_GROUP (``group``) or one LAUNCH each; the executor starts if it does not run."""
        executor = self.find(framework_id, info["executor_id"]["value"])
        if executor is not None and executor.state in ("TERMINATING", "TERMINATED"):
            for task in tasks:
                self._fail_task(
                    task, "TASK_LOST", "REASON_EXECUTOR_TERMINATED", "Executor is terminating"
                )
            return
        if executor is None:
            executor = self._start(framework_id, framework_info, info)
        taken = []
        for task in tasks:
            self.attach(executor, task)
            try:
                self.agent.recovery.checkpoint_task(task)
            except LaunchError as exc:
                task.run_dir = None
                self._fail_task(task, "TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED", str(exc))
                continue
            taken.append(task.task_id)
        if group:
            for task_id in taken:
                executor.groups[task_id] = taken
        self.resize(executor)
        if executor.state == "RUNNING":
            self._launch(executor, taken)
        else:
            executor.queued.extend(taken)

    def _start(
        self, framework_id: str, framework_info: dict[str, Any], info: dict[str, Any]
    ) -> Executor:
        agent = self.agent
        assert agent.agent_id is not None
        executor = self.adopt(framework_id, framework_info, info, str(uuid.uuid4()))
        container = executor.container
        container.run_dir = agent.meta.run_dir(
            agent.agent_id, framework_id, executor.executor_id, container.container_id
        )
        container.runner = asyncio.get_running_loop().create_task(
            agent.containerizer.run(container), name=f"executor-{executor.executor_id}"
        )
        timeout = agent.flags.executor_registration_timeout
        executor.timer = asyncio.get_running_loop().call_later(
            timeout, self._registration_timeout, executor
        )
        logger.info("launching executor %s in %s", executor, container.sandbox)
        return executor

    def adopt(
        self,
        framework_id: str,
        framework_info: dict[str, Any],
        info: dict[str, Any],
        container_id: str,
    ) -> Executor:
        """The records of an executor (launched now, or recovered), tracked by the agent."""
        agent = self.agent
        assert agent.agent_id is not None
        executor_id = info["executor_id"]["value"]
        items = info.get("resources") or []
        # The executor's container: its "task" is the executor's command (Mesos names a
        # command executor's container the same way; here the task id is the executor id).
        command = info.get("command")
        if info.get("type") == "DEFAULT":  # ours, as Mesos' mesos-default-executor
            argv = paths.module_command("pymesos_modules.agent.default_executor")
            command = {"shell": False, "value": argv[0], "arguments": argv}
        run_info = {
            "task_id": {"value": executor_id},
            "name": str(info.get("name", "")),
            "command": command,
            "resources": items,
        }
        if "container" in info:
            run_info["container"] = info["container"]
        container = Container(
            framework_id,
            executor_id,
            container_id,
            run_info,
            framework_info,
            containers.sandbox_path(
                agent.work_dir, agent.agent_id, framework_id, executor_id, container_id
            ),
            scalars(items),
            ports_of(items),
            any("revocable" in r for r in items if isinstance(r, dict)),
        )
        checkpointed = bool(framework_info.get("checkpoint"))
        executor = Executor(framework_id, executor_id, info, container, checkpoint=checkpointed)
        container.executor = executor
        agent.executors.setdefault(framework_id, {})[executor_id] = executor
        return executor

    def attach(self, executor: Executor, task: Container) -> None:
        """``task`` (its record) is one of ``executor``'s tasks: it lives in its container."""
        task.executor = executor
        task.container_id = executor.container.container_id
        task.sandbox = executor.container.sandbox
        task.run_dir = executor.container.run_dir
        executor.tasks[task.task_id] = task

    def environment(self, executor: Executor) -> dict[str, str]:
        """Mesos' executor environment (src/slave/slave.cpp executorEnvironment)."""
        agent = self.agent
        container = executor.container
        sandbox = str(container.sandbox)
        env = {
            "MESOS_FRAMEWORK_ID": executor.framework_id,
            "MESOS_EXECUTOR_ID": executor.executor_id,
            "MESOS_DIRECTORY": sandbox,
            "MESOS_SANDBOX": sandbox,
            "MESOS_CONTAINER_ID": container.container_id,
            "MESOS_AGENT_ID": agent.agent_id or "",
            "MESOS_SLAVE_ID": agent.agent_id or "",
            "MESOS_SLAVE_PID": f"slave(1)@{agent.endpoint}",
            "MESOS_AGENT_ENDPOINT": agent.endpoint,
            "MESOS_CHECKPOINT": "1" if executor.checkpoint else "0",
            "MESOS_HTTP_COMMAND_EXECUTOR": "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": _duration(self.grace_period(executor)),
            "LIBPROCESS_PORT": "0",
        }
        authenticator = agent.flags.executor_authenticator
        if authenticator is not None:  # never logged: the environment is not
            env.update(
                authenticator.environment(
                    executor.framework_id, executor.executor_id, container.container_id
                )
            )
        if executor.info.get("type") == "DEFAULT":  # it fetches its tasks' URIs
            env[default_executor.CACHE_DIR_VARIABLE] = str(agent.fetcher.cache_dir)
            env[default_executor.CACHE_SIZE_VARIABLE] = str(agent.fetcher.cache_size)
        if executor.checkpoint:
            env["MESOS_RECOVERY_TIMEOUT"] = _duration(agent.flags.recovery_timeout)
            env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = _duration(
                agent.flags.executor_reregistration_timeout
            )
        return env

    def grace_period(self, executor: Executor) -> float:
        """ExecutorInfo.shutdown_grace_period, else --executor_shutdown_grace_period."""
        given = _seconds(executor.info.get("shutdown_grace_period"))
        return given if given is not None else self.agent.flags.executor_shutdown_grace_period

    # --- the executor API ------------------------------------------------------------------

    def executor_for_call(self, call: dict[str, Any]) -> Executor:
        """The executor a call names; ExecutorCallError (4xx, as Mesos) when it cannot be."""
        ids = []
        for field in ("framework_id", "executor_id"):
            value = (
                (call.get(field) or {}).get("value") if isinstance(call.get(field), dict) else None
            )
            if not isinstance(value, str) or not value:
                raise ExecutorCallError(400, f"Expecting '{field}' to be present")
            ids.append(value)
        if ids[0] not in self.agent.frameworks:
            raise ExecutorCallError(400, "Framework cannot be found")
        executor = self.find(ids[0], ids[1])
        if executor is None:
            raise ExecutorCallError(400, "Executor cannot be found")
        return executor

    def subscribe(self, executor: Executor, body: Any, sink: EventSink) -> None:
        """SUBSCRIBE: the executor is RUNNING; SUBSCRIBED, then its queued tasks as LAUNCH.

        ``body`` is Call.Subscribe: unacknowledged updates are taken again (a
        duplicate uuid is dropped), a task the agent launched but the executor
        does not list is lost on the way (TASK_LOST, REASON_SLAVE_RESTARTED).
        """
        if not isinstance(body, dict):
            raise ExecutorCallError(400, "Expecting 'subscribe' to be present")
        updates = body.get("unacknowledged_updates") or []
        tasks = body.get("unacknowledged_tasks") or []
        if not isinstance(updates, list) or not isinstance(tasks, list):
            raise ExecutorCallError(
                400, "subscribe.unacknowledged_updates and unacknowledged_tasks must be lists"
            )
        statuses = []
        for index, update in enumerate(updates):
            if not isinstance(update, dict) or not isinstance(update.get("status"), dict):
                raise ExecutorCallError(
                    400, f"subscribe.unacknowledged_updates[{index}] needs a 'status'"
                )
            statuses.append(self._checked_status(executor, update["status"]))
        known = {(t.get("task_id") or {}).get("value") for t in tasks if isinstance(t, dict)}
        if executor.state in ("TERMINATING", "TERMINATED"):
            sink.send({"type": "SHUTDOWN"})
            sink.close()
            return
        if executor.sink is not None:
            logger.warning("executor %s subscribed again: closing its old stream", executor)
            executor.sink.close()
        executor.sink = sink
        was_running = executor.state == "RUNNING" or executor.recovered
        executor.state = "RUNNING"
        if executor.timer is not None:
            executor.timer.cancel()
            executor.timer = None
        for status in statuses:
            self._take_update(executor, status)
        if was_running:
            for task in list(executor.tasks.values()):
                launched = task.task_id not in executor.queued
                if launched and task.state == "TASK_STAGING" and task.task_id not in known:
                    self._fail_task(
                        task,
                        "TASK_LOST",
                        "REASON_SLAVE_RESTARTED",
                        "Task launched during agent restart",
                    )
        agent = self.agent
        sink.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "executor_info": executor.info,
                    "framework_info": {
                        **executor.container.framework_info,
                        "id": {"value": executor.framework_id},
                    },
                    "agent_info": agent.agent_info(),
                    "container_id": {"value": executor.container.container_id},
                },
            }
        )
        queued, executor.queued = executor.queued, []
        while queued:
            members = executor.groups.get(queued[0], queued[:1])
            queued = [t for t in queued if t not in members]
            self._launch(executor, members)
        logger.info("executor %s subscribed", executor)

    def update(self, executor: Executor, body: Any) -> None:
        """UPDATE: a status update of one of the executor's tasks, taken as the agent's own."""
        self._require_subscribed(executor, "UPDATE")
        if not isinstance(body, dict) or not isinstance(body.get("status"), dict):
            raise ExecutorCallError(400, "Expecting 'update' to be present")
        self._take_update(executor, self._checked_status(executor, body["status"]))

    def message(self, executor: Executor, body: Any) -> None:
        """MESSAGE: a framework message from the executor, to its scheduler via the master."""
        self._require_subscribed(executor, "MESSAGE")
        if not isinstance(body, dict):
            raise ExecutorCallError(400, "Expecting 'message' to be present")
        data = _data(body.get("data"), "message.data")
        self.agent.background(
            self.agent.registration.post_quietly(
                {
                    "type": "MESSAGE",
                    "message": {
                        "framework_id": {"value": executor.framework_id},
                        "executor_id": {"value": executor.executor_id},
                        "data": data,
                    },
                }
            )
        )

    def disconnected(self, executor: Executor, sink: EventSink) -> None:
        """The executor's stream closed (it exited, or lost the connection)."""
        if executor.sink is sink:
            executor.sink = None

    @staticmethod
    def _require_subscribed(executor: Executor, call: str) -> None:
        if executor.state == "REGISTERING":
            raise ExecutorCallError(403, "Executor is not subscribed")
        if executor.state == "TERMINATED":
            raise ExecutorCallError(400, f"{call} from executor {executor}: it has terminated")

    def _checked_status(self, executor: Executor, status: dict[str, Any]) -> dict[str, Any]:
        """Mesos' checks of an executor's TaskStatus (common/validation.cpp); a copy."""
        status = dict(status)
        task_id = (
            (status.get("task_id") or {}).get("value")
            if isinstance(status.get("task_id"), dict)
            else None
        )
        if not isinstance(task_id, str) or not task_id:
            raise ExecutorCallError(400, "update.status.task_id is required")
        raw = status.get("uuid")
        try:
            decoded = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 16:
            raise ExecutorCallError(400, "Expecting 'uuid' to be present (16 bytes, base64)")
        named = status.get("executor_id")
        if named is not None and (named or {}).get("value") != executor.executor_id:
            raise ExecutorCallError(
                400,
                f"ExecutorID in Call: {executor.executor_id} does not match ExecutorID in "
                f"TaskStatus: {(named or {}).get('value')}",
            )
        source = status.setdefault("source", "SOURCE_EXECUTOR")
        if source != "SOURCE_EXECUTOR":
            raise ExecutorCallError(
                400,
                f"Received Call from executor {executor.executor_id} of framework "
                f"{executor.framework_id} with invalid source, expecting 'SOURCE_EXECUTOR'",
            )
        state = status.get("state")
        if state == "TASK_STAGING":
            raise ExecutorCallError(
                400,
                f"Received TASK_STAGING from executor {executor.executor_id} of framework "
                f"{executor.framework_id} which is not allowed",
            )
        if state not in EXECUTOR_STATES:
            raise ExecutorCallError(400, f"update.status.state {state!r} is not a task state")
        if task_id not in executor.tasks:
            raise ExecutorCallError(
                400, f"task {task_id} is not a task of executor {executor.executor_id}"
            )
        return status

    def _take_update(self, executor: Executor, status: dict[str, Any]) -> None:
        """Record the task's new state and queue the update (its uuid kept) for the master."""
        task = executor.tasks[status["task_id"]["value"]]
        if self.agent.updates.known(executor.framework_id, task.task_id, status["uuid"]):
            return  # a re-subscribing executor sends again what the agent already has
        if task.state in TERMINAL:
            logger.warning(
                "executor %s sent %s for task %s, which already ended %s; dropped",
                executor,
                status.get("state"),
                task.task_id,
                task.state,
            )
            return
        status["executor_id"] = {"value": executor.executor_id}
        container_status = dict(status.get("container_status") or {})
        container_status["container_id"] = {"value": executor.container.container_id}
        status["container_status"] = container_status
        self.agent.task_status.update_from_executor(task, status)
        if task.state in TERMINAL:
            self._task_over(executor, task)

    # --- tasks on an executor ----------------------------------------------------------------

    def _launch(self, executor: Executor, task_ids: list[str]) -> None:
        """LAUNCH each task, or one LAUNCH_GROUP for the tasks of a group (the live ones)."""
        assert executor.sink is not None
        tasks = [executor.tasks[t] for t in task_ids if t in executor.tasks]
        tasks = [t for t in tasks if t.state not in TERMINAL]
        if tasks and tasks[0].task_id in executor.groups:
            group = {"tasks": [t.info for t in tasks]}
            executor.sink.send({"type": "LAUNCH_GROUP", "launch_group": {"task_group": group}})
            return
        for task in tasks:
            executor.sink.send({"type": "LAUNCH", "launch": {"task": task.info}})

    def kill_task(self, task: Container, policy: Any = None) -> None:
        """KILL_TASK of a task on an executor: a queued task is killed here, a launched one is
        the executor's to kill (KILL)."""
        executor = task.executor
        assert executor is not None
        if task.task_id in executor.queued or executor.state != "RUNNING":
            if task.task_id in executor.queued:
                executor.queued.remove(task.task_id)
            self._fail_task(task, "TASK_KILLED", None, "killed before delivery to the executor")
            if not any(t.state not in TERMINAL for t in executor.tasks.values()):
                # Mesos (MESOS-8411): an executor whose every task was killed before delivery
                # is shut down rather than left waiting for work.
                self.shutdown(executor, "all of its tasks were killed before delivery")
            return
        event: dict[str, Any] = {"task_id": {"value": task.task_id}}
        if policy is not None:
            event["kill_policy"] = policy
        assert executor.sink is not None
        executor.sink.send({"type": "KILL", "kill": event})

    def acknowledged(self, task: Container, status: dict[str, Any]) -> None:
        """The framework acknowledged an update the executor sent: tell the executor."""
        executor = task.executor
        if executor is None or status.get("source") != "SOURCE_EXECUTOR":
            return
        if executor.sink is not None and executor.state == "RUNNING":
            executor.sink.send(
                {
                    "type": "ACKNOWLEDGED",
                    "acknowledged": {"task_id": {"value": task.task_id}, "uuid": status["uuid"]},
                }
            )

    def framework_message(self, framework_id: str, executor_id: str, data: str) -> None:
        """The framework's message for an executor (dropped, as Mesos, unless it runs)."""
        executor = self.find(framework_id, executor_id)
        if executor is None or executor.state != "RUNNING" or executor.sink is None:
            logger.info(
                "dropping a framework message for executor %s of framework %s: not running",
                executor_id,
                framework_id,
            )
            return
        executor.sink.send({"type": "MESSAGE", "message": {"data": data}})

    def _fail_task(self, task: Container, state: str, reason: str | None, message: str) -> None:
        """A terminal update from the agent for a task the executor will not finish."""
        self.agent.task_status.update(task, state, message, reason, "SOURCE_SLAVE")
        if task.executor is not None:
            self._task_over(task.executor, task)
        else:
            self.agent.task_status.finished(task)

    def _task_over(self, executor: Executor, task: Container) -> None:
        self.resize(executor)
        self.agent.task_status.finished(task)

    def resize(self, executor: Executor) -> None:
        """The executor's container holds its own resources plus its live tasks' (Mesos)."""
        total = scalars(executor.info.get("resources") or [])
        for task in executor.tasks.values():
            if task.state not in TERMINAL:
                for name, amount in task.resources.items():
                    total[name] = total.get(name, 0.0) + amount
        self.agent.containerizer.resize(executor.container, total)

    # --- ending ------------------------------------------------------------------------------

    def _registration_timeout(self, executor: Executor) -> None:
        executor.timer = None
        if executor.state != "REGISTERING":
            return
        if executor.recovered:
            timeout = self.agent.flags.recovery_timeout
            reason, verb = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT", "reregister"
        else:
            timeout = self.agent.flags.executor_registration_timeout
            reason, verb = "REASON_EXECUTOR_REGISTRATION_TIMEOUT", "register"
        logger.warning(
            "executor %s did not subscribe within %s; destroying it", executor, _duration(timeout)
        )
        executor.state = "TERMINATING"
        message = f"Executor did not {verb} within {_duration(timeout)}"
        executor.termination = ("TASK_FAILED", reason, message)
        self.agent.containerizer.kill(executor.container, grace=0.0, source="SOURCE_SLAVE")

    def recovered(self, executor: Executor, alive: bool) -> None:
        """A checkpointed executor the restarted agent took back: a checkpointing framework's
        live executor has --recovery_timeout to subscribe again; any other is killed and its
        unfinished tasks are lost, as Mesos."""
        executor.recovered = True
        if not alive:
            return  # its end is read from its launcher's record
        if executor.checkpoint:
            executor.timer = asyncio.get_running_loop().call_later(
                self.agent.flags.recovery_timeout, self._registration_timeout, executor
            )
            return
        executor.state = "TERMINATING"
        executor.termination = ("TASK_LOST", "REASON_SLAVE_RESTARTED", NOT_CHECKPOINTED)
        self.agent.containerizer.kill(executor.container, grace=0.0, source="SOURCE_SLAVE")

    def shutdown(self, executor: Executor, why: str, termination: Any = None) -> None:
        """SHUTDOWN: ask the executor to end; it is killed after its grace period."""
        if executor.state in ("TERMINATING", "TERMINATED"):
            return
        logger.info("shutting down executor %s: %s", executor, why)
        if termination is not None:
            executor.termination = termination
        subscribed = executor.state == "RUNNING" and executor.sink is not None
        executor.state = "TERMINATING"
        if executor.timer is not None:
            executor.timer.cancel()
            executor.timer = None
        if not subscribed:
            self.agent.containerizer.kill(executor.container, grace=0.0, source="SOURCE_SLAVE")
            return
        assert executor.sink is not None
        executor.sink.send({"type": "SHUTDOWN"})
        self.agent.background(self._destroy_after(executor, self.grace_period(executor)))

    async def _destroy_after(self, executor: Executor, grace: float) -> None:
        container = executor.container
        try:
            await asyncio.wait_for(asyncio.shield(container.finished.wait()), grace)
        except TimeoutError:
            logger.info("executor %s outlived its %.1f s grace period; killing it", executor, grace)
            self.agent.containerizer.kill(container, grace=0.0, source="SOURCE_SLAVE")

    def shutdown_framework(self, framework_id: str) -> None:
        """The framework is gone: shut down each of its executors."""
        for executor in list(self.agent.executors.get(framework_id, {}).values()):
            self.shutdown(
                executor, "framework shut down", ("TASK_KILLED", None, "framework shut down")
            )

    def ended(
        self, executor: Executor, state: str, message: str | None, reason: str | None
    ) -> None:
        """The executor's container ended (``state`` etc. say how, as for a command task):
        its unfinished tasks get their terminal update, the master hears of it."""
        executor.state = "TERMINATED"
        if executor.timer is not None:
            executor.timer.cancel()
            executor.timer = None
        if executor.sink is not None:
            executor.sink.close()
            executor.sink = None
        if executor.termination is not None:
            state, reason, message = executor.termination
        elif state != "TASK_KILLED":
            state = "TASK_FAILED"
            reason = reason if reason and "LIMITATION" in reason else "REASON_EXECUTOR_TERMINATED"
            message = f"Executor terminated: {message}" if message else "Executor terminated"
        executor.queued = []
        for task in list(executor.tasks.values()):
            if task.state not in TERMINAL:
                self.agent.task_status.update(
                    task, state, message or "Executor terminated", reason, "SOURCE_SLAVE"
                )
                self.agent.task_status.finished(task)
        container = executor.container
        logger.info("executor %s terminated: %s", executor, message or state)
        self.agent.background(
            self.agent.registration.post_quietly(
                {
                    "type": "EXITED_EXECUTOR",
                    "exited_executor": {
                        "framework_id": {"value": executor.framework_id},
                        "executor_id": {"value": executor.executor_id},
                        "status": container.wait_status
                        if container.wait_status is not None
                        else -1,
                    },
                }
            )
        )

    def gone(self, executor: Executor) -> None:
        """The executor's container is cleaned up: the agent stops tracking it once its tasks
        are forgotten (their updates acknowledged), and forgets its checkpoint then."""
        executors = self.agent.executors.get(executor.framework_id, {})
        if executors.get(executor.executor_id) is executor:
            del executors[executor.executor_id]
            if not executors:
                self.agent.executors.pop(executor.framework_id, None)
        self.agent.completed_executors.append(executor)
        del self.agent.completed_executors[:-100]
        self.forget_if_done(executor)

    def forget_if_done(self, executor: Executor) -> None:
        """Drop the executor's run from the checkpoint once it ended and no task needs it."""
        container = executor.container
        if executor.state != "TERMINATED" or not container.finished.is_set():
            return
        if any(
            self.agent.find(executor.framework_id, t.task_id) is t for t in executor.tasks.values()
        ):
            return  # a task still waits for its terminal update's acknowledgement
        if container.run_dir is not None:
            self.agent.meta.forget_run(container.run_dir)
            container.run_dir = None
