"""Recovery: what survives the agent, and taking it back when an agent starts on the same work_dir.

Mesos' agent recovery: the agent's id (``slave.info``, ``latest``) and each
task's framework.info and task.info are checkpointed before the task runs
(:mod:`.checkpoint` writes the files); a restarted agent reads them all,
then re-attaches to each task whose launcher still runs, finishes from the
launcher's record a task that ended meanwhile, fails one that neither can
tell, and resends the unacknowledged updates in order.  ``--recover=cleanup``
kills what the previous agent left and starts under a new id.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from pymesos_modules.agent import containers
from pymesos_modules.agent.checkpoint import (
    AgentState,
    CheckpointError,
    ExecutorRunState,
    RunState,
    Termination,
)
from pymesos_modules.agent.containers import LaunchError
from pymesos_modules.agent.launcher import is_alive
from pymesos_modules.agent.modules import call
from pymesos_modules.agent.records import NOT_CHECKPOINTED, TERMINAL, Container, Executor

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent

logger = logging.getLogger(__name__)

#: How long --recover=cleanup waits for the killed tasks' launchers to record their ends.
CLEANUP_TIMEOUT = 30.0


class Recovery:
    """The agent's checkpointing and recovery room; all state it changes is the agent's."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def save_agent(self) -> None:
        """slave.info and ``latest``: a restarted agent comes back under this id."""
        assert self.agent.agent_id is not None
        try:
            self.agent.meta.save_agent(self.agent.agent_id, self.agent.agent_info())
        except OSError as exc:
            logger.error("cannot checkpoint the agent's id in %s: %s", self.agent.meta.root, exc)

    def checkpoint_executor(self, executor: Executor) -> None:
        """framework.info and executor.info, before the executor is launched; LaunchError if
        not."""
        agent_id = self.agent.agent_id
        assert agent_id is not None
        container = executor.container
        try:
            self.agent.meta.save_framework(
                agent_id, executor.framework_id, container.framework_info
            )
            self.agent.meta.save_executor(
                agent_id, executor.framework_id, executor.executor_id, executor.info
            )
        except OSError as exc:
            raise LaunchError(f"cannot checkpoint executor {executor}: {exc}") from None

    def checkpoint_task(self, container: Container) -> None:
        """framework.info and task.info, before anything of the task runs; LaunchError if not."""
        assert container.run_dir is not None and self.agent.agent_id is not None
        try:
            self.agent.meta.save_framework(
                self.agent.agent_id, container.framework_id, container.framework_info
            )
            self.agent.meta.save_task(container.run_dir, container.task_id, container.info)
        except OSError as exc:
            raise LaunchError(f"cannot checkpoint the task in {container.run_dir}: {exc}") from None

    def recover(self) -> None:
        """Take over what the previous agent on this work_dir left (Mesos' agent recovery).

        Its id, its frameworks, and each task: re-attached when its launcher
        still runs, finished from the launcher's record when it ended
        meanwhile, failed when neither can be told; unacknowledged updates are
        resent in order.  Every file is read before anything is started, so a
        bad one (:class:`CheckpointError`, ``--strict``) changes nothing.
        """
        state = self.agent.meta.recover(self.agent.flags.strict)
        if state is None:
            return
        self.agent.agent_id = state.agent_id
        self.agent.rebooted = not state.same_boot
        if self.agent.rebooted:
            logger.warning("the machine rebooted since the last run: no checkpointed task survived")
        for orphan in state.orphans if state.same_boot else ():
            containers.signal_group(orphan, signal.SIGKILL)
        for folder in state.unrecoverable:
            self.agent.meta.forget_run(folder)
        for run in state.runs:
            self._recover_run(state, run)
        for executor_run in state.executor_runs:
            self._recover_executor_run(state, executor_run)
        logger.info(
            "recovered agent %s: %d task(s) of %d framework(s)",
            self.agent.agent_id,
            len(self.agent.all_containers()),
            len(self.agent.containers),
        )

    def _recover_run(self, state: AgentState, run: RunState) -> None:
        framework_info = state.frameworks.get(run.framework_id, {})
        self.agent.frameworks.setdefault(run.framework_id, framework_info)
        container = self.agent.containerizer.new_container(
            run.framework_id, framework_info, run.task_info, run.container_id
        )
        container.run_dir = run.path
        if self._recover_task(container, run):
            return
        if state.same_boot:  # after a reboot no pid of the checkpoint means anything
            container.launcher, container.process = run.launcher, run.task
        container.runner = asyncio.get_running_loop().create_task(
            self._resume(container, run.termination), name=f"task-{run.task_id}"
        )
        if not framework_info.get("checkpoint"):
            # Mesos recovers only what a checkpointing framework asked to keep.
            container.kill_state = "TASK_LOST"
            self.agent.containerizer.kill(
                container,
                grace=0.0,
                reason="REASON_SLAVE_RESTARTED",
                message=NOT_CHECKPOINTED,
                source="SOURCE_SLAVE",
            )

    def _recover_task(self, container: Container, run: RunState) -> bool:
        """A task's state and unacknowledged updates; True when it had ended already."""
        container.recovered = True
        statuses = run.statuses()
        if statuses:
            container.state = statuses[-1]["state"]
        pending = run.pending()
        self.agent.updates.recover(run.framework_id, run.task_id, run.records, pending)
        self.agent.containers.setdefault(run.framework_id, {})[run.task_id] = container
        if container.state not in TERMINAL:
            return False
        container.finished.set()
        if not pending:  # acknowledged, but the agent stopped before forgetting it
            self.agent.task_status.forget(container)
        return True

    def _recover_executor_run(self, state: AgentState, run: ExecutorRunState) -> None:
        """A custom executor and its tasks: see :meth:`.Executors.recovered`."""
        framework_info = state.frameworks.get(run.framework_id, {})
        self.agent.frameworks.setdefault(run.framework_id, framework_info)
        room = self.agent.executor_room
        executor = room.adopt(run.framework_id, framework_info, run.info, run.container_id)
        container = executor.container
        container.run_dir = run.path
        container.recovered = True
        for task_run in run.tasks:
            task = self.agent.containerizer.new_container(
                run.framework_id, framework_info, task_run.task_info, run.container_id
            )
            room.attach(executor, task)
            self._recover_task(task, task_run)
        room.resize(executor)
        if state.same_boot:
            container.launcher, container.process = run.launcher, run.process
        alive = container.launcher is not None and is_alive(container.launcher)
        container.runner = asyncio.get_running_loop().create_task(
            self._resume(container, run.termination), name=f"executor-{run.executor_id}"
        )
        room.recovered(executor, alive)

    async def _resume(self, container: Container, termination: Termination | None) -> None:
        """A recovered task: isolators re-attached while it runs, then as for any task."""
        launcher, process = container.launcher, container.process
        if launcher is not None and process is not None:
            alive = is_alive(launcher)
            self._reattach_isolators(container, ended=not alive)
            if alive:
                logger.info("re-attached to task %s (pid %d)", container.task_id, process.pid)
        await self.agent.containerizer.supervise(container, termination)

    def recover_isolators(self) -> None:
        """Isolators' recover(): the containers this agent takes over (their launchers
        from this boot; those that ended while no agent watched too, so their last
        watch() can tell why); whatever else an isolator holds from before (a crashed
        agent's cgroups) is an orphan it destroys, as Mesos' isolators do at recovery.
        Runs before the recovered tasks' coroutines re-attach the isolators."""
        # A custom executor's container runs under its own launcher; its tasks have none.
        taken_over = [*self.agent.all_containers(), *self.agent.executor_containers()]
        keep = [
            c.container_id for c in taken_over if c.state not in TERMINAL and c.launcher is not None
        ]
        for named in self.agent.modules.isolators:
            if callable(getattr(named.module, "recover", None)):
                call(named, "recover", keep)

    def _reattach_isolators(self, container: Container, ended: bool = False) -> None:
        """recover() only names the containers kept: prepare, isolate and update again.

        The launch info prepare() answers is dropped (the task runs with the
        environment and rlimits it got at launch); what isolators keep per
        container (the pid to sample, the limits to watch) is set up anew.
        A task that ``ended`` while no agent watched gets only the isolators
        that keep state across restarts (those with recover(): its cgroup
        still knows of an OOM kill), prepared for the last watch() and
        cleanup(); its pid may name another process by now, so no isolate().
        """
        assert container.process is not None
        for named in self.agent.modules.isolators:
            if ended and not callable(getattr(named.module, "recover", None)):
                continue
            ok, _ = call(named, "prepare", self.agent.containerizer.container_config(container))
            if not ok:
                continue  # logged; the task keeps running, unwatched by this isolator
            container.prepared.append(named)
            if ended:
                continue
            call(named, "isolate", container.container_id, container.process.pid)
            call(named, "update", container.container_id, dict(container.resources))

    async def cleanup_previous(self) -> None:
        """``--recover=cleanup``: kill what the previous agent left, forget it, start anew."""
        try:
            state = self.agent.meta.recover(strict=False)
        except CheckpointError as exc:  # only `latest` itself can be this bad
            logger.error("%s", exc)
            state = None
        if state is not None and state.same_boot:
            for run in state.runs:
                # The task's group; a launcher that never said which task it started, itself.
                target = run.task or run.launcher
                if target is not None and containers.signal_group(target, signal.SIGKILL):
                    logger.info("killed task %s of the previous agent", run.task_id)
            for orphan in state.orphans:
                containers.signal_group(orphan, signal.SIGKILL)
            interval = self.agent.flags.container_watch_interval
            waits = [
                asyncio.ensure_future(containers.wait_exit(run.launcher, interval))
                for run in state.runs
                if run.launcher is not None
            ]
            if waits:
                # Bounded: a task stuck in the kernel must not keep the agent from starting.
                _, stuck = await asyncio.wait(waits, timeout=CLEANUP_TIMEOUT)
                for wait in stuck:
                    wait.cancel()
                if stuck:
                    logger.warning("%d launcher(s) of the previous agent did not exit", len(stuck))
        self.agent.meta.forget_agent(state.agent_id if state is not None else None)
        logger.info("--recover=cleanup: the previous agent's tasks are gone; registering anew")
