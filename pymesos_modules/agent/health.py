"""Health checks and general checks of a task, as Mesos' command and default executors run them.

Mesos' semantics (src/checks/health_checker.cpp): the first check runs
``delay_seconds`` after the task is RUNNING, then one every
``interval_seconds``; a check that takes longer than ``timeout_seconds``
failed. COMMAND succeeds on exit status 0, HTTP on a status in [200, 400)
(``GET scheme://127.0.0.1:port/path``), TCP when a connection to
``127.0.0.1:port`` opens. Failures within ``grace_period_seconds`` of the
start are ignored until the first success. The first success, and the first
success after failures, send TASK_RUNNING with ``healthy: true``; each
counted failure sends ``healthy: false`` (reason
REASON_TASK_HEALTH_CHECK_STATUS_UPDATED); ``consecutive_failures`` in a row
kill the task, whose TASK_KILLED carries ``healthy: false``.

A general check (``TaskInfo.check``, Mesos' src/checks/checker.cpp) probes the
same way but never kills: each result that differs from the last is sent as
TASK_RUNNING with its ``check_status`` (REASON_TASK_CHECK_STATUS_UPDATED).
:class:`TaskChecks` runs both for one task; every update carries the latest of
both results (a health update the last ``check_status``, a check update the
last ``healthy``), as Mesos' command executor does, and every other status of a
task with a check carries an empty ``check_status`` of its type
(:func:`empty_check_status`).  The agent runs them for command tasks
(:class:`HealthChecks`), the default executor for a group's tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from pymesos_modules.agent import containers
from pymesos_modules.agent.executor_auth import without_token

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent
    from pymesos_modules.agent.records import Container

logger = logging.getLogger(__name__)

REASON = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
CHECK_REASON = "REASON_TASK_CHECK_STATUS_UPDATED"


@dataclass(frozen=True)
class HealthCheck:
    """A checked ``HealthCheck`` (Mesos' defaults filled in)."""

    kind: str
    delay: float = 15.0
    interval: float = 10.0
    timeout: float = 20.0
    consecutive_failures: int = 3
    grace_period: float = 10.0
    command: dict[str, Any] | None = None
    scheme: str = "http"
    port: int = 0
    path: str = "/"


def _number(check: dict[str, Any], field: str, name: str, default: float) -> float:
    value = check.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{field}.{name} must be a number >= 0, found {value!r}")
    return float(value)


def parse(check: Any, field: str = "health_check") -> HealthCheck | None:
    """``TaskInfo.health_check`` (a HealthCheck), or with ``field="check"`` ``TaskInfo.check``
    (a CheckInfo: its command is ``command.command``, no grace period or failure count),
    checked; None without one; ValueError names the bad field."""
    if check is None:
        return None
    if not isinstance(check, dict):
        raise ValueError(f"{field} must be an object")
    kind = check.get("type")
    timing = {
        "delay": _number(check, field, "delay_seconds", 15.0),
        "interval": _number(check, field, "interval_seconds", 10.0),
        "timeout": _number(check, field, "timeout_seconds", 20.0),
    }
    if field == "health_check":
        timing["grace_period"] = _number(check, field, "grace_period_seconds", 10.0)
        failures = check.get("consecutive_failures", 3)
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise ValueError(
                f"{field}.consecutive_failures must be an integer >= 1, found {failures!r}"
            )
        timing["consecutive_failures"] = failures
    if kind == "COMMAND":
        command = check.get("command")
        if field == "check":  # CheckInfo.Command wraps the CommandInfo
            command = command.get("command") if isinstance(command, dict) else None
        if not isinstance(command, dict) or not command.get("value"):
            raise ValueError(f"{field}.command (a CommandInfo with a value) is required")
        return HealthCheck(kind, command=command, **timing)
    if kind in ("HTTP", "TCP"):
        body = check.get(kind.lower())
        port = body.get("port") if isinstance(body, dict) else None
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"{field}.{kind.lower()}.port must be a port number")
        scheme = str(body.get("scheme", "http")) if kind == "HTTP" else "http"
        if scheme not in ("http", "https"):
            raise ValueError(f"{field}.http.scheme must be http or https, found {scheme!r}")
        path = str(body.get("path", "/")) if kind == "HTTP" else "/"
        return HealthCheck(
            kind,
            scheme=scheme,
            port=port,
            path=path if path.startswith("/") else f"/{path}",
            **timing,
        )
    raise ValueError(f"{field}.type must be COMMAND, HTTP or TCP, found {kind!r}")


