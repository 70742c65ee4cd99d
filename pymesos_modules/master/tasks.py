"""The tasks room: launching tasks and task groups, their status updates, kills and reconciliation.

An ACCEPT's operations become launch units (one task, or one task group with
its executor) that launch all or nothing out of the offers the offers room
claimed; status updates from agents move tasks along and give back what ended
tasks (and the executor of a group's last task) held; KILL, RECONCILE,
ACKNOWLEDGE, MESSAGE and SHUTDOWN are answered here, as Mesos' master does.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import time
from typing import Any

from pymesos_modules.kinds.authorizer import Action
from pymesos_modules.master import resources as res
from pymesos_modules.master.base import CallError, _id, _time_info
from pymesos_modules.master.executors import ExecutorsRoom, _executor_id
from pymesos_modules.master.offers import Claim, InvalidOffers
from pymesos_modules.master.state import (
    TASK_STATES,
    TERMINAL_STATES,
    Agent,
    Executor,
    Framework,
    Task,
    TaskState,
)

logger = logging.getLogger(__name__)


def _launch_units(
    body: dict[str, Any],
) -> list[tuple[dict[str, Any] | None, list[Any], bool]]:
    """An ACCEPT's operations as launch units; CallError (400) names an operation we lack.

    A LAUNCH contributes one unit per task; a LAUNCH_GROUP one unit for its
    whole group, which launches all or nothing (Mesos' task group semantics):
    (its custom executor or None, [task], False) or (executor, tasks, True).
    """
    operations = body.get("operations", [])
    if not isinstance(operations, list):
        raise CallError(400, "accept.operations must be a list")
    units: list[tuple[dict[str, Any] | None, list[Any], bool]] = []
    for op in operations:
        if not isinstance(op, dict) or op.get("type") not in ("LAUNCH", "LAUNCH_GROUP"):
            raise CallError(400, f"unsupported offer operation {op!r}")
        if op["type"] == "LAUNCH":
            infos = (op.get("launch") or {}).get("task_infos", [])
            if not isinstance(infos, list):
                raise CallError(400, "launch.task_infos must be a list")
            units += [(_task_executor(t), [t], False) for t in infos]
        else:
            group_body = op.get("launch_group") or {}
            group = (group_body.get("task_group") or {}).get("tasks")
            if not isinstance(group, list) or not group:
                raise CallError(400, "launch_group.task_group.tasks must be a non-empty list")
            # A missing or bad executor fails the group below (TASK_ERROR), as Mesos.
            executor = group_body.get("executor")
            units.append((executor if isinstance(executor, dict) else {}, group, True))
    return units


def _task_executor(task: Any) -> dict[str, Any] | None:
    """A LAUNCH task's custom executor (TaskInfo.executor), if it names one."""
    executor = task.get("executor") if isinstance(task, dict) else None
    return executor if isinstance(executor, dict) else None


#: Seeded once from the OS: status update uuids need to be unique, not secret, and one
#: generator call is a tenth of uuid.uuid4()'s cost on a path taken twice per task.
_UUIDS = random.Random(os.urandom(32))


def status_uuid() -> str:
    """A random (version 4) UUID's 16 bytes in base64: a status update's ``uuid``, as Mesos'."""
    bits = _UUIDS.getrandbits(128)
    # the version (4) and variant (10) bits of RFC 4122
    bits = (bits & ~(0xF << 76) | (0x4 << 76)) & ~(0x3 << 62) | (0x2 << 62)
    return base64.b64encode(bits.to_bytes(16, "big")).decode()


def _agent_of(event: dict[str, Any]) -> str | None:
    """The agent id an UPDATE event's status names."""
    return (event["update"]["status"].get("agent_id") or {}).get("value")


class TasksRoom(ExecutorsRoom):
    """Launch (tasks and groups), status updates, and the task calls of a framework."""

    def _call_accept(self, framework: Framework, body: dict[str, Any]) -> None:
        refuse = self._filters(body)
        offer_ids = self._offer_ids(body)
        units = _launch_units(body)
        try:
            claim = self._claim_offers(framework, offer_ids)
        except InvalidOffers as exc:
            for _, unit, _ in units:
                for task in unit:
                    self._drop(framework, task, TaskState.DROPPED, exc.reason, exc.message)
            return
        seen: set[str] = set()
        for executor, unit, is_group in units:
            if executor is None and not is_group:
                self._launch_one(framework, claim, unit[0], seen)
            else:
                self._launch_unit(framework, claim, executor, unit, seen, is_group)
        self._give_back(framework, claim, refuse)

    def _launch_one(self, framework: Framework, claim: Claim, task: Any, seen: set[str]) -> None:
        """Launch one task of a LAUNCH that names no executor of its own (the common unit).

        What :meth:`_launch_unit` does for it, without the bookkeeping a unit of
        several parts needs to undo: :meth:`_launch` takes nothing when it fails.
        """
        if self.authorizer is not None:
            user = self._task_user(framework, task)
            if not self._authorized(Action.RUN_TASK, framework.info.get("principal"), user):
                message = f"Not authorized to launch as user '{user}'"
                self._drop(framework, task, TaskState.ERROR, "REASON_TASK_UNAUTHORIZED", message)
                return
        try:
            made = self._launch(
                framework, claim.agent, claim.role, task, claim.pieces, seen, claim.ports
            )
        except CallError as exc:
            self._drop(framework, task, TaskState.ERROR, "REASON_TASK_INVALID", exc.message)
            return
        if made.ports:
            claim.ports = res.subtract_ranges(claim.ports, made.ports)
        self._start(framework, claim.agent, made)

    def _launch_unit(
        self,
        framework: Framework,
        claim: Claim,
        executor: dict[str, Any] | None,
        unit: list[Any],
        seen: set[str],
        is_group: bool,
    ) -> None:
        """Launch one task (on its custom ``executor``, if any), or one task group, out of
        ``claim``: all or nothing.

        A unit that fails takes nothing of the claim; its tasks get TASK_ERROR.
        """
        agent, role = claim.agent, claim.role
        # What a failed unit gives back: the pieces as they were (the ids it added
        # to ``seen`` are those of ``launched``, taken out again below).
        before = ([list(p) for p in claim.pieces], claim.ports)
        launched: list[Task] = []
        failure: tuple[str, str] | None = None
        new_executor: Executor | None = None
        checked = self.authorizer is not None
        principal = framework.info.get("principal")
        # A group is authorized as a whole before it is validated, as Mesos.
        users = [self._task_user(framework, t) for t in unit] if is_group and checked else []
        denied = [u for u in users if not self._authorized(Action.RUN_TASK, principal, u)]
        if denied:
            failure = "UNAUTHORIZED", f"Not authorized to launch as user '{denied[0]}'"
        elif executor is not None:
            try:
                new_executor = self._group_executor(
                    framework, agent, executor, unit, claim.pieces, claim.ports, role, is_group
                )
            except CallError as exc:
                failure = "INVALID", exc.message
            else:
                if new_executor is not None:
                    claim.ports = res.subtract_ranges(claim.ports, new_executor.ports)
        for task in unit if failure is None else ():
            if checked and not is_group:
                user = self._task_user(framework, task)
                if not self._authorized(Action.RUN_TASK, principal, user):
                    failure = "UNAUTHORIZED", f"Not authorized to launch as user '{user}'"
                    break
            try:
                made = self._launch(framework, agent, role, task, claim.pieces, seen, claim.ports)
            except CallError as exc:
                failure = "INVALID", exc.message
                break
            launched.append(made)
            if made.ports:
                claim.ports = res.subtract_ranges(claim.ports, made.ports)
        if failure is None:
            if executor is not None:
                key = (framework.framework_id, agent.agent_id, _executor_id(executor))
                if new_executor is not None:
                    self.executors[key] = new_executor
                self.executors[key].task_ids.update(t.task_id for t in launched)
            run_group = getattr(agent.backend, "run_task_group", None)
            if is_group and executor is not None and run_group is not None:
                # One group for its executor (Mesos' RunTaskGroupMessage): a real agent
                # runs it on that executor; a simulated one gets the tasks one by one.
                for started in launched:
                    self._track(framework, agent, started)
                run_group(framework.framework_id, executor, [t.info for t in launched])
                return
            for started in launched:
                self._start(framework, agent, started)
            return
        # nothing of a failed unit is taken
        claim.pieces[:], claim.ports = before
        seen.difference_update(t.task_id for t in launched)
        kind, message = failure
        reason = f"REASON_TASK_GROUP_{kind}" if is_group else f"REASON_TASK_{kind}"
        if is_group:
            message = f"Task group is invalid: {message}" if kind == "INVALID" else message
        for task in unit:
            self._drop(framework, task, TaskState.ERROR, reason, message)

    @staticmethod
    def _task_user(framework: Framework, task: Any) -> str:
        """The user a task runs as: its command's user, else the framework's (as Mesos)."""
        command = task.get("command") if isinstance(task, dict) else None
        user = command.get("user") if isinstance(command, dict) else None
        return user if isinstance(user, str) else str(framework.info.get("user", ""))

    def _decorate(self, framework: Framework, agent: Agent, info: dict[str, Any]) -> dict[str, Any]:
        """Run the master hooks' label decorators; a failing hook is logged and skipped."""
        return self.hook_chain.decorate_master_task(info, framework.info, agent.agent_id)

    def _launch(
        self,
        framework: Framework,
        agent: Agent,
        role: str,
        info: dict[str, Any],
        pieces: list[list],
        seen: set[str],
        ports: res.Ranges,
    ) -> Task:
        """Validate one task against the offered ``pieces``/``ports`` and take its share.

        Only ``pieces`` and ``seen`` change; :meth:`_start` makes the task real.
        """
        if not isinstance(info, dict):
            raise CallError(400, "task_info must be an object")
        task_id = _id(info.get("task_id"), "task_id")
        if task_id in seen or task_id in framework.tasks:
            raise CallError(400, f"task id '{task_id}' is already used by this framework")
        named = info.get("agent_id")
        # The offers' agent id is valid: only another one needs checking.
        if (not isinstance(named, dict) or named.get("value") != agent.agent_id) and _id(
            named, "task.agent_id"
        ) != agent.agent_id:
            raise CallError(400, f"task '{task_id}' names another agent than its offers")
        try:
            wanted = res.from_json(info.get("resources", []), f"task '{task_id}' resources")
        except res.ResourceError as exc:
            raise CallError(400, str(exc)) from None
        if wanted.ports and not res.contains_ranges(ports, wanted.ports):
            raise CallError(400, f"task '{task_id}' asks for ports outside its offers")
        if not self._known_names.issuperset(wanted.scalars):
            raise CallError(400, f"task '{task_id}' uses more resources than its offers hold")
        taken = self._take(pieces, wanted, info.get("resources", []), f"task '{task_id}'")
        seen.add(task_id)
        if self.hook_chain:
            info = self._decorate(framework, agent, info)
        task = Task(
            task_id,
            framework.framework_id,
            agent.agent_id,
            str(info.get("name", "")),
            role,
            TaskState.STAGING,
            wanted,
            taken,
            wanted.ports,
            info,
        )
        return task

    def _track(self, framework: Framework, agent: Agent, task: Task) -> None:
        framework.tasks[task.task_id] = task
        agent.tasks[task.task_id] = task

    def _start(self, framework: Framework, agent: Agent, task: Task) -> None:
        self._track(framework, agent, task)
        agent.backend.run_task(framework.framework_id, task.info)

    def _drop(
        self, framework: Framework, task: Any, state: TaskState, reason: str, message: str
    ) -> None:
        task_id = task.get("task_id", {}).get("value", "") if isinstance(task, dict) else ""
        agent_id = task.get("agent_id") if isinstance(task, dict) else None
        self.counters["tasks_error" if state == TaskState.ERROR else "tasks_dropped"] += 1
        status = {
            "task_id": {"value": task_id},
            "state": str(state),
            "reason": reason,
            "message": message,
            "source": "SOURCE_MASTER",
            "timestamp": time.time(),
        }
        if agent_id:
            status["agent_id"] = agent_id
        self._send(framework, {"type": "UPDATE", "update": {"status": status}})

    def _call_acknowledge(self, framework: Framework, body: dict[str, Any]) -> None:
        ack = body.get("uuid")
        if not isinstance(ack, str):
            raise CallError(400, "acknowledge.uuid must be a base64 string")
        event = framework.unacknowledged.pop(ack, None)
        if event is None:
            logger.debug("acknowledgement of unknown update %s", ack)
            return
        status = event["update"]["status"]
        agent = self.agents.get((status.get("agent_id") or {}).get("value", ""))
        acknowledge = getattr(agent.backend, "acknowledge", None) if agent else None
        if acknowledge is not None:  # the agent's status update manager stops retrying it
            acknowledge(framework.framework_id, status["task_id"]["value"], ack)

    def _call_kill(self, framework: Framework, body: dict[str, Any]) -> None:
        task_id = _id(body.get("task_id"), "kill.task_id")
        task = framework.tasks.get(task_id)
        if task is None or task.state.terminal:
            state = TaskState.LOST if task is None else task.state
            self._send(
                framework,
                {
                    "type": "UPDATE",
                    "update": {
                        "status": {
                            "task_id": {"value": task_id},
                            "state": str(state),
                            "reason": "REASON_RECONCILIATION",
                            "source": "SOURCE_MASTER",
                            "message": "kill of a task the master does not know as running",
                        }
                    },
                },
            )
            return
        self.agents[task.agent_id].backend.kill_task(framework.framework_id, task_id)

    def _call_reconcile(self, framework: Framework, body: dict[str, Any]) -> None:
        wanted = body.get("tasks", [])
        if not isinstance(wanted, list):
            raise CallError(400, "reconcile.tasks must be a list")
        if not wanted:  # implicit: everything the master knows
            statuses = [self._status_of(t) for t in framework.tasks.values()]
        else:
            statuses = []
            for index, entry in enumerate(wanted):
                where = f"reconcile.tasks[{index}]"
                if not isinstance(entry, dict):
                    raise CallError(400, f"{where} must be an object with a task_id")
                task_id = _id(entry.get("task_id"), f"{where}.task_id")
                agent_id = entry.get("agent_id")
                agent_id = None if agent_id is None else _id(agent_id, f"{where}.agent_id")
                task = framework.tasks.get(task_id)
                if task is not None:
                    statuses.append(self._status_of(task))
                elif (status := self._unknown_task(framework, task_id, agent_id)) is not None:
                    statuses.append(status)
        for status in statuses:
            status = {k: v for k, v in status.items() if k != "uuid"}
            status["reason"] = "REASON_RECONCILIATION"
            self._send(framework, {"type": "UPDATE", "update": {"status": status}})

    def _unknown_task(
        self, framework: Framework, task_id: str, agent_id: str | None
    ) -> dict[str, Any] | None:
        """What reconciliation says of a task this master does not know, as Mesos says it.

        None while its agent may still re-register after a master failover (the
        answer comes when it does, or when it is found unreachable).  A
        PARTITION_AWARE framework hears TASK_UNREACHABLE (agent unreachable),
        TASK_GONE (agent registered without it) or TASK_UNKNOWN; others TASK_LOST.
        """
        if agent_id is not None and agent_id in self.recovering:
            return None
        aware = "PARTITION_AWARE" in framework.capabilities
        status: dict[str, Any] = {
            "task_id": {"value": task_id},
            "reason": "REASON_RECONCILIATION",
            "source": "SOURCE_MASTER",
        }
        if agent_id is not None:
            status["agent_id"] = {"value": agent_id}
        unreachable = self.registrar.unreachable.get(agent_id or "")
        if unreachable is not None:
            state = TaskState.UNREACHABLE
            since = float(unreachable.get("since", 0.0))
            status["unreachable_time"] = _time_info(since)
        elif agent_id is not None and agent_id in self.agents:
            state = TaskState.GONE
        else:
            state = TaskState.UNKNOWN
        return {**status, "state": str(state if aware else TaskState.LOST)}

    def _status_of(self, task: Task) -> dict[str, Any]:
        return task.status or {
            "task_id": {"value": task.task_id},
            "state": str(task.state),
            "agent_id": {"value": task.agent_id},
            "source": "SOURCE_MASTER",
        }

    def _call_message(self, framework: Framework, body: dict[str, Any]) -> None:
        agent_id = _id(body.get("agent_id"), "message.agent_id")
        executor_id = _id(body.get("executor_id"), "message.executor_id")
        agent = self.agents.get(agent_id)
        if agent is None:
            raise CallError(400, f"unknown agent {agent_id}")
        try:
            data = base64.b64decode(body.get("data", ""), validate=True)
        except (ValueError, TypeError):
            raise CallError(400, "message.data must be base64") from None
        agent.backend.message(framework.framework_id, executor_id, data)

    def _call_shutdown(self, framework: Framework, body: dict[str, Any]) -> None:
        """SHUTDOWN: the agent shuts one executor down (Mesos' ShutdownExecutorMessage); a
        backend without that call gets a kill of each of the executor's tasks."""
        agent_id = _id(body.get("agent_id"), "shutdown.agent_id")
        executor_id = _id(body.get("executor_id"), "shutdown.executor_id")
        if agent_id not in self.agents:
            raise CallError(400, f"unknown agent {agent_id}")
        backend = self.agents[agent_id].backend
        shutdown = getattr(backend, "shutdown_executor", None)
        if shutdown is not None:
            shutdown(framework.framework_id, executor_id)
            return
        for task in list(framework.tasks.values()):
            executor = _task_executor(task.info)
            runs_on = _executor_id(executor) if executor else task.task_id
            if task.agent_id == agent_id and not task.state.terminal and runs_on == executor_id:
                backend.kill_task(framework.framework_id, task.task_id)

    def status_update(self, agent_id: str, framework_id: str, status: dict[str, Any]) -> bool:
        """A status update from an agent; forwarded to the framework. False if invalid."""
        agent = self.agents.get(agent_id)
        framework = self.frameworks.get(framework_id)
        if agent is None or framework is None:
            self.counters["invalid_status_updates"] += 1
            return False
        ack = status.get("uuid")
        if ack is not None:
            pending = framework.unacknowledged.get(ack)
            # An update is only taken from the agent that holds the task (Mesos checks
            # the sender is the task's agent): another agent cannot report on it.
            if pending is not None and _agent_of(pending) == agent_id:
                self._send(framework, pending)  # a retry of an update not acknowledged yet
                return True
        task_id = (status.get("task_id") or {}).get("value")
        task = framework.tasks.get(task_id) if task_id else None
        if task is None or task.agent_id != agent_id:
            self.counters["invalid_status_updates"] += 1
            return False
        self.counters["valid_status_updates"] += 1
        status = {**status, "agent_id": {"value": agent_id}}
        if ack is None:
            status["uuid"] = status_uuid()
        if "timestamp" not in status:
            status["timestamp"] = time.time()
        if "source" not in status:
            status["source"] = "SOURCE_EXECUTOR"
        self._update(task, status, release=True)
        return True

    def _update(self, task: Task, status: dict[str, Any], release: bool) -> None:
        framework = self.frameworks.get(task.framework_id)
        state = TASK_STATES.get(status.get("state"))  # type: ignore[arg-type]
        if state is None:
            self.counters["invalid_status_updates"] += 1
            return
        was_terminal = task.state in TERMINAL_STATES
        task.state, task.status = state, status
        if state in TERMINAL_STATES and not was_terminal:
            key = f"tasks_{state.name.lower()}"
            if key in self.counters:
                self.counters[key] += 1
            agent = self.agents.get(task.agent_id)
            if agent is not None:
                agent.tasks.pop(task.task_id, None)
                if task.ports:
                    agent.free_ports = tuple(sorted(agent.free_ports + task.ports))
                if release and framework is not None:
                    self._recover(
                        framework,
                        agent,
                        framework.handle,
                        agent.handle,
                        self.roles.add(task.role),
                        task.pieces,
                        0.0,
                    )
            if framework is not None:
                framework.tasks.pop(task.task_id, None)
                framework.completed.append(task)
                del framework.completed[:-1000]
            self._executor_task_ended(task, release)
            if agent is not None:  # its resources (and ports) are free again
                self._allocate_on(agent.handle)
        if framework is None:
            return
        event = {"type": "UPDATE", "update": {"status": status}}
        if "uuid" in status:
            framework.unacknowledged[status["uuid"]] = event
        self._send(framework, event)
