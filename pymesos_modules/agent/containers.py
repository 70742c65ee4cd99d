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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shlex
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pymesos_modules.kinds.isolator import RLIMITS


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


async def spawn(
    program: str,
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path,
    sandbox: Path,
    limits: list[tuple[int, int, int]],
) -> asyncio.subprocess.Process:
    """Start the task process in a new session, output into the sandbox's files."""
    with open(sandbox / "stdout", "ab") as stdout, open(sandbox / "stderr", "ab") as stderr:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                executable=program,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=dict(env),
                cwd=str(cwd),
                start_new_session=True,
                preexec_fn=rlimit_preexec(limits),
            )
        except OSError as exc:
            raise LaunchError(f"failed to run {shlex.join(argv)}: {exc.strerror or exc}") from None


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