def empty_check_status(info: dict[str, Any]) -> dict[str, Any] | None:
    """What a status of a task with a general check carries before the check's first result,
    as Mesos: the check's type and an empty result (None without a valid check)."""
    try:
        check = parse(info.get("check"), "check")
    except ValueError:
        return None
    return None if check is None else {"type": check.kind, check.kind.lower(): {}}


class Checker:
    """One check of a task (Mesos' HealthChecker and Checker share it): what to probe and how."""

    def __init__(self, check: HealthCheck, task_id: str, sandbox: Path) -> None:
        self.check, self.task_id, self.sandbox = check, task_id, sandbox

    async def run_health(
        self,
        alive: Callable[[], bool],
        report: Callable[[bool], Awaitable[None]],
        kill: Callable[[str], Awaitable[None]],
    ) -> None:
        """Health-check until the task is not ``alive()`` any more, or killed for failing:
        ``report(healthy)`` on a change of health, ``kill(message)`` when it must die."""
        check = self.check
        loop = asyncio.get_running_loop()
        started = loop.time()
        initializing, failures = True, 0
        await asyncio.sleep(check.delay)
        while alive():
            ok, why, _ = await self.result()
            if not alive():
                return
            if ok:
                if initializing or failures:
                    await report(True)
                initializing, failures = False, 0
            elif (
                initializing and check.grace_period and loop.time() - started <= check.grace_period
            ):
                logger.info("health check of %s failed in its grace period: %s", self.task_id, why)
            else:
                failures += 1
                logger.warning(
                    "health check of %s failed %d time(s) in a row: %s", self.task_id, failures, why
                )
                await report(False)
                if failures >= check.consecutive_failures:
                    await kill(f"task killed after {failures} failed health checks: {why}")
                    return
            await asyncio.sleep(check.interval)

    async def run_check(
        self, alive: Callable[[], bool], report: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> None:
        """Mesos' general check (``TaskInfo.check``): after ``delay_seconds``, one every
        ``interval_seconds``; each result that differs from the last is reported (a check
        never kills its task)."""
        await asyncio.sleep(self.check.delay)
        last: dict[str, Any] | None = None
        while alive():
            _, _, status = await self.result()
            if not alive():
                return
            if status != last:
                await report(status)
                last = status
            await asyncio.sleep(self.check.interval)

    async def result(self) -> tuple[bool, str, dict[str, Any]]:
        """One check: (passed, why not, Mesos' CheckStatusInfo of it: exit code, HTTP status
        or TCP success; empty when it timed out)."""
        empty = {"type": self.check.kind, self.check.kind.lower(): {}}
        try:
            return await asyncio.wait_for(self._probe(), self.check.timeout)
        except TimeoutError:
            return False, f"timed out after {self.check.timeout:g} s", empty

    async def _probe(self) -> tuple[bool, str, dict[str, Any]]:
        check = self.check
        if check.kind == "TCP":
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", check.port)
            except OSError as exc:
                why = f"cannot connect to 127.0.0.1:{check.port}: {exc.strerror or exc}"
                return False, why, {"type": "TCP", "tcp": {"succeeded": False}}
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True, "", {"type": "TCP", "tcp": {"succeeded": True}}
        if check.kind == "HTTP":
            url = f"{check.scheme}://127.0.0.1:{check.port}{check.path}"
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(url, ssl=False) as response,
                ):
                    status = response.status
            except (aiohttp.ClientError, OSError) as exc:
                return False, f"GET {url}: {exc}", {"type": "HTTP", "http": {}}
            ok = 200 <= status < 400
            why = "" if ok else f"GET {url} answered {status}"
            return ok, why, {"type": "HTTP", "http": {"status_code": status}}
        code = await self._command(check.command or {})
        why = "" if code == 0 else containers.describe_exit(code)
        return code == 0, why, {"type": "COMMAND", "command": {"exit_code": code}}

    async def _command(self, command: dict[str, Any]) -> int:
        program, argv = containers.command_argv(command)
        env = without_token(dict(os.environ))
        env.update({"MESOS_SANDBOX": str(self.sandbox), "MESOS_TASK_ID": self.task_id})
        env.update(containers.command_environment(command))
        process = await asyncio.create_subprocess_exec(
            program,
            *argv[1:],
            cwd=self.sandbox,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = await process.wait()
        finally:
            if process.returncode is None:  # timed out: nothing of the check may linger
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        return code


class TaskChecks:
    """A task's health check (``TaskInfo.health_check``) and general check
    (``TaskInfo.check``), as Mesos' command and default executors run them.

    Whoever runs the task (the agent for a command task, the default executor
    for a group's task) says how an update goes out (``report(reason, healthy,
    check_status)``: TASK_RUNNING again) and how the task dies (``kill(message)``,
    after too many failed health checks).  Each update carries the latest of
    both results, as Mesos' command executor sends them: a health update the last
    check status, a check update the last ``healthy``.
    """

    def __init__(
        self,
        info: dict[str, Any],
        sandbox: Path,
        report: Callable[[str, bool | None, dict[str, Any] | None], Awaitable[None]],
        kill: Callable[[str], Awaitable[None]],
    ) -> None:
        """ValueError names a bad ``health_check`` or ``check`` of the TaskInfo ``info``."""
        self.task_id = str((info.get("task_id") or {}).get("value", ""))
        self.health = parse(info.get("health_check"))
        self.check = parse(info.get("check"), "check")
        self.sandbox = sandbox
        self.report, self.kill = report, kill
        #: the latest results, carried by every update of either kind
        self.healthy: bool | None = None
        self.check_status: dict[str, Any] | None = None

    def start(self, alive: Callable[[], bool]) -> list[asyncio.Task]:
        """Start the checkers the task has (none, one or both); they stop once not ``alive()``."""
        loop = asyncio.get_running_loop()
        runners = []
        if self.check is not None:
            checker = Checker(self.check, self.task_id, self.sandbox)
            runners.append(
                loop.create_task(
                    checker.run_check(alive, self._checked), name=f"check-{self.task_id}"
                )
            )
        if self.health is not None:
            checker = Checker(self.health, self.task_id, self.sandbox)
            runners.append(
                loop.create_task(
                    checker.run_health(alive, self._health_changed, self.kill),
                    name=f"health-{self.task_id}",
                )
            )
        return runners

    async def _health_changed(self, healthy: bool) -> None:
        self.healthy = healthy
        await self.report(REASON, healthy, self.check_status)

    async def _checked(self, status: dict[str, Any]) -> None:
        self.check_status = status
        await self.report(CHECK_REASON, self.healthy, status)


class HealthChecks:
    """The agent's checks room (command tasks); all state it changes is the agent's."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def start(self, container: Container) -> None:
        """The task is RUNNING: start its health checker and its general checker, if any."""

        async def report(
            reason: str, healthy: bool | None, check_status: dict[str, Any] | None
        ) -> None:
            # TASK_RUNNING again, with the checks' latest results.
            if container.state == "TASK_RUNNING" and not container.kill_requested:
                self.agent.task_status.update(
                    container,
                    "TASK_RUNNING",
                    None,
                    reason,
                    healthy=healthy,
                    check_status=check_status,
                )

        async def kill(message: str) -> None:
            container.killed_unhealthy = True
            self.agent.containerizer.kill(container, message=message)

        try:
            checks = TaskChecks(container.info, container.sandbox, report, kill)
        except ValueError:
            return  # refused at launch already
        container.checkers = checks.start(
            lambda: container.running and not container.kill_requested
        )

    @staticmethod
    def stop(container: Container) -> None:
        """The task ended or is being killed: no more checks."""
        for runner in container.checkers:
            runner.cancel()
        container.checkers = []
