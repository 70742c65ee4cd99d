"""The agent: registers with a master, runs command tasks, calls its modules at Mesos' moments.

:class:`Agent` is the one owner of the agent's state (its id, frameworks,
containers, counters, the master connection); each concern is a room that
holds only the agent and works on that state, as Mesos' slave.cpp hands
work to its status update manager, containerizer and HTTP handlers:

- :mod:`.registration`: REGISTER, or REREGISTER with the tasks it still runs
  once it has an id; the master's command stream; on EOF, a reset or a
  silent master (no event for 3 heartbeat intervals) the tasks keep running
  and it tries again with backoff (1 s doubling to 30 s);
- :mod:`.containerizer`: one coroutine per task: checkpoint, sandbox,
  isolators' prepare, start under a launcher (:mod:`.launcher`), isolate,
  wait for the launcher, last watch, isolators' cleanup, the terminal update;
  kills; the isolators' watch loop (limitations) and usage;
- :mod:`.task_status`: a task's state changes as status updates, which the
  status update manager (:mod:`.status_updates`) resends until the master
  forwards the framework's acknowledgement;
- :mod:`.recovery`: at start, the previous agent's checkpoint
  (:mod:`.checkpoint`) gives back the id, the tasks (re-attached to their
  launchers, or finished from the launcher's record) and the unacknowledged
  updates;
- :mod:`.oversubscription`: the resource estimator (UPDATE_OVERSUBSCRIBED)
  and the QoS controller (preempt revocable tasks);
- :mod:`.views` and :mod:`.http`: ``/state``, ``/metrics/snapshot``,
  ``/monitor/statistics`` and the other endpoints.

One asyncio loop does everything.  Module calls are plain calls on the loop:
every kind's calls are short by contract (a /proc read, a decision on a few
numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from pymesos_modules import jsonio, metrics
from pymesos_modules.agent import checkpoint, views
from pymesos_modules.agent.containerizer import Containerizer
from pymesos_modules.agent.executor_auth import ExecutorAuthenticator
from pymesos_modules.agent.executors import Executors
from pymesos_modules.agent.fetcher import DEFAULT_CACHE_SIZE, Fetcher
from pymesos_modules.agent.health import HealthChecks
from pymesos_modules.agent.launcher import LauncherServer
from pymesos_modules.agent.leader import LeaderLink
from pymesos_modules.agent.modules import AgentModules
from pymesos_modules.agent.oversubscription import Oversubscription
from pymesos_modules.agent.records import Container, Executor
from pymesos_modules.agent.recovery import Recovery
from pymesos_modules.agent.registration import DEFAULT_HEARTBEAT, Registration, master_url
from pymesos_modules.agent.status_updates import StatusUpdateManager
from pymesos_modules.agent.task_status import TaskStatus

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
    #: how long a custom executor has to subscribe after its launch (Mesos' 1mins)
    executor_registration_timeout: float = 60.0
    #: how long a restarted agent waits for checkpointed executors to subscribe again
    recovery_timeout: float = 900.0
    #: the longest an executor waits between attempts to subscribe again (Mesos' 2secs)
    executor_reregistration_timeout: float = 2.0
    #: the fetcher's cache: its folder (default <work_dir>/fetch) and its bound in bytes
    fetcher_cache_dir: str | None = None
    fetcher_cache_size: int = DEFAULT_CACHE_SIZE
    oversubscribed_resources_interval: float = 15.0
    qos_correction_interval_min: float = 1.0
    registration_backoff_factor: float = 1.0
    #: ZooKeeper session timeout of the leader detector (``--master=zk://...``)
    zk_session_timeout: float = 10.0
    status_update_retry_interval_min: float = 10.0
    status_update_retry_interval_max: float = 600.0
    container_watch_interval: float = 1.0
    #: Mesos' --recover: "reconnect" to checkpointed tasks, or "cleanup" (kill them, new id)
    recover: str = "reconnect"
    #: Mesos' --strict: an unreadable checkpoint file stops the agent (else it is skipped)
    strict: bool = True
    #: Mesos' --switch_user: run tasks as their user when the agent runs as root
    switch_user: bool = True
    #: every flag as given, for /flags
    raw: dict[str, Any] = field(default_factory=dict)
    #: the Authorization header this agent sends (from --credential), for a master
    #: with --authenticate_agents; None: none
    authorization: str | None = None
    #: with --executor_secret_key: executors' tokens, made and checked
    #: (--authenticate_http_executors: required); None: executors get none
    executor_authenticator: ExecutorAuthenticator | None = None


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
        self.leader = LeaderLink(flags.master, flags.zk_session_timeout, master_url(flags.master))
        self.work_dir = Path(flags.work_dir).resolve()
        self.agent_id: str | None = None
        self.master_id: str | None = None
        self.registered = False
        #: until start() has taken over the previous agent's checkpoint (the executor API
        #: answers 503 meanwhile, as Mesos)
        self.recovering = True
        self.heartbeat_interval = DEFAULT_HEARTBEAT
        self._background_tasks: set[asyncio.Task] = set()
        #: framework id -> task id -> container, until its terminal update is acknowledged
        self.containers: dict[str, dict[str, Container]] = {}
        self.completed: list[Container] = []
        #: framework id -> executor id -> custom executor (see :mod:`.executors`)
        self.executors: dict[str, dict[str, Executor]] = {}
        self.completed_executors: list[Executor] = []
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
        #: forks every task's launcher (started on the first launch)
        self.launcher_server = LauncherServer()
        #: the rooms: each holds only the agent, which owns every piece of state
        self.registration = Registration(self)
        self.task_status = TaskStatus(self)
        self.recovery = Recovery(self)
        self.containerizer = Containerizer(self)
        self.executor_room = Executors(self)
        self.health = HealthChecks(self)
        self.fetcher = Fetcher(
            Path(flags.fetcher_cache_dir or self.work_dir / "fetch"), flags.fetcher_cache_size
        )
        self.oversubscription = Oversubscription(self)
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

    @property
    def url(self) -> str | None:
        """The base URL of the master the agent talks to (None: no leader detected)."""
        return self.leader.url

    async def start(self) -> None:
        """Recover (or clean up) the previous agent's tasks, decorate resources and
        attributes by hooks, then connect and start the loops.

        A checkpoint file that cannot be read raises :class:`CheckpointError`
        naming it (``--strict``), and an unreachable ZooKeeper (``--master=zk://``)
        a ZooKeeperError naming it, before anything was started.
        """
        await self.leader.start(self.registration.leader_changed)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.flags.recover == "cleanup":
            await self.recovery.cleanup_previous()
        else:
            self.recovery.recover()
        self.recovery.recover_isolators()  # before the recovered tasks re-attach them
        self.recovering = False
        hooks = self.modules.hook_chain
        self.resources = hooks.decorate_resources(self.agent_info())
        self.attributes = hooks.decorate_attributes(self.agent_info())
        if self.agent_id is not None:
            self.recovery.save_agent()
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=10.0),
            json_serialize=jsonio.dumps_text,
        )
        self.updates.start()
        self._loops.append(asyncio.create_task(self.registration.run(), name="agent-master"))
        self._loops.append(asyncio.create_task(self.containerizer.watch_loop(), name="agent-watch"))
        if self.modules.resource_estimator is not None:
            self._loops.append(
                asyncio.create_task(self.oversubscription.estimator_loop(), name="agent-estimator")
            )
        if self.modules.qos_controller is not None:
            self._loops.append(
                asyncio.create_task(self.oversubscription.qos_loop(), name="agent-qos")
            )

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
        await self.leader.stop()
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops.clear()
        running = [
            c for c in self.all_containers() + self.executor_containers() if not c.finished.is_set()
        ]
        if kill_tasks:
            why = "the agent is shutting down"
            for executor in self.executor_room.all():
                self.executor_room.shutdown(executor, why, ("TASK_KILLED", None, why))
            for container in running:
                if container.executor is None:
                    self.containerizer.kill(container, message=why)
            if running:
                await asyncio.wait([asyncio.ensure_future(c.finished.wait()) for c in running])
        else:
            for executor in self.executor_room.all():
                if executor.timer is not None:
                    executor.timer.cancel()
            runners = [c.runner for c in running if c.runner is not None]
            for runner in runners:
                runner.cancel()  # detach: the launchers keep their tasks and record their ends
            await asyncio.gather(*runners, return_exceptions=True)
        await self.updates.stop()
        self.launcher_server.close()
        for executor in self.executor_room.all():
            if executor.sink is not None:  # a detached executor subscribes to the next agent
                executor.sink.close()
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

    def executor_containers(self) -> list[Container]:
        """The containers of the custom executors the agent runs."""
        return [e.container for e in self.executor_room.all()]

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
        """RUN_TASK (see :meth:`.Containerizer.run_task`)."""
        self.containerizer.run_task(framework_id, framework_info, task)

    def run_task_group(
        self,
        framework_id: str,
        framework_info: dict[str, Any],
        executor: dict[str, Any],
        tasks: list[dict[str, Any]],
    ) -> None:
        """RUN_TASK_GROUP (see :meth:`.Containerizer.run_task_group`)."""
        self.containerizer.run_task_group(framework_id, framework_info, executor, tasks)

    def kill_task(self, framework_id: str, task_id: str, policy: Any = None) -> None:
        """KILL_TASK (see :meth:`.Containerizer.kill_task`)."""
        self.containerizer.kill_task(framework_id, task_id, policy)

    def shutdown_executor(self, framework_id: str, executor_id: str) -> None:
        """SHUTDOWN_EXECUTOR: a custom or default executor gets SHUTDOWN (killed after its
        grace period); a command task's executor (its task id) is its task: it is killed."""
        executor = self.executor_room.find(framework_id, executor_id)
        if executor is not None:
            self.executor_room.shutdown(executor, "the framework asked (SHUTDOWN)")
            return
        task = self.find(framework_id, executor_id)
        if task is not None and task.executor is None:
            self.containerizer.kill(task, message="executor shut down by the framework")
            return
        logger.info("SHUTDOWN of executor %s of framework %s: not here", executor_id, framework_id)

    def shutdown_framework(self, framework_id: str) -> None:
        """SHUTDOWN_FRAMEWORK (see :meth:`.Containerizer.shutdown_framework`)."""
        self.containerizer.shutdown_framework(framework_id)

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

    def oversubscribed_total(self) -> dict[str, float]:
        """What UPDATE_OVERSUBSCRIBED reports (see :mod:`.oversubscription`)."""
        return self.oversubscription.total()
