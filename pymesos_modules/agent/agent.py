"""The agent: registers with a master, runs command tasks, calls its modules at Mesos' moments.

One asyncio loop does everything:

- the master connection (:mod:`.registration`): REGISTER, or REREGISTER
  with the tasks it still runs once it has an id; read the command stream; on
  EOF, a reset or a silent master (no event for 3 heartbeat intervals) keep
  the tasks running and try again with backoff (1 s doubling to 30 s);
- one coroutine per task (:meth:`Agent._run`): checkpoint, sandbox,
  isolators' prepare, start under a launcher (:mod:`.launcher`), isolate, wait
  for the launcher, last watch, isolators' cleanup, the terminal update;
- recovery at start (:mod:`.recovery`): the previous agent's checkpoint
  (:mod:`.checkpoint`) gives back the id, the tasks (re-attached to their
  launchers, or finished from the launcher's record) and the unacknowledged
  updates;
- the status update manager (:mod:`.status_updates`) that resends each update
  until the master forwards the framework's acknowledgement;
- periodic loops: isolator watch (limitations), resource estimator
  (UPDATE_OVERSUBSCRIBED), QoS controller (preempt revocable tasks).

Module calls are plain calls on the loop: every kind's calls are short by
contract (a /proc read, a decision on a few numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from pymesos_modules import metrics
from pymesos_modules.agent import checkpoint, containers, views
from pymesos_modules.agent.checkpoint import CheckpointError, Termination
from pymesos_modules.agent.containers import LaunchError
from pymesos_modules.agent.modules import AgentModules, Named, call
from pymesos_modules.agent.records import TERMINAL, Container, ports_of, scalars
from pymesos_modules.agent.recovery import Recovery
from pymesos_modules.agent.registration import DEFAULT_HEARTBEAT, Registration, master_url
from pymesos_modules.agent.status_updates import StatusUpdateManager
from pymesos_modules.agent.task_status import TaskStatus
from pymesos_modules.kinds.isolator import ContainerConfig
from pymesos_modules.kinds.resource_estimator import AgentUsage, ExecutorUsage
from pymesos_modules.master import resources as res

logger = logging.getLogger(__name__)


@dataclass
class AgentFlags:
    """Agent settings (Mesos flag names)."""

    master: str
    work_dir: str
    ip: str = "127.0.0.1"
    port: int = 5051
    hostname: str = "localhost"
    #: Mesos Resource JSON, complete (see :mod:`.machine`)
    resources: list[dict[str, Any]] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    executor_shutdown_grace_period: float = 5.0
    oversubscribed_resources_interval: float = 15.0
    qos_correction_interval_min: float = 1.0
    registration_backoff_factor: float = 1.0
    status_update_retry_interval_min: float = 10.0
    status_update_retry_interval_max: float = 600.0
    container_watch_interval: float = 1.0
    #: Mesos' --recover: "reconnect" to checkpointed tasks, or "cleanup" (kill them, new id)
    recover: str = "reconnect"
    #: Mesos' --strict: an unreadable checkpoint file stops the agent (else it is skipped)
    strict: bool = True
    #: every flag as given, for /flags
    raw: dict[str, Any] = field(default_factory=dict)


def _grace(policy: Any) -> float | None:
    """KillPolicy.grace_period in seconds, if given."""
    if not isinstance(policy, dict):
        return None
    nanos = (policy.get("grace_period") or {}).get("nanoseconds")
    return int(nanos) / 1e9 if isinstance(nanos, int | float | str) else None


def _path_safe(ident: str) -> bool:
    """True when ``ident`` can be one folder name under work_dir."""
    return ident not in ("", ".", "..") and "/" not in ident and "\0" not in ident


class Agent:
    """A Mesos-style agent (see module docstring)."""

    def __init__(
        self,
        flags: AgentFlags,
        modules: AgentModules | None = None,
        registry: metrics.MetricsRegistry | None = None,
    ) -> None:
        self.flags = flags
        self.modules = modules or AgentModules()
        self.metrics = registry if registry is not None else metrics.MetricsRegistry()
        self.url = master_url(flags.master)
        self.work_dir = Path(flags.work_dir).resolve()
        self.agent_id: str | None = None
        self.master_id: str | None = None
        self.registered = False
        self.heartbeat_interval = DEFAULT_HEARTBEAT
        self._background_tasks: set[asyncio.Task] = set()
        #: framework id -> task id -> container, until its terminal update is acknowledged
        self.containers: dict[str, dict[str, Container]] = {}
        self.completed: list[Container] = []
        self.frameworks: dict[str, dict[str, Any]] = {}
        #: the checkpoint was written before this machine last booted
        self.rebooted = False
        self.started = time.time()
        self.endpoint = f"{flags.ip}:{flags.port}"
        self.counters = {
            "tasks_finished": 0,
            "tasks_failed": 0,
            "tasks_killed": 0,
            "tasks_lost": 0,
            "registrations": 0,
            "status_updates": 0,
            "launch_failures": 0,
            "qos_corrections": 0,
            "oversubscribed_updates": 0,
        }
        self.meta = checkpoint.MetaDir(self.work_dir)
        #: the rooms: each holds only the agent, which owns every piece of state
        self.registration = Registration(self)
        self.task_status = TaskStatus(self)
        self.recovery = Recovery(self)
        self.updates = StatusUpdateManager(
            self.registration.send_update,
            flags.status_update_retry_interval_min,
            flags.status_update_retry_interval_max,
            checkpoint=self.task_status.checkpoint,
        )
        self.resources = list(flags.resources)
        self.attributes = list(flags.attributes)
        self.oversubscribed: dict[str, float] = {}
        self.oversubscribed_sent: dict[str, float] | None = None
        #: the HTTP session and the master's command stream (see :mod:`.registration`)
        self.session: aiohttp.ClientSession | None = None
        self.stream: aiohttp.ClientResponse | None = None
        self._loops: list[asyncio.Task] = []
        self.stopping = False
        self._stopped = False
        #: set when the agent cannot go on (e.g. the master refused it); run() exits
        self.failed = asyncio.Event()
        self.failure: str | None = None

    # --- life cycle ------------------------------------------------------------------------

    def agent_info(self) -> dict[str, Any]:
        """Mesos' AgentInfo of this agent (what hooks' decorators see)."""
        info: dict[str, Any] = {
            "hostname": self.flags.hostname,
            "port": self.flags.port,
            "resources": self.resources,
            "attributes": self.attributes,
        }
        if self.agent_id:
            info["id"] = {"value": self.agent_id}
        return info

    async def start(self) -> None:
        """Recover (or clean up) the previous agent's tasks, decorate resources and
        attributes by hooks, then connect and start the loops.

        A checkpoint file that cannot be read raises :class:`CheckpointError`
        naming it (``--strict``), before anything was started.
        """
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.flags.recover == "cleanup":
            await self.recovery.cleanup_previous()
        else:
            self.recovery.recover()
        hooks = self.modules.hook_chain
        self.resources = hooks.decorate_resources(self.agent_info())
        self.attributes = hooks.decorate_attributes(self.agent_info())
        if self.agent_id is not None:
            self.recovery.save_agent()
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=10.0)
        )
        self.updates.start()
        self._loops.append(asyncio.create_task(self.registration.run(), name="agent-master"))
        self._loops.append(asyncio.create_task(self._watch_loop(), name="agent-watch"))
        if self.modules.resource_estimator is not None:
            self._loops.append(asyncio.create_task(self._estimator_loop(), name="agent-estimator"))
        if self.modules.qos_controller is not None:
            self._loops.append(asyncio.create_task(self._qos_loop(), name="agent-qos"))

    @property
    def stopped(self) -> bool:
        """stop() was called."""
        return self._stopped

    async def stop(self, kill_tasks: bool = True) -> None:
        """Stop the loops, close the connection and modules; kill every task unless told not to.

        ``kill_tasks=False`` is an agent going away to come back (an upgrade, a
        restart): its tasks keep running under their launchers, checkpointed,
        and the next agent on this work_dir re-attaches to them.  Stopping a
        stopped agent does nothing.
        """
        if self._stopped:
            return
        self._stopped = self.stopping = True
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops.clear()
        running = [c for c in self.all_containers() if not c.finished.is_set()]
        if kill_tasks:
            for container in running:
                self.kill(container, message="the agent is shutting down")
            if running:
                await asyncio.wait([asyncio.ensure_future(c.finished.wait()) for c in running])
        else:
            runners = [c.runner for c in running if c.runner is not None]
            for runner in runners:
                runner.cancel()  # detach: the launchers keep their tasks and record their ends
            await asyncio.gather(*runners, return_exceptions=True)
        await self.updates.stop()
        if self.stream is not None:
            self.stream.close()
        if self.session is not None:
            await self.session.close()
        self.modules.close()

    def fail(self, message: str) -> None:
        """The agent cannot go on: say why; ``run()`` of the command exits."""
        logger.error("%s", message)
        self.failure = message
        self.failed.set()

    def background(self, coroutine: Any) -> None:
        """Run ``coroutine`` as a task kept alive until done (the loop holds tasks weakly)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    # --- tasks -------------------------------------------------------------------------------

    def all_containers(self) -> list[Container]:
        """Every container the agent tracks (running, or ended with its update unacknowledged)."""
        return [c for tasks in self.containers.values() for c in tasks.values()]

    def find(self, framework_id: str, task_id: str) -> Container | None:
        """The container of a task, if the agent still tracks it."""
        return self.containers.get(framework_id, {}).get(task_id)

    # --- the master's commands (registration hands them over) --------------------------------

    def acknowledged(self, framework_id: str, task_id: str, ack: str) -> None:
        """ACKNOWLEDGED (see :meth:`.TaskStatus.acknowledged`)."""
        self.task_status.acknowledged(framework_id, task_id, ack)

    def run_task(
        self, framework_id: str, framework_info: dict[str, Any], task: dict[str, Any]
    ) -> None:
        """RUN_TASK: start the task's coroutine (its updates report how it goes)."""
        task_id = (task.get("task_id") or {}).get("value")
        if not framework_id or not isinstance(task_id, str) or not task_id:
            logger.warning("ignoring RUN_TASK without framework or task id: %s", task)
            return
        if self.find(framework_id, task_id) is not None:
            logger.warning("ignoring RUN_TASK of %s: already running here", task_id)
            return
        if self.agent_id is None:
            logger.warning("ignoring RUN_TASK of %s: not registered", task_id)
            return
        bad = next((i for i in (framework_id, task_id) if not _path_safe(i)), None)
        if bad is not None:
            # The ids name sandbox folders: refuse what could leave work_dir (as Mesos does).
            self.task_status.update_without_container(
                framework_id,
                task_id,
                "TASK_FAILED",
                "REASON_TASK_INVALID",
                f"id '{bad}' cannot name a sandbox folder ('/', '.', '..' or NUL)",
            )
            return
        self.frameworks[framework_id] = framework_info
        task = self.modules.hook_chain.decorate_agent_task(task, framework_info, self.agent_info())
        container = self._container(framework_id, framework_info, task, str(uuid.uuid4()))
        container.run_dir = self.meta.run_dir(
            self.agent_id, framework_id, container.executor_id, container.container_id
        )
        self.containers.setdefault(framework_id, {})[task_id] = container
        container.runner = asyncio.get_running_loop().create_task(
            self._run(container), name=f"task-{task_id}"
        )

    def _container(
        self,
        framework_id: str,
        framework_info: dict[str, Any],
        task: dict[str, Any],
        container_id: str,
    ) -> Container:
        """The Container of a task (its sandbox in Mesos' layout, its resources)."""
        assert self.agent_id is not None
        task_id = task["task_id"]["value"]
        items = task.get("resources") or []
        return Container(
            framework_id,
            task_id,
            container_id,
            task,
            framework_info,
            containers.sandbox_path(
                self.work_dir, self.agent_id, framework_id, task_id, container_id
            ),
            scalars(items),
            ports_of(items),
            any("revocable" in r for r in items if isinstance(r, dict)),
        )

    def kill_task(self, framework_id: str, task_id: str, policy: Any = None) -> None:
        """KILL_TASK: SIGTERM, SIGKILL after the grace period; unknown task -> TASK_LOST."""
        container = self.find(framework_id, task_id)
        if container is None:
            self.task_status.update_without_container(
                framework_id,
                task_id,
                "TASK_LOST",
                "REASON_RECONCILIATION",
                "kill of a task this agent does not run",
            )
            return
        if container.state in TERMINAL:
            return  # its terminal update is on its way already
        self.kill(container, grace=_grace(policy))

    def kill(
        self,
        container: Container,
        grace: float | None = None,
        reason: str | None = None,
        message: str | None = None,
        source: str = "SOURCE_EXECUTOR",
    ) -> None:
        """Kill a task: SIGTERM its process group now, SIGKILL once the grace period is over."""
        if container.kill_requested:
            return
        if grace is None:
            grace = _grace(container.info.get("kill_policy"))
        if grace is None:
            grace = self.flags.executor_shutdown_grace_period
        container.kill_requested = True
        container.kill_grace = grace
        container.kill_reason = reason
        container.kill_message = message
        container.kill_source = source
        if container.running:
            self.background(self._terminate(container))

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
        """SHUTDOWN_FRAMEWORK: kill every task of the framework."""
        for container in list(self.containers.get(framework_id, {}).values()):
            self.kill(container, message="framework shut down")

    # --- checkpointing and recovery ------------------------------------------------------------

    # --- one task from launch to its terminal update -------------------------------------------

    def _environment(self, container: Container, isolator_env: dict[str, str]) -> dict[str, str]:
        """The task's environment (docs/agent.md lists every variable and the order)."""
        sandbox = str(container.sandbox)
        env = dict(os.environ)
        env.update(
            {
                "MESOS_SANDBOX": sandbox,
                "MESOS_DIRECTORY": sandbox,
                "MESOS_TASK_ID": container.task_id,
                "MESOS_FRAMEWORK_ID": container.framework_id,
                "MESOS_EXECUTOR_ID": container.executor_id,
                "MESOS_CONTAINER_ID": container.container_id,
                "MESOS_AGENT_ID": self.agent_id or "",
                "MESOS_SLAVE_ID": self.agent_id or "",
                "MESOS_AGENT_ENDPOINT": self.endpoint,
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": (
                    f"{self.flags.executor_shutdown_grace_period:g}secs"
                ),
                "HOST": self.flags.hostname,
            }
        )
        env.update(containers.port_environment(container.ports))
        env.update(isolator_env)
        env.update(containers.command_environment(container.info.get("command")))
        decorated = self.modules.hook_chain.decorate_environment(container.info, env)
        return {str(k): str(v) for k, v in decorated.items()}

    @staticmethod
    def _container_config(container: Container) -> ContainerConfig:
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

    def _prepare(self, container: Container) -> tuple[dict[str, str], list[Any], Path]:
        config = self._container_config(container)
        envs: list[tuple[str, dict[str, str]]] = []
        limits: list[tuple[str, Any]] = []
        workdir: tuple[str, str] | None = None
        for named in self.modules.isolators:
            container.prepared.append(named)
            ok, launch = call(named, "prepare", config)
            if not ok:
                raise LaunchError(launch)
            if launch is None:
                continue
            envs.append((named.name, dict(getattr(launch, "environment", None) or {})))
            limits += [(named.name, limit) for limit in getattr(launch, "rlimits", None) or []]
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
        return containers.merge_environments(envs), limits, cwd

    async def _launch(self, container: Container) -> None:
        """Checkpoint, sandbox, prepare, start under a launcher, isolate; LaunchError says
        what went wrong."""
        assert container.run_dir is not None
        # First: every update of the task (even a launch failure) has its task.info beside it.
        self.recovery.checkpoint_task(container)
        command = container.info.get("command")
        if "executor" in container.info:
            raise LaunchError("custom executors are not supported; give TaskInfo.command")
        if (container.info.get("container") or {}).get("type") == "DOCKER":
            raise LaunchError("DOCKER containers are not supported; use a command task")
        program, argv = containers.command_argv(command)
        try:
            containers.make_sandbox(container.sandbox)
        except OSError as exc:
            raise LaunchError(f"cannot create the sandbox {container.sandbox}: {exc}") from None
        self.task_status.update(container, "TASK_STARTING")
        isolator_env, limits, cwd = self._prepare(container)
        env = self._environment(container, isolator_env)
        rlimits = containers.check_rlimits(limits)
        if container.kill_requested:
            return
        launched = await containers.launch(
            program, argv, env, cwd, container.sandbox, rlimits, container.run_dir
        )
        container.launcher, container.process = launched.launcher, launched.task
        for named in self.modules.isolators:
            ok, message = call(named, "isolate", container.container_id, container.process.pid)
            if not ok:
                raise LaunchError(message)
        # As Mesos' containerizer update() when a task joins its executor: the limits to enforce.
        for named in self.modules.isolators:
            ok, message = call(named, "update", container.container_id, dict(container.resources))
            if not ok:
                raise LaunchError(message)

    async def _run(self, container: Container) -> None:
        """A task from RUN_TASK to its terminal update."""
        try:
            await self._launch(container)
        except LaunchError as exc:
            await self._launch_failed(container, str(exc))
            self.task_status.finished(container)
            return
        except Exception as exc:  # never lose a task silently
            await self._agent_error(container, exc)
            self.task_status.finished(container)
            return
        if container.process is None:  # killed before it could start
            self._cleanup(container)
            self.task_status.update(
                container,
                "TASK_KILLED",
                container.kill_message or "killed before the command started",
                container.kill_reason,
                container.kill_source,
            )
            self.task_status.finished(container)
            return
        if container.kill_requested:  # a kill came in while we were spawning
            self.background(self._terminate(container))
        else:
            self.task_status.update(container, "TASK_RUNNING")
        await self._supervise(container)

    async def _supervise(
        self, container: Container, termination: Termination | None = None
    ) -> None:
        """Wait for the task's launcher, then the last watch, cleanup and the terminal update.

        ``termination`` is the launcher's record when recovery already read it.
        Cancelled (the agent detaches from its tasks), it leaves everything as
        it is: the launcher still records the end for the next agent.
        """
        try:
            if container.launcher is not None:
                await containers.wait_exit(container.launcher, self.flags.container_watch_interval)
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
        self.task_status.finished(container)

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
        self._watch(container, wait_status)
        self._cleanup(container)
        self._final_status(container, container.returncode)

    def _launcher_lost(self, container: Container) -> None:
        """Nobody can tell how the task ended: its launcher is gone without a record
        (killed, or never started because the agent stopped first)."""
        if container.process is not None:
            containers.signal_group(container.process, signal.SIGKILL)  # an orphan otherwise
        launcher = container.launcher
        if launcher is not None:
            what = f"the task's launcher (pid {launcher.pid}) ended without recording its end"
        elif self.rebooted:
            what = "the machine restarted while the task ran"
        else:
            what = "the agent stopped before the task's launcher started it"
        if container.recovered:
            what = f"the restarted agent could not recover the task: {what}"
        self._cleanup(container)
        self.task_status.update(
            container, "TASK_FAILED", what, "REASON_EXECUTOR_TERMINATED", "SOURCE_SLAVE"
        )

    async def _agent_error(self, container: Container, exc: Exception) -> None:
        logger.error("task %s failed inside the agent", container.task_id, exc_info=exc)
        if container.process is not None and container.returncode is None:
            containers.signal_group(container.process, signal.SIGKILL)
        if container.state not in TERMINAL:
            self._cleanup(container)
            self.task_status.update(
                container,
                "TASK_FAILED",
                f"agent error: {exc}",
                "REASON_EXECUTOR_TERMINATED",
                "SOURCE_SLAVE",
            )

    async def _launch_failed(self, container: Container, message: str) -> None:
        self.counters["launch_failures"] += 1
        logger.warning("task %s failed to launch: %s", container.task_id, message)
        if container.process is not None and container.launcher is not None:
            containers.signal_group(container.process, signal.SIGKILL)
            await containers.wait_exit(container.launcher, self.flags.container_watch_interval)
            termination = self._termination(container)
            if termination is not None and termination.wait_status is not None:
                container.wait_status = termination.wait_status
                container.returncode = containers.returncode_of(termination.wait_status)
        self._cleanup(container)
        self.task_status.update(
            container, "TASK_FAILED", message, "REASON_CONTAINER_LAUNCH_FAILED", "SOURCE_SLAVE"
        )

    def _final_status(self, container: Container, returncode: int) -> None:
        described = containers.describe_exit(returncode)
        limitation = container.limitation
        if limitation is not None:
            self.task_status.update(
                container,
                "TASK_FAILED",
                str(getattr(limitation, "message", "")) or described,
                str(getattr(limitation, "reason", "")) or "REASON_CONTAINER_LIMITATION",
                "SOURCE_SLAVE",
            )
        elif container.kill_requested:
            message = container.kill_message or described
            self.task_status.update(
                container, "TASK_KILLED", message, container.kill_reason, container.kill_source
            )
        elif returncode == 0:
            self.task_status.update(container, "TASK_FINISHED", described)
        else:
            self.task_status.update(
                container, "TASK_FAILED", described, "REASON_COMMAND_EXECUTOR_FAILED"
            )

    def _cleanup(self, container: Container) -> None:
        for named in reversed(container.prepared):
            call(named, "cleanup", container.container_id)
        container.prepared = []

    # --- isolators' watch and usage ----------------------------------------------------------

    def _watch(self, container: Container, wait_status: int | None) -> None:
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

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flags.container_watch_interval)
            if not self.modules.isolators:
                continue
            for container in self.all_containers():
                if container.running and not container.kill_requested:
                    self._watch(container, None)

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

    def agent_usage(self) -> Any:
        """What the resource estimator and the QoS controller see."""
        executors = [
            ExecutorUsage(
                container_id=c.container_id,
                task_id=c.task_id,
                framework_id=c.framework_id,
                resources=dict(c.resources),
                revocable=c.revocable,
                statistics=self.usage(c),
            )
            for c in self.all_containers()
            if c.running
        ]
        return AgentUsage(total=scalars(self.resources), executors=executors)

    # --- resource estimator and QoS controller -----------------------------------------------

    async def _estimator_loop(self) -> None:
        named = self.modules.resource_estimator
        assert named is not None
        while True:
            ok, estimate = call(named, "oversubscribable", self.agent_usage())
            if ok and isinstance(estimate, dict):
                self.oversubscribed = {k: float(v) for k, v in estimate.items() if float(v) > 0}
                if self.registered and self.oversubscribed_total() != self.oversubscribed_sent:
                    await self.send_oversubscribed()
            await asyncio.sleep(self.flags.oversubscribed_resources_interval)

    def oversubscribed_total(self) -> dict[str, float]:
        """What UPDATE_OVERSUBSCRIBED reports: the estimator's oversubscribable amount plus
        the revocable resources tasks hold, as Mesos' agent forwards it (a total, of which
        the allocator offers what tasks do not use)."""
        total = dict(self.oversubscribed)
        for container in self.all_containers():
            if container.state not in TERMINAL:
                for name, amount in container.revocable_resources.items():
                    total[name] = total.get(name, 0.0) + amount
        return total

    async def send_oversubscribed(self) -> None:
        """UPDATE_OVERSUBSCRIBED with :meth:`oversubscribed_total`; logged if the master is away."""
        amounts = self.oversubscribed_total()
        items = res.to_json(res.Resources(amounts))
        try:
            await self.registration.post(
                {"type": "UPDATE_OVERSUBSCRIBED", "update_oversubscribed": {"resources": items}}
            )
        except (aiohttp.ClientError, ConnectionError, OSError, TimeoutError) as exc:
            logger.info("could not send UPDATE_OVERSUBSCRIBED: %s", exc)
            return
        self.oversubscribed_sent = amounts
        self.counters["oversubscribed_updates"] += 1

    async def _qos_loop(self) -> None:
        named = self.modules.qos_controller
        assert named is not None
        while True:
            await asyncio.sleep(self.flags.qos_correction_interval_min)
            ok, corrections = call(named, "corrections", self.agent_usage())
            if ok:
                for correction in corrections or []:
                    self._correct(named, correction)

    def _correct(self, named: Named, correction: Any) -> None:
        container_id = getattr(correction, "container_id", None)
        container = next(
            (c for c in self.all_containers() if c.container_id == container_id), None
        ) or self.find(
            str(getattr(correction, "framework_id", "")), str(getattr(correction, "task_id", ""))
        )
        if container is None or not container.running:
            logger.info("QoS controller '%s' names no running task: %s", named.name, correction)
            return
        if not container.revocable:
            logger.warning(
                "QoS controller '%s' asked to kill task %s, which does not run on revocable "
                "resources; ignored",
                named.name,
                container.task_id,
            )
            return
        self.counters["qos_corrections"] += 1
        message = getattr(correction, "message", "") or f"preempted by QoS controller {named.name}"
        self.kill(
            container,
            grace=0.0,
            reason="REASON_EXECUTOR_PREEMPTED",
            message=message,
            source="SOURCE_SLAVE",
        )

    # --- views ---------------------------------------------------------------------------------

    # --- views (the HTTP surface serves them) ----------------------------------------------------

    def statistics(self) -> list[dict[str, Any]]:
        """``/monitor/statistics`` (see :mod:`.views`)."""
        return views.statistics(self)

    def snapshot_metrics(self) -> dict[str, float]:
        """``/metrics/snapshot`` (see :mod:`.views`)."""
        return views.snapshot_metrics(self)

    def state(self) -> dict[str, Any]:
        """``/state`` (see :mod:`.views`)."""
        return views.state(self)
