"""The default executor: runs task groups (LAUNCH_GROUP), as Mesos' ``mesos-default-executor``.

The agent starts it for an ``ExecutorInfo`` of type DEFAULT
(``python -P -m pymesos_modules.agent.default_executor``, in the executor's
container and sandbox, with Mesos' executor environment) and it speaks the v1
executor API (``POST /api/v1/executor`` on ``MESOS_AGENT_ENDPOINT``):

- the ``CommandInfo.uris`` of every task of a LAUNCH_GROUP are fetched first
  (:mod:`.fetcher`, as the executor's user, with the agent's cache when that
  user may use it), each into its task's sandbox ``<sandbox>/tasks/<task id>``,
  as Mesos' agent fetches a nested container's; a fetch that fails fails every
  task of the group (TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED, the message
  naming the URI) before any of it runs;
- then each task runs as a process of its own (a session of its own, so a kill
  reaches what it forks) in its sandbox (its ``MESOS_SANDBOX``, with its
  ``stdout``/``stderr``), its command as a command task's (``shell`` or argv,
  ``environment``); TASK_STARTING, TASK_RUNNING, then TASK_FINISHED /
  TASK_FAILED ("Command exited with status 3") / TASK_KILLED;
- its ``health_check`` and ``check`` run as for a command task
  (:class:`.health.TaskChecks`): updates carry ``healthy`` and
  ``check_status``, a task that fails its health check too often is killed;
- as Mesos: when a task of a group fails or is killed, the other tasks of that
  group are killed (TASK_KILLED); a KILL of one task kills its whole group;
  later groups run beside the earlier ones;
- SHUTDOWN kills every task (SIGTERM, SIGKILL after
  ``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``); once every task has ended and its
  terminal update is acknowledged, the executor exits;
- every call carries ``Authorization: Bearer`` with the executor's token when
  the agent gave one (``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``, see
  :mod:`.executor_auth`);
- a lost connection: re-subscribes (with its unacknowledged updates and tasks)
  when the framework checkpoints (``MESOS_CHECKPOINT=1``) for up to
  ``MESOS_RECOVERY_TIMEOUT``, else kills its tasks and exits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from pymesos_modules import jsonio
from pymesos_modules.agent import health
from pymesos_modules.agent.containers import LaunchError
from pymesos_modules.agent.executor_auth import TOKEN_VARIABLE, without_token
from pymesos_modules.agent.fetcher import DEFAULT_CACHE_SIZE, Fetcher
from pymesos_modules.agent.records import set_optional

logger = logging.getLogger("pymesos_modules.default_executor")

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0}
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST"}
FETCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"
#: Where the agent's fetcher cache is, and its bound in bytes: the agent tells its default
#: executors (ours alone: Mesos' default executor fetches nothing itself).
CACHE_DIR_VARIABLE = "PMM_FETCHER_CACHE_DIR"
CACHE_SIZE_VARIABLE = "PMM_FETCHER_CACHE_SIZE"


def task_sandbox(sandbox: Path, task_id: str) -> Path:
    """A group task's sandbox inside its executor's ``sandbox``, as Mesos lays it out."""
    return sandbox / "tasks" / task_id


def duration(text: str | None, default: float) -> float:
    """Seconds of a Mesos duration from the environment (``5secs``), or ``default``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", text or "")
    if not match or match.group(2) not in ("", *_UNITS):
        return default
    return float(match.group(1)) * _UNITS.get(match.group(2), 1.0)


def describe(returncode: int) -> str:
    """A task's end in Mesos' words."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"Command terminated with signal {name} ({-returncode})"
    return f"Command exited with status {returncode}"


@dataclass
class Task:
    """One task of a group, and its process."""

    info: dict[str, Any]
    group: list[str]
    process: asyncio.subprocess.Process | None = None
    state: str = "TASK_STAGING"
    killed: bool = False
    #: killed because its health check failed too often
    unhealthy: bool = False
    #: updates sent and not acknowledged yet, by uuid
    unacknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        """The task's id."""
        return str(self.info["task_id"]["value"])


