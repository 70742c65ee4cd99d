"""Running one command task: its sandbox, argv, environment, rlimits, process group and kill.

Every task runs in its own session (``start_new_session``: the task process
leads a new process group), so a kill reaches everything the task forked and
nothing of the agent's.  Output goes to ``stdout`` / ``stderr`` files in the
sandbox, as Mesos' command executor does.

rlimits: ``setrlimit`` has to run in the child between fork and exec, so the
limits hold from the task's first instruction and bind everything it forks;
``prlimit()`` from the agent after the spawn would leave the task running
unlimited for a moment, and a shell ``ulimit`` wrapper would change argv and
cannot express every Mesos RLimitInfo.  So the limits go into a ``preexec_fn``
that only calls ``resource.setrlimit`` with values computed beforehand in the
agent (no allocation, no imports, no locks: what is safe to run in a child
forked from a threaded process).  The limits are checked in the agent first, so
a bad one fails the task with a clear message instead of a bare
"Exception occurred in preexec_fn".

Every task runs under ``pmm-launcher`` (native/agent/launcher.c), the group
leader: it waits for the task and writes its wait status into the run's
checkpoint folder, so a task outlives the agent and a restarted agent, which
is no longer its parent, still learns how it ended (:class:`RecoveredProcess`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pymesos_modules.kinds.isolator import RLIMITS
from pymesos_modules.paths import LAUNCHER


class LaunchError(Exception):
    """The task cannot be launched; the message says why (it becomes the TASK_FAILED message)."""


def sandbox_path(
    work_dir: Path, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> Path:
    """Mesos' layout: slaves/<agent>/frameworks/<fw>/executors/<executor>/runs/<container>."""
    return (
        (work_dir / "slaves" / agent_id / "frameworks" / framework_id / "executors" / executor_id)
        / "runs"
        / container_id
    )


def make_sandbox(path: Path) -> None:
    """Create the sandbox and point ``runs/latest`` at it (as Mesos does)."""
    path.mkdir(parents=True, exist_ok=False)
    latest = path.parent / "latest"
    with contextlib.suppress(FileNotFoundError):
        latest.unlink()
    with contextlib.suppress(OSError):  # a convenience link; the task does not need it
        latest.symlink_to(path.name)


def command_argv(command: Any) -> tuple[str, list[str]]:
    """(program, argv) for a Mesos CommandInfo: ``sh -c value`` or value + arguments."""
    if not isinstance(command, dict):
        raise LaunchError("TaskInfo has no 'command' (only command tasks are supported)")
    value = command.get("value")
    shell = command.get("shell", True)
    arguments = command.get("arguments", [])
    if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
        raise LaunchError("command.arguments must be a list of strings")
    if shell:
        if not isinstance(value, str) or not value:
            raise LaunchError("command.value must be a non-empty string when shell is true")
        return "/bin/sh", ["/bin/sh", "-c", value]
    if not isinstance(value, str) or not value:
        raise LaunchError("command.value (the program) is required when shell is false")
    return value, list(arguments) or [value]


def command_environment(command: Any) -> dict[str, str]:
    """CommandInfo.environment.variables (type VALUE; SECRET is refused)."""
    env = (command or {}).get("environment") or {}
    out: dict[str, str] = {}
    for index, variable in enumerate(env.get("variables", [])):
        if not isinstance(variable, dict) or not isinstance(variable.get("name"), str):
            raise LaunchError(f"command.environment.variables[{index}] needs a 'name'")
        kind = variable.get("type", "VALUE")
        if kind != "VALUE":
            raise LaunchError(
                f"environment variable '{variable['name']}' is of type {kind}; "
                f"only VALUE is supported"
            )
        value = variable.get("value", "")
        if not isinstance(value, str):
            raise LaunchError(f"environment variable '{variable['name']}' needs a string value")
        out[variable["name"]] = value
    return out


def port_environment(ports: Sequence[int]) -> dict[str, str]:
    """What Marathon-style tasks expect: PORT0..PORTn, PORT (= PORT0) and PORTS."""
    if not ports:
        return {}
    env = {f"PORT{i}": str(p) for i, p in enumerate(ports)}
    env["PORT"] = str(ports[0])
    env["PORTS"] = ",".join(str(p) for p in ports)
    return env


def merge_environments(parts: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, str]:
    """Isolator environments merged in order; one key set to two values names both isolators."""
    out: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name, env in parts:
        for key, value in env.items():
            if key in out and out[key] != value:
                raise LaunchError(
                    f"isolators '{owner[key]}' and '{name}' both set {key} "
                    f"('{out[key]}' and '{value}')"
                )
            out[key], owner[key] = str(value), name
    return out


def check_rlimits(limits: Iterable[tuple[str, Any]]) -> list[tuple[int, int, int]]:
    """(RLIMIT_*, soft, hard) for setrlimit; LaunchError names the isolator and limit at fault."""
    out = []
    for isolator, limit in limits:
        name = getattr(limit, "resource", None)
        if name not in RLIMITS:
            raise LaunchError(
                f"isolator '{isolator}' asked for an unknown rlimit {name!r} "
                f"(known: {', '.join(sorted(RLIMITS))})"
            )
        which = RLIMITS[name]
        soft = resource.RLIM_INFINITY if limit.soft is None else int(limit.soft)
        hard = resource.RLIM_INFINITY if limit.hard is None else int(limit.hard)

        def bigger(a: int, b: int) -> bool:
            if a == resource.RLIM_INFINITY:
                return b != resource.RLIM_INFINITY
            return b != resource.RLIM_INFINITY and a > b

        if bigger(soft, hard):
            raise LaunchError(f"isolator '{isolator}': {name} soft limit {soft} > hard {hard}")
        current_hard = resource.getrlimit(which)[1]
        if os.geteuid() != 0 and bigger(hard, current_hard):
            raise LaunchError(
                f"isolator '{isolator}': {name} hard limit {hard} is above the agent's own "
                f"hard limit {current_hard}, which only root may raise"
            )
        out.append((which, soft, hard))
    return out


