"""Health checks (``TaskInfo.health_check``), as Mesos' command and default executors run them.

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


class Checker:
    """One task's health checker, Mesos' HealthChecker: whoever runs the task (the agent for
    a command task, the default executor for a group's task) gives it what to do on a health
    change (``report(healthy)``) and when the task must die (``kill(message)``)."""

    def __init__(
        self,
        check: HealthCheck,
        task_id: str,
        sandbox: Path,
        report: Callable[[bool], Awaitable[None]],
        kill: Callable[[str], Awaitable[None]],
    ) -> None:
        self.check, self.task_id, self.sandbox = check, task_id, sandbox
        self.report, self.kill = report, kill

    async def run(self, alive: Callable[[], bool]) -> None:
        """Check until the task is not ``alive()`` any more, or killed for failing."""
        check = self.check
        loop = asyncio.get_running_loop()
        started = loop.time()
        initializing, failures = True, 0
        await asyncio.sleep(check.delay)
        while alive():
            ok, why = await self.probe()
            if not alive():
                return
            if ok:
                if initializing or failures:
                    await self.report(True)
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
                await self.report(False)
                if failures >= check.consecutive_failures:
                    await self.kill(f"task killed after {failures} failed health checks: {why}")
                    return
            await asyncio.sleep(check.interval)

    async def probe(self) -> tuple[bool, str]:
        """One check: (passed, why not)."""
        ok, why, _ = await self.result()
        return ok, why

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
        env = dict(os.environ)
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


async def run_check(
    checker: Checker,
    report: Callable[[dict[str, Any]], Awaitable[None]],
    alive: Callable[[], bool],
) -> None:
    """Mesos' general check (``TaskInfo.check``): after ``delay_seconds``, one every
    ``interval_seconds``; each result that differs from the last is reported (a check never
    kills its task)."""
    await asyncio.sleep(checker.check.delay)
    last: dict[str, Any] | None = None
    while alive():
        _, _, status = await checker.result()
        if not alive():
            return
        if status != last:
            await report(status)
            last = status
        await asyncio.sleep(checker.check.interval)


class HealthChecks:
    """The agent's health checks room (command tasks); all state it changes is the agent's."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def start(self, container: Container) -> None:
        """The task is RUNNING: start its health checker and its general checker, if any."""
        try:
            check = parse(container.info.get("health_check"))
            general = parse(container.info.get("check"), "check")
        except ValueError:
            return  # refused at launch already
        if general is not None:
            self._start_check(container, general)
        if check is None:
            return

        async def report(healthy: bool) -> None:
            # TASK_RUNNING again, with ``healthy`` (Mesos keeps the rest of the last status).
            if container.state == "TASK_RUNNING" and not container.kill_requested:
                self.agent.task_status.update(
                    container, "TASK_RUNNING", None, REASON, healthy=healthy
                )

        async def kill(message: str) -> None:
            container.killed_unhealthy = True
            self.agent.containerizer.kill(container, message=message)

        checker = Checker(check, container.task_id, container.sandbox, report, kill)
        container.health_checker = asyncio.get_running_loop().create_task(
            checker.run(lambda: container.running and not container.kill_requested),
            name=f"health-{container.task_id}",
        )

    def _start_check(self, container: Container, check: HealthCheck) -> None:
        async def report(status: dict[str, Any]) -> None:
            if container.state == "TASK_RUNNING" and not container.kill_requested:
                self.agent.task_status.update(
                    container, "TASK_RUNNING", None, CHECK_REASON, check_status=status
                )

        async def never(_: str) -> None:  # a check never kills its task
            return

        async def ignored(_: bool) -> None:
            return

        checker = Checker(check, container.task_id, container.sandbox, ignored, never)
        container.checker = asyncio.get_running_loop().create_task(
            run_check(checker, report, lambda: container.running and not container.kill_requested),
            name=f"check-{container.task_id}",
        )

    @staticmethod
    def stop(container: Container) -> None:
        """The task ended or is being killed: no more checks."""
        for task in (container.health_checker, container.checker):
            if task is not None:
                task.cancel()
        container.health_checker = container.checker = None
