"""The containerizer: one container per task, from RUN_TASK to its terminal update.

One coroutine per task (:meth:`Containerizer._run`): checkpoint, sandbox,
isolators' prepare, start under a launcher (:mod:`.launcher`, through
:mod:`.containers`), isolate, wait for the launcher, last watch, isolators'
cleanup, the terminal update.  Kills are SIGTERM to the task's process group,
SIGKILL once the grace period is over.  The isolators' periodic watch
(limitations) and usage live here too: they are questions about containers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymesos_modules.agent import checkpoint, containers, health
from pymesos_modules.agent.checkpoint import CheckpointError, Termination
from pymesos_modules.agent.containers import LaunchError
from pymesos_modules.agent.health import HealthChecks
from pymesos_modules.agent.modules import call
from pymesos_modules.agent.records import TERMINAL, Container, ports_of, scalars
from pymesos_modules.kinds.isolator import ContainerConfig

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent

logger = logging.getLogger(__name__)


def kill_grace(policy: Any) -> float | None:
    """KillPolicy.grace_period in seconds, if given."""
    if not isinstance(policy, dict):
        return None
    nanos = (policy.get("grace_period") or {}).get("nanoseconds")
    return int(nanos) / 1e9 if isinstance(nanos, int | float | str) else None


def executor_problem(info: Any) -> str | None:
    """What is wrong with a TaskInfo.executor this agent cannot run, or None (or no executor)."""
    if info is None:
        return None
    if not isinstance(info, dict):
        return "TaskInfo.executor must be an ExecutorInfo object"
    executor_id = (
        (info.get("executor_id") or {}).get("value")
        if isinstance(info.get("executor_id"), dict)
        else None
    )
    if not isinstance(executor_id, str) or not path_safe(executor_id):
        return "TaskInfo.executor.executor_id must be a valid id (no '/', '.', '..' or NUL)"
    kind = info.get("type", "CUSTOM")
    if kind not in ("CUSTOM", "DEFAULT"):
        return f"executor '{executor_id}' is of an unknown type {kind!r}"
    if kind == "CUSTOM" and not isinstance(info.get("command"), dict):
        return f"executor '{executor_id}' has no 'command' (a CUSTOM executor needs one)"
    return None


def path_safe(ident: str) -> bool:
    """True when ``ident`` can be one folder name under work_dir."""
    return ident not in ("", ".", "..") and "/" not in ident and "\0" not in ident


class Containerizer:
    """The agent's containers room; all state it changes is the agent's."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def _admit(self, framework_id: str, task: Any, executor: Any) -> str | None:
        """The id of a task the agent can take (with ``executor``, None: its own), or None:
        the task was ignored or answered TASK_FAILED (the message says why)."""
        task_id = (task.get("task_id") or {}).get("value") if isinstance(task, dict) else None
        if not framework_id or not isinstance(task_id, str) or not task_id:
            logger.warning("ignoring a task without framework or task id: %s", task)
            return None
        if self.agent.find(framework_id, task_id) is not None:
            logger.warning("ignoring task %s: already running here", task_id)
            return None
        if self.agent.agent_id is None:
            logger.warning("ignoring task %s: not registered", task_id)
            return None
        bad = next((i for i in (framework_id, task_id) if not path_safe(i)), None)
        # The ids name sandbox folders: refuse what could leave work_dir (as Mesos does).
        problem = (
            f"id '{bad}' cannot name a sandbox folder ('/', '.', '..' or NUL)"
            if bad is not None
            else executor_problem(executor)
        )
        if problem is None:
            try:
                health.parse(task.get("health_check"))
                health.parse(task.get("check"), "check")
            except ValueError as exc:
                problem = f"task '{task_id}': {exc}"
        if problem is not None:
            self.agent.task_status.update_without_container(
                framework_id, task_id, "TASK_FAILED", "REASON_TASK_INVALID", problem
            )
            return None
        return task_id

    def _track(
        self, framework_id: str, framework_info: dict[str, Any], task: dict[str, Any]
    ) -> Container:
        """A task's record (hooks' decorators applied), tracked by the agent."""
        self.agent.frameworks[framework_id] = framework_info
        task = self.agent.modules.hook_chain.decorate_agent_task(
            task, framework_info, self.agent.agent_info()
        )
        container = self.new_container(framework_id, framework_info, task, str(uuid.uuid4()))
        self.agent.containers.setdefault(framework_id, {})[container.task_id] = container
        return container

    def run_task_group(
        self,
        framework_id: str,
        framework_info: dict[str, Any],
        executor: dict[str, Any],
        tasks: list[dict[str, Any]],
    ) -> None:
        """RUN_TASK_GROUP: the group's tasks, together, on ``executor`` (as LAUNCH_GROUP)."""
        admitted = [t for t in tasks if self._admit(framework_id, t, executor) is not None]
        records = [self._track(framework_id, framework_info, t) for t in admitted]
        if records:
            self.agent.executor_room.run_task_group(framework_id, framework_info, executor, records)

    def run_task(
        self, framework_id: str, framework_info: dict[str, Any], task: dict[str, Any]
    ) -> None:
        """RUN_TASK: start the task's coroutine (its updates report how it goes)."""
        task_id = self._admit(framework_id, task, task.get("executor"))
        if task_id is None:
            return
        container = self._track(framework_id, framework_info, task)
        if "executor" in task:
            self.agent.executor_room.run_task(framework_id, framework_info, container)
            return
        container.run_dir = self.agent.meta.run_dir(
            self.agent.agent_id, framework_id, container.executor_id, container.container_id
        )
        container.runner = asyncio.get_running_loop().create_task(
            self.run(container), name=f"task-{task_id}"
        )

    def new_container(
        self,
        framework_id: str,
        framework_info: dict[str, Any],
        task: dict[str, Any],
        container_id: str,
    ) -> Container:
        """The Container of a task (its sandbox in Mesos' layout, its resources)."""
        assert self.agent.agent_id is not None
        task_id = task["task_id"]["value"]
        items = task.get("resources") or []
        return Container(
            framework_id,
            task_id,
            container_id,
            task,
            framework_info,
            containers.sandbox_path(
                self.agent.work_dir, self.agent.agent_id, framework_id, task_id, container_id
            ),
            scalars(items),
            ports_of(items),
            any("revocable" in r for r in items if isinstance(r, dict)),
        )

    def kill_task(self, framework_id: str, task_id: str, policy: Any = None) -> None:
        """KILL_TASK: SIGTERM, SIGKILL after the grace period; unknown task -> TASK_LOST."""
        container = self.agent.find(framework_id, task_id)
        if container is None:
            self.agent.task_status.update_without_container(
                framework_id,
                task_id,
                "TASK_LOST",
                "REASON_RECONCILIATION",
                "kill of a task this agent does not run",
            )
            return
        if container.state in TERMINAL:
            return  # its terminal update is on its way already
        if container.on_executor:
            self.agent.executor_room.kill_task(container, policy)
            return
        self.kill(container, grace=kill_grace(policy))

    def kill(
        self,
        container: Container,
        grace: float | None = None,
        reason: str | None = None,
        message: str | None = None,
        source: str = "SOURCE_EXECUTOR",
    ) -> None:
        """Kill a task: SIGTERM its process group now, SIGKILL once the grace period is over.

        A task on a custom executor is the executor's to kill (KILL event).
        """
        if container.on_executor:
            if container.state not in TERMINAL:
                self.agent.executor_room.kill_task(container)
            return
        if container.kill_requested:
            return
        if grace is None:
            grace = kill_grace(container.info.get("kill_policy"))
        if grace is None:
            grace = self.agent.flags.executor_shutdown_grace_period
        container.kill_requested = True
        container.kill_grace = grace
        container.kill_reason = reason
        container.kill_message = message
        container.kill_source = source
        if container.running:
            self.agent.background(self._terminate(container))

    async def _terminate(self, container: Container) -> None:
        process = container.process
        assert process is not None
        containers.signal_group(process, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(container.finished.wait()), container.kill_grace)
        except TimeoutError:
            logger.info(
                "task %s outlived its %.1f s grace period; SIGKILL",
                container.task_id,
                container.kill_grace,
            )
            containers.signal_group(process, signal.SIGKILL)

    def shutdown_framework(self, framework_id: str) -> None:
        """SHUTDOWN_FRAMEWORK: kill every task of the framework, shut its executors down."""
        self.agent.executor_room.shutdown_framework(framework_id)
        for container in list(self.agent.containers.get(framework_id, {}).values()):
            if not container.on_executor:
                self.kill(container, message="framework shut down")

    def _environment(self, container: Container, isolator_env: dict[str, str]) -> dict[str, str]:
        """The task's environment (docs/agent.md lists every variable and the order)."""
        sandbox = str(container.sandbox)
        env = dict(os.environ)
        if container.executor is not None:
            env.update(self.agent.executor_room.environment(container.executor))
        else:
            env.update(self._task_environment(container, sandbox))
        env.update(containers.port_environment(container.ports))
        env.update(isolator_env)
        env.update(containers.command_environment(container.info.get("command")))
        decorated = self.agent.modules.hook_chain.decorate_environment(container.info, env)
        return {str(k): str(v) for k, v in decorated.items()}

    def _task_environment(self, container: Container, sandbox: str) -> dict[str, str]:
        """What Mesos' command executor gives a task."""
        return dict(
            {
                "MESOS_SANDBOX": sandbox,
                "MESOS_DIRECTORY": sandbox,
                "MESOS_TASK_ID": container.task_id,
                "MESOS_FRAMEWORK_ID": container.framework_id,
                "MESOS_EXECUTOR_ID": container.executor_id,
                "MESOS_CONTAINER_ID": container.container_id,
                "MESOS_AGENT_ID": self.agent.agent_id or "",
                "MESOS_SLAVE_ID": self.agent.agent_id or "",
                "MESOS_AGENT_ENDPOINT": self.agent.endpoint,
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": (
                    f"{self.agent.flags.executor_shutdown_grace_period:g}secs"
                ),
                "HOST": self.agent.flags.hostname,
            }
        )

    @staticmethod
    def container_config(container: Container) -> ContainerConfig:
        """What isolators' prepare() learns about the container."""
        return ContainerConfig(
            container_id=container.container_id,
            task_id=container.task_id,
            framework_id=container.framework_id,
            sandbox=str(container.sandbox),
            user=(container.info.get("command") or {}).get("user")
            or container.framework_info.get("user"),
            resources=dict(container.resources),
            task=container.info,
        )

    def _prepare(self, container: Container) -> tuple[dict[str, str], list[Any], Path, list[str]]:
        """Isolators' prepare(): the task's environment, rlimits, cwd and cgroups."""
        config = self.container_config(container)
        envs: list[tuple[str, dict[str, str]]] = []
        limits: list[tuple[str, Any]] = []
        cgroups: list[str] = []
        workdir: tuple[str, str] | None = None
        for named in self.agent.modules.isolators:
            container.prepared.append(named)
            ok, launch = call(named, "prepare", config)
            if not ok:
                raise LaunchError(launch)
            if launch is None:
                continue
            envs.append((named.name, dict(getattr(launch, "environment", None) or {})))
            limits += [(named.name, limit) for limit in getattr(launch, "rlimits", None) or []]
            cgroups += getattr(launch, "cgroups", None) or []
            directory = getattr(launch, "working_directory", None)
            if directory:
                if workdir is not None:
                    raise LaunchError(
                        f"isolators '{workdir[0]}' and '{named.name}' both set the working "
                        f"directory"
                    )
                workdir = (named.name, directory)
        cwd = Path(workdir[1]) if workdir else container.sandbox
        if not cwd.is_absolute():
            cwd = container.sandbox / cwd
        return containers.merge_environments(envs), limits, cwd, cgroups

    async def _launch(self, container: Container) -> None:
        """Checkpoint, sandbox, prepare, start under a launcher, isolate; LaunchError says
        what went wrong."""
        assert container.run_dir is not None
        # First: every update of the task (even a launch failure) has its task.info beside it.
        if container.executor is not None:
            self.agent.recovery.checkpoint_executor(container.executor)
        else:
            self.agent.recovery.checkpoint_task(container)
        command = container.info.get("command")
        if (container.info.get("container") or {}).get("type") == "DOCKER":
            raise LaunchError("DOCKER containers are not supported; use a command task")
        program, argv = containers.command_argv(command)
        user = containers.task_user(command, container.framework_info, self.agent.flags.switch_user)
        try:
            containers.make_sandbox(container.sandbox)
        except OSError as exc:
            raise LaunchError(f"cannot create the sandbox {container.sandbox}: {exc}") from None
        await self.agent.fetcher.fetch(command, container.sandbox)
        self._report(container, "TASK_STARTING")
        isolator_env, limits, cwd, cgroups = self._prepare(container)
        env = self._environment(container, isolator_env)
        rlimits = containers.check_rlimits(limits)
        if container.kill_requested:
            return
        launched = await containers.launch(
            program,
            argv,
            env,
            cwd,
            container.sandbox,
            rlimits,
            container.run_dir,
            self.agent.launcher_server,
            cgroups=cgroups,
            user=user,
        )
        container.launcher, container.process = launched.launcher, launched.task
        for named in self.agent.modules.isolators:
            ok, message = call(named, "isolate", container.container_id, container.process.pid)
            if not ok:
                raise LaunchError(message)
        # As Mesos' containerizer update() when a task joins its executor: the limits to enforce.
        for named in self.agent.modules.isolators:
            ok, message = call(named, "update", container.container_id, dict(container.resources))
            if not ok:
                raise LaunchError(message)

    async def run(self, container: Container) -> None:
        """A task (or an executor's container) from its launch to its terminal update."""
        try:
            await self._launch(container)
        except LaunchError as exc:
            await self._launch_failed(container, str(exc))
            self._done(container)
            return
        except Exception as exc:  # never lose a task silently
            await self._agent_error(container, exc)
            self._done(container)
            return
        if container.process is None:  # killed before it could start
            self.cleanup(container)
            self._report(
                container,
                container.kill_state,
                container.kill_message or "killed before the command started",
                container.kill_reason,
                container.kill_source,
            )
            self._done(container)
            return
        if container.kill_requested:  # a kill came in while we were spawning
            self.agent.background(self._terminate(container))
        else:
            self._report(container, "TASK_RUNNING")
            if container.executor is None:
                self.agent.health.start(container)
        await self.supervise(container)

    def _report(
        self,
        container: Container,
        state: str,
        message: str | None = None,
        reason: str | None = None,
        source: str = "SOURCE_EXECUTOR",
        healthy: bool | None = None,
    ) -> None:
        """A task's new state becomes its status update; an executor's container ending
        ends the executor's unfinished tasks."""
        if container.executor is None:
            self.agent.task_status.update(container, state, message, reason, source, healthy)
            return
        container.state = state
        if state in TERMINAL:
            self.agent.executor_room.ended(container.executor, state, message, reason)

    def _done(self, container: Container) -> None:
        """The container's coroutine is over."""
        HealthChecks.stop(container)
        if container.executor is None:
            self.agent.task_status.finished(container)
            return
        container.finished.set()
        self.agent.executor_room.gone(container.executor)

    def resize(self, container: Container, resources: dict[str, float]) -> None:
        """A container's resources changed (a task joined or left its executor): the
        isolators enforce the new amounts, as Mesos' containerizer update()."""
        container.resources = dict(resources)
        if not container.running:
            return  # the launch calls update() with whatever it holds by then
        for named in container.prepared:
            ok, message = call(named, "update", container.container_id, dict(resources))
            if not ok:
                logger.warning(
                    "isolator '%s' could not update container %s: %s",
                    named.name,
                    container.container_id,
                    message,
                )

    async def supervise(self, container: Container, termination: Termination | None = None) -> None:
        """Wait for the task's launcher, then the last watch, cleanup and the terminal update.

        ``termination`` is the launcher's record when recovery already read it.
        Cancelled (the agent detaches from its tasks), it leaves everything as
        it is: the launcher still records the end for the next agent.
        """
        try:
            if container.launcher is not None:
                await containers.wait_exit(
                    container.launcher, self.agent.flags.container_watch_interval
                )
                termination = self._termination(container)
            if termination is not None and termination.wait_status is not None:
                self._ended(container, termination.wait_status)
            elif termination is not None and termination.launch_error is not None:
                await self._launch_failed(container, termination.launch_error)
            else:
                self._launcher_lost(container)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never lose a task silently
            await self._agent_error(container, exc)
        self._done(container)

    def _termination(self, container: Container) -> Termination | None:
        if container.run_dir is None:
            return None
        try:
            return checkpoint.read_termination(container.run_dir)
        except CheckpointError as exc:
            logger.error("task %s: %s", container.task_id, exc)
            return None

    def _ended(self, container: Container, wait_status: int) -> None:
        container.wait_status = wait_status
        container.returncode = containers.returncode_of(wait_status)
        self.watch(container, wait_status)
        self.cleanup(container)
        self._final_status(container, container.returncode)

    def _launcher_lost(self, container: Container) -> None:
        """Nobody can tell how the task ended: its launcher is gone without a record
        (killed, or never started because the agent stopped first)."""
        if container.process is not None:
            containers.signal_group(container.process, signal.SIGKILL)  # an orphan otherwise
        launcher = container.launcher
        if launcher is not None:
            what = f"the task's launcher (pid {launcher.pid}) ended without recording its end"
        elif self.agent.rebooted:
            what = "the machine restarted while the task ran"
        else:
            what = "the agent stopped before the task's launcher started it"
        if container.recovered:
            what = f"the restarted agent could not recover the task: {what}"
        self.cleanup(container)
        self._report(container, "TASK_FAILED", what, "REASON_EXECUTOR_TERMINATED", "SOURCE_SLAVE")

    async def _agent_error(self, container: Container, exc: Exception) -> None:
        logger.error("task %s failed inside the agent", container.task_id, exc_info=exc)
        if container.process is not None and container.returncode is None:
            containers.signal_group(container.process, signal.SIGKILL)
        if container.state not in TERMINAL:
            self.cleanup(container)
            self._report(
                container,
                "TASK_FAILED",
                f"agent error: {exc}",
                "REASON_EXECUTOR_TERMINATED",
                "SOURCE_SLAVE",
            )

    async def _launch_failed(self, container: Container, message: str) -> None:
        self.agent.counters["launch_failures"] += 1
        logger.warning("task %s failed to launch: %s", container.task_id, message)
        if container.process is not None and container.launcher is not None:
            containers.signal_group(container.process, signal.SIGKILL)
            await containers.wait_exit(
                container.launcher, self.agent.flags.container_watch_interval
            )
            termination = self._termination(container)
            if termination is not None and termination.wait_status is not None:
                container.wait_status = termination.wait_status
                container.returncode = containers.returncode_of(termination.wait_status)
        self.cleanup(container)
        self._report(
            container, "TASK_FAILED", message, "REASON_CONTAINER_LAUNCH_FAILED", "SOURCE_SLAVE"
        )

    def _final_status(self, container: Container, returncode: int) -> None:
        described = containers.describe_exit(returncode)
        limitation = container.limitation
        if limitation is not None:
            self._report(
                container,
                "TASK_FAILED",
                str(getattr(limitation, "message", "")) or described,
                str(getattr(limitation, "reason", "")) or "REASON_CONTAINER_LIMITATION",
                "SOURCE_SLAVE",
            )
        elif container.kill_requested:
            message = container.kill_message or described
            self._report(
                container,
                container.kill_state,
                message,
                container.kill_reason,
                container.kill_source,
                False if container.killed_unhealthy else None,
            )
        elif returncode == 0:
            self._report(container, "TASK_FINISHED", described)
        else:
            self._report(container, "TASK_FAILED", described, "REASON_COMMAND_EXECUTOR_FAILED")

    def cleanup(self, container: Container) -> None:
        """Isolators' cleanup, in the reverse order of their prepare."""
        for named in reversed(container.prepared):
            call(named, "cleanup", container.container_id)
        container.prepared = []

    def watch(self, container: Container, wait_status: int | None) -> None:
        """Ask every isolator about limits; the first Limitation wins and kills the task."""
        if container.limitation is not None:
            return
        for named in container.prepared:
            ok, limitation = call(named, "watch", container.container_id, wait_status)
            if ok and limitation is not None:
                container.limitation = limitation
                logger.warning(
                    "isolator '%s' reports task %s over its limit: %s",
                    named.name,
                    container.task_id,
                    getattr(limitation, "message", limitation),
                )
                if wait_status is None:
                    self.kill(container, grace=0.0, source="SOURCE_SLAVE")
                return

    async def watch_loop(self) -> None:
        """Every --container_watch_interval: ask the isolators about each running task."""
        while True:
            await asyncio.sleep(self.agent.flags.container_watch_interval)
            if not self.agent.modules.isolators:
                continue
            for container in self.agent.all_containers() + self.agent.executor_containers():
                if container.running and not container.kill_requested:
                    self.watch(container, None)

    def usage(self, container: Container) -> dict[str, float]:
        """Merged isolators' usage() plus Mesos' limits from the task's resources."""
        statistics: dict[str, float] = {"timestamp": time.time()}
        if "cpus" in container.resources:
            statistics["cpus_limit"] = container.resources["cpus"]
        if "mem" in container.resources:
            statistics["mem_limit_bytes"] = container.resources["mem"] * 1024 * 1024
        for named in container.prepared:
            ok, values = call(named, "usage", container.container_id)
            if ok and isinstance(values, dict):
                statistics.update({str(k): float(v) for k, v in values.items()})
        return statistics