def rlimit_preexec(limits: list[tuple[int, int, int]]) -> Callable[[], None] | None:
    """The child-side step applying ``limits`` before exec (see module docstring)."""
    if not limits:
        return None
    prepared = tuple((which, (soft, hard)) for which, soft, hard in limits)
    setrlimit = resource.setrlimit

    def apply() -> None:
        for which, values in prepared:
            setrlimit(which, values)

    return apply


def spawn(
    program: str,
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path,
    sandbox: Path,
    limits: list[tuple[int, int, int]],
    status_file: Path,
) -> TaskProcess:
    """Start the task under the launcher in a new session, output into the sandbox's files.

    The launcher records the task's wait status in ``status_file``.  A plain
    ``Popen`` rather than an asyncio subprocess: asyncio kills a child whose
    transport closes, and a task must outlive an agent that stops to restart.
    """
    if not os.access(LAUNCHER, os.X_OK):
        raise LaunchError(f"the task launcher {LAUNCHER} is missing: reinstall the package")
    # Resolved here, as execvp would, so a missing program fails the launch
    # with its name rather than as an exit status 127 from the launcher.
    if "/" in program:
        path = Path(cwd, program)  # a relative one is looked up where the task runs
        resolved = program if path.is_file() and os.access(path, os.X_OK) else None
    else:
        resolved = shutil.which(program, path=env.get("PATH", os.defpath))
    if resolved is None:
        raise LaunchError(f"failed to run {shlex.join(argv)}: {program}: no such executable")
    with open(sandbox / "stdout", "ab") as stdout, open(sandbox / "stderr", "ab") as stderr:
        try:
            popen = subprocess.Popen(
                [str(LAUNCHER), str(status_file), resolved, *argv],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=dict(env),
                cwd=str(cwd),
                start_new_session=True,
                preexec_fn=rlimit_preexec(limits),
            )
        except OSError as exc:
            raise LaunchError(f"failed to run {shlex.join(argv)}: {exc.strerror or exc}") from None
    return TaskProcess(popen.pid, status_file, popen)


def signal_group(pid: int, signum: int) -> bool:
    """Send ``signum`` to the task's process group; False when nothing is left in it."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # the group leader's pid was reused by someone else's process
        return False
    return True


def wait_status(returncode: int) -> int:
    """The raw ``waitpid`` status asyncio's returncode stands for (signal or exit code)."""
    return -returncode & 0x7F if returncode < 0 else (returncode & 0xFF) << 8


def describe_exit(returncode: int) -> str:
    """Mesos' wording: 'Command exited with status 3' / 'Command terminated with signal ...'."""
    if returncode >= 0:
        return f"Command exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"Command terminated with signal {name} ({-returncode})"


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks after boot), or None if there is no such process.

    A pid with another start time than the one checkpointed was reused by
    someone else's process after the task ended.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def read_wait_status(status_file: Path) -> int | None:
    """The launcher's record of how a task ended (a raw wait status), if it wrote one."""
    try:
        text = status_file.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read {status_file}: {exc}") from None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{status_file}: expected a wait status, found {text[:40]!r}") from None


def returncode_of(wait: int) -> int:
    """asyncio's returncode for a raw wait status (negative: the signal)."""
    return -os.WTERMSIG(wait) if os.WIFSIGNALED(wait) else os.WEXITSTATUS(wait)


class TaskProcess:
    """A task's launcher: the agent's child, or one a restarted agent found running.

    ``wait()`` notices the exit through a pidfd (a found launcher is not the
    agent's child, so it cannot be waited for); the exit status is the
    child's own (the launcher ends as its task did) or, for a found one, what
    the launcher recorded in its status file.  ``recorded`` is False when
    there is no such record (e.g. the launcher itself was SIGKILLed).
    """

    def __init__(self, pid: int, status_file: Path, popen: subprocess.Popen | None = None) -> None:
        self.pid = pid
        self.status_file = status_file
        self.returncode: int | None = None
        self.recorded = True
        self._popen = popen

    def ended(self) -> None:
        """The launcher is gone (found so at recovery): take its record as the exit status."""
        wait = read_wait_status(self.status_file)
        self.recorded = wait is not None
        self.returncode = returncode_of(wait) if wait is not None else -signal.SIGKILL

    async def wait(self) -> int:
        """Wait for the launcher to exit; the task's returncode (negative: its signal)."""
        if self.returncode is not None:
            return self.returncode
        loop = asyncio.get_running_loop()
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            fd = None
        if fd is not None:
            gone = loop.create_future()
            loop.add_reader(fd, lambda: gone.done() or gone.set_result(None))
            try:
                await gone
            finally:
                loop.remove_reader(fd)
                os.close(fd)
        if self._popen is not None:
            self.returncode = self._popen.wait()  # exited already: reaps at once
        else:
            self.ended()
        assert self.returncode is not None
        return self.returncode