class DefaultExecutor:
    """See the module docstring."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.url = f"http://{environ['MESOS_AGENT_ENDPOINT']}/api/v1/executor"
        self.framework_id = environ["MESOS_FRAMEWORK_ID"]
        self.executor_id = environ["MESOS_EXECUTOR_ID"]
        self.sandbox = Path(environ.get("MESOS_SANDBOX", "."))
        self.grace = duration(environ.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), 5.0)
        self.checkpoint = environ.get("MESOS_CHECKPOINT") == "1"
        self.recovery_timeout = duration(environ.get("MESOS_RECOVERY_TIMEOUT"), 900.0)
        self.backoff_max = duration(environ.get("MESOS_SUBSCRIPTION_BACKOFF_MAX"), 2.0)
        self.token = environ.get(TOKEN_VARIABLE)
        self.tasks: dict[str, Task] = {}
        cache = environ.get(CACHE_DIR_VARIABLE)
        size = environ.get(CACHE_SIZE_VARIABLE, "")
        self.fetcher = Fetcher(
            Path(cache) if cache else None, int(size) if size.isdigit() else DEFAULT_CACHE_SIZE
        )
        self.shutting_down = False
        self.done = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self._waits: set[asyncio.Task] = set()
        #: running launches and checkers: kept referenced until they end
        self._running: set[asyncio.Task] = set()

    # --- the connection -------------------------------------------------------------------

    def _call(self, kind: str, **body: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "framework_id": {"value": self.framework_id},
            "executor_id": {"value": self.executor_id},
            **body,
        }

    async def run(self) -> int:
        """Subscribe and serve until every task is over (or the connection is gone for good)."""
        # With --executor_secret_key the agent gave us a token: every call presents it.
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self.session = aiohttp.ClientSession(json_serialize=jsonio.dumps_text, headers=headers)
        try:
            deadline: float | None = None
            backoff = 0.5
            while not self.done.is_set():
                try:
                    await self._subscribed()
                    deadline, backoff = None, 0.5
                except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
                    logger.info("connection to the agent lost: %s", exc)
                if self.done.is_set():
                    break
                if not self.checkpoint:
                    logger.warning("disconnected and not checkpointing: killing the tasks")
                    await self.kill_all()
                    break
                now = time.monotonic()
                deadline = deadline or now + self.recovery_timeout
                if now > deadline:
                    logger.warning("the agent did not come back: killing the tasks")
                    await self.kill_all()
                    break
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        finally:
            await self.session.close()
        return 0

    async def _subscribed(self) -> None:
        assert self.session is not None
        subscribe = {
            "unacknowledged_tasks": [t.info for t in self.tasks.values() if t.unacknowledged],
            "unacknowledged_updates": [
                {"status": s} for t in self.tasks.values() for s in t.unacknowledged.values()
            ],
        }
        call = self._call("SUBSCRIBE", subscribe=subscribe)
        async with self.session.post(
            self.url, json=call, timeout=aiohttp.ClientTimeout(total=None, connect=10)
        ) as response:
            if response.status != 200:
                text = await response.text()
                raise aiohttp.ClientError(f"SUBSCRIBE answered {response.status}: {text}")
            content = response.content
            while not self.done.is_set():
                line = await content.readline()
                if not line:
                    return
                if not line.strip():
                    continue
                event = jsonio.loads(await content.readexactly(int(line)))
                await self.handle(event)

    async def _post(self, call: dict[str, Any]) -> None:
        assert self.session is not None
        async with self.session.post(self.url, json=call) as response:
            if response.status != 202:
                text = await response.text()
                logger.warning("%s answered %s: %s", call["type"], response.status, text)

    # --- events ---------------------------------------------------------------------------

    async def handle(self, event: dict[str, Any]) -> None:
        """One event of the agent's stream."""
        kind = event.get("type")
        if kind == "LAUNCH_GROUP":
            tasks = ((event.get("launch_group") or {}).get("task_group") or {}).get("tasks", [])
            self._background(self.launch_group(tasks))
        elif kind == "LAUNCH":  # a single task, as a group of one
            self._background(self.launch_group([(event.get("launch") or {}).get("task", {})]))
        elif kind == "KILL":
            task_id = ((event.get("kill") or {}).get("task_id") or {}).get("value")
            task = self.tasks.get(str(task_id))
            if task is not None:
                await self.kill_group(task.group)
        elif kind == "ACKNOWLEDGED":
            body = event.get("acknowledged") or {}
            task = self.tasks.get(str((body.get("task_id") or {}).get("value")))
            if task is not None:
                task.unacknowledged.pop(str(body.get("uuid")), None)
            self._maybe_done()
        elif kind == "SHUTDOWN":
            self.shutting_down = True
            await self.kill_all()
            self.done.set()  # the agent asked: no waiting for acknowledgements
        elif kind == "ERROR":
            logger.error("the agent says: %s", (event.get("error") or {}).get("message"))
        # SUBSCRIBED, MESSAGE (the default executor takes none) and HEARTBEAT need nothing.

    async def update(
        self,
        task: Task,
        state: str,
        message: str = "",
        reason: str | None = None,
        healthy: bool | None = None,
        check_status: dict[str, Any] | None = None,
    ) -> None:
        """A status update of ``task``, kept until acknowledged."""
        task.state = state
        status: dict[str, Any] = {
            "task_id": {"value": task.task_id},
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
            "timestamp": time.time(),
        }
        if check_status is None:
            check_status = health.empty_check_status(task.info)
        set_optional(
            status, message=message, reason=reason, healthy=healthy, check_status=check_status
        )
        task.unacknowledged[status["uuid"]] = status
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await self._post(self._call("UPDATE", update={"status": status}))

    # --- tasks ----------------------------------------------------------------------------

    def _background(self, work: Any) -> None:
        """Run ``work`` beside the event stream (a fetch must not hold up a KILL)."""
        runner = asyncio.get_running_loop().create_task(work)
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)

    async def launch_group(self, infos: list[dict[str, Any]]) -> None:
        """Fetch every task's URIs, then start every task of the group; a task that cannot be
        fetched or started fails the group."""
        ids = [str(i["task_id"]["value"]) for i in infos]
        group = [Task(info, ids) for info in infos]
        for task in group:
            self.tasks[task.task_id] = task
        try:
            for task in group:
                sandbox = task_sandbox(self.sandbox, task.task_id)
                sandbox.mkdir(parents=True, exist_ok=True)
                await self.fetcher.fetch(task.info.get("command"), sandbox)
        except (LaunchError, OSError) as exc:
            for task in group:
                if not task.killed:  # a task killed meanwhile is TASK_KILLED already
                    task.killed = True
                    await self.update(task, "TASK_FAILED", str(exc), FETCH_FAILED)
            self._maybe_done()
            return
        for task in group:
            if task.killed:  # killed (or its group failed) while the group was fetched
                continue
            await self.update(task, "TASK_STARTING")
            try:
                task.process = await self._spawn(task)
            except (OSError, ValueError) as exc:
                await self.update(task, "TASK_FAILED", f"cannot start the command: {exc}")
                await self.kill_group(ids)
                return
            await self.update(task, "TASK_RUNNING")
            waiter = asyncio.get_running_loop().create_task(self._wait(task))
            self._waits.add(waiter)
            waiter.add_done_callback(self._waits.discard)
            self._checks(task)

    def _checks(self, task: Task) -> None:
        """Start the task's health check and general check, as the agent's for a command task
        (:class:`.health.TaskChecks`), if it has them."""

        async def report(
            reason: str, healthy: bool | None, check_status: dict[str, Any] | None
        ) -> None:
            if task.state == "TASK_RUNNING" and not task.killed:
                await self.update(task, "TASK_RUNNING", "", reason, healthy, check_status)

        async def kill(message: str) -> None:
            task.unhealthy = True
            logger.warning("%s", message)
            await self.kill_group(task.group)

        def alive() -> bool:
            return task.process is not None and task.process.returncode is None and not task.killed

        try:
            checks = health.TaskChecks(
                task.info, task_sandbox(self.sandbox, task.task_id), report, kill
            )
        except ValueError as exc:  # the agent refuses these at launch; never here
            logger.warning("task %s: not checking it: %s", task.task_id, exc)
            return
        for runner in checks.start(alive):
            self._running.add(runner)
            runner.add_done_callback(self._running.discard)

    async def _spawn(self, task: Task) -> asyncio.subprocess.Process:
        command = task.info.get("command") or {}
        sandbox = task_sandbox(self.sandbox, task.task_id)
        sandbox.mkdir(parents=True, exist_ok=True)
        env = without_token(dict(os.environ))
        env.update({"MESOS_TASK_ID": task.task_id, "MESOS_SANDBOX": str(sandbox)})
        for variable in (command.get("environment") or {}).get("variables", []):
            if variable.get("type", "VALUE") == "VALUE" and "name" in variable:
                env[str(variable["name"])] = str(variable.get("value", ""))
        value = command.get("value")
        if not isinstance(value, str) or not value:
            raise ValueError("the task's command has no value")
        if command.get("shell", True):
            program, arguments = "/bin/sh", ["-c", value]
        else:  # argv[0] is the program itself (asyncio cannot set another)
            program, arguments = value, [str(a) for a in (command.get("arguments") or [])[1:]]
        with (sandbox / "stdout").open("ab") as out, (sandbox / "stderr").open("ab") as err:
            return await asyncio.create_subprocess_exec(
                program,
                *arguments,
                cwd=sandbox,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    async def _wait(self, task: Task) -> None:
        assert task.process is not None
        returncode = await task.process.wait()
        with contextlib.suppress(ProcessLookupError):  # what it forked ends with it
            os.killpg(task.process.pid, signal.SIGKILL)
        if task.killed:
            healthy = False if task.unhealthy else None
            await self.update(task, "TASK_KILLED", describe(returncode), healthy=healthy)
        elif returncode == 0:
            await self.update(task, "TASK_FINISHED", describe(returncode))
        else:
            await self.update(task, "TASK_FAILED", describe(returncode))
            await self.kill_group(task.group)  # as Mesos: a failed task ends its group
        self._maybe_done()

    async def kill_group(self, task_ids: list[str]) -> None:
        """Kill the live tasks among ``task_ids``: SIGTERM, SIGKILL after the grace period."""
        live = []
        for task_id in task_ids:
            task = self.tasks.get(task_id)
            if task is None or task.state in TERMINAL or task.killed:
                continue
            task.killed = True
            if task.process is None or task.process.returncode is not None:
                if task.process is None:
                    await self.update(task, "TASK_KILLED", "killed before it started")
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(task.process.pid, signal.SIGTERM)
            live.append(task)
        if live:
            asyncio.get_running_loop().create_task(self._escalate(live))

    async def _escalate(self, tasks: list[Task]) -> None:
        await asyncio.sleep(self.grace)
        for task in tasks:
            if task.process is not None and task.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(task.process.pid, signal.SIGKILL)

    async def kill_all(self) -> None:
        """Kill every task and wait for them."""
        await self.kill_group(list(self.tasks))
        if self._waits:
            await asyncio.wait(list(self._waits), timeout=self.grace + 5.0)

    def _maybe_done(self) -> None:
        """Exit once every task ended and its updates were acknowledged."""
        ended = all(t.state in TERMINAL for t in self.tasks.values())
        acked = all(not t.unacknowledged for t in self.tasks.values())
        if self.tasks and ended and acked:
            self.done.set()


def main() -> int:
    """Run the default executor with the environment the agent gave it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    executor = DefaultExecutor(dict(os.environ))
    return asyncio.run(executor.run())


if __name__ == "__main__":
    sys.exit(main())
