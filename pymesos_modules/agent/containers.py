"""Running one command task: its sandbox, argv, environment, rlimits, launcher, process group, kill.

Every task runs under its own launcher (:mod:`.launcher`), a small process in
a session of its own that starts the task, waits for it and records how it
ended in the run's checkpoint folder: so a task outlives the agent, and a
restarted agent, which is no longer anyone's parent, still learns its end.
The task runs in a session of its own too (it leads a process group), so a
kill reaches everything the task forked and nothing of the launcher's or the
agent's.  Output goes to ``stdout`` / ``stderr`` files in the sandbox, as
Mesos' command executor does.

rlimits: ``setrlimit`` has to run in the child between fork and exec, so the
limits hold from the task's first instruction and bind everything it forks;
``prlimit()`` after the spawn would leave the task running unlimited for a
moment, and a shell ``ulimit`` wrapper would change argv and cannot express
every Mesos RLimitInfo.  The launcher does it between fork and exec; the
limits are checked here first, so a bad one fails the task with a message
naming the isolator and the limit.

A restarted agent watches a launcher it did not start through a pidfd
(:func:`wait_exit`), and trusts a pid only with its start time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import resource
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymesos_modules import paths
from pymesos_modules.agent import launcher
from pymesos_modules.agent.launcher import (
    LauncherServer,
    LaunchSpec,
    ProcessId,
    fd_ready,
    is_alive,
    process_stat,
)
from pymesos_modules.kinds.isolator import RLIMITS
from pymesos_modules.names import shown


class LaunchError(Exception):
    """The task cannot be launched; the message says why (it becomes the TASK_FAILED message)."""


@dataclass(frozen=True)
class TaskUser:
    """The user a task runs as when it is not the agent's own (Mesos' --switch_user)."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    def launch_ids(self) -> list[int]:
        """[uid, gid, *groups] as the launcher takes them."""
        return [self.uid, self.gid, *self.groups]


def task_user(command: Any, framework_info: Any, switch_user: bool) -> TaskUser | None:
    """Whom to run a task as: CommandInfo.user, else FrameworkInfo.user (as Mesos).

    None runs the task as the agent's own user: with ``switch_user`` off (Mesos'
    --switch_user=false), when neither names a user, or when the named user is
    the agent's.  LaunchError names the user when it does not exist here, or
    when the agent, not being root, cannot switch to it.
    """
    if not switch_user:
        return None
    name = (command or {}).get("user") or (framework_info or {}).get("user")
    if not name:
        return None
    if not isinstance(name, str):
        raise LaunchError(f"the task's user must be a string, found {type(name).__name__}")
    try:
        entry = pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise LaunchError(
            f"user {shown(name)} does not exist on this agent; tasks run as their "
            f"CommandInfo.user or FrameworkInfo.user (--switch_user, on by default as in "
            f"Mesos; --switch_user=false runs them as the agent's user)"
        ) from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise LaunchError(
            f"cannot run the task as user '{name}': the agent runs as uid {os.geteuid()}, "
            f"not root, so it cannot switch users; run the agent as root or pass "
            f"--switch_user=false to run tasks as the agent's user"
        )
    groups = tuple(g for g in os.getgrouplist(name, entry.pw_gid) if g != entry.pw_gid)
    return TaskUser(name, entry.pw_uid, entry.pw_gid, groups)


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


@dataclass(frozen=True)
class Launched:
    """A started task: its launcher and the task process (the leader of its process group)."""

    launcher: ProcessId
    task: ProcessId


async def launch(
    program: str,
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path,
    sandbox: Path,
    limits: list[tuple[int, int, int]],
    run_dir: Path,
    server: LauncherServer,
    cgroups: Sequence[str] = (),
    user: TaskUser | None = None,
) -> Launched:
    """Start the task under a launcher that records its end in ``run_dir``; LaunchError if not.

    ``server`` forks the launcher.  Output goes into the sandbox's ``stdout``
    and ``stderr`` (the launcher's own messages, if any, into ``stderr`` too).
    The task joins ``cgroups``
    (folders) before its command runs.  With a ``user``, the task runs as that
    user and the sandbox and its two output files are theirs (as Mesos chowns
    the sandbox).
    """
    spec = LaunchSpec(
        program,
        argv,
        dict(env),
        str(cwd),
        str(sandbox / "stdout"),
        str(sandbox / "stderr"),
        limits,
        list(dict.fromkeys(cgroups)),  # isolators sharing a cgroup (v2) name it once
        None if user is None else user.launch_ids(),
    )
    if user is not None:
        try:
            for path in (sandbox / "stdout", sandbox / "stderr"):
                path.touch()
                os.chown(path, user.uid, user.gid)
            os.chown(sandbox, user.uid, user.gid)
        except OSError as exc:
            raise LaunchError(
                f"cannot give the sandbox {sandbox} to user '{user.name}': {exc}"
            ) from None
    problem = spec.problem()
    if problem is not None:
        raise LaunchError(f"cannot run the task: {problem}")
    payload = spec.encode()
    try:
        (run_dir / launcher.PIDS_DIR).mkdir(parents=True, exist_ok=True)
        stderr = os.open(spec.stderr, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LaunchError(f"cannot prepare the task's launch in {run_dir}: {exc}") from None
    spec_read, spec_write = os.pipe()
    reply_read, reply_write = os.pipe()
    try:
        await server.request(run_dir, [spec_read, reply_write, stderr])
    except (OSError, paths.NotBuiltError) as exc:
        os.close(spec_write)
        os.close(reply_read)
        raise LaunchError(f"cannot start the task launcher: {exc}") from None
    finally:
        for fd in (spec_read, reply_write, stderr):  # the launcher holds its own copies
            os.close(fd)
    try:
        line = await _handshake(spec_write, reply_read, payload)
    except BaseException:
        started = _recorded_launcher(run_dir)
        if started is not None:
            signal_process(started, signal.SIGKILL)
            await wait_exit(started)
        raise
    try:
        reply = json.loads(line)
        started = ProcessId(int(reply["launcher"]["pid"]), reply["launcher"].get("start_time"))
    except (ValueError, KeyError, TypeError):
        # It died before answering (or its server could not fork it).
        started = _recorded_launcher(run_dir)
        if started is not None:
            await wait_exit(started)
        raise LaunchError(
            f"the task launcher exited before starting the task; its messages are in {spec.stderr}"
        ) from None
    if "error" in reply:
        await wait_exit(started)
        raise LaunchError(str(reply["error"]))
    return Launched(started, ProcessId(int(reply["pid"]), reply.get("start_time")))


def _recorded_launcher(run_dir: Path) -> ProcessId | None:
    """The launcher ``pids/forked.pid`` names, if it wrote it."""
    try:
        document = json.loads(
            (run_dir / launcher.PIDS_DIR / launcher.LAUNCHER_PID_FILE).read_text()
        )
        return ProcessId(int(document["pid"]), document.get("start_time"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def signal_process(process: ProcessId, signum: int) -> None:
    """Send ``signum`` to ``process`` if it is still the process it was."""
    if is_alive(process):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, signum)


async def _handshake(spec_write: int, reply_read: int, payload: bytes) -> bytes:
    """Send the spec, then read the launcher's one-line answer, on the event loop.

    Both pipes go non-blocking and are watched by the loop: a launcher answers
    in about a millisecond, far less than a worker thread per task would cost.
    Closes both descriptors.
    """
    loop = asyncio.get_running_loop()
    try:
        os.set_blocking(spec_write, False)
        view = memoryview(payload)
        while view:
            try:
                view = view[os.write(spec_write, view) :]
            except BlockingIOError:
                await fd_ready(loop.add_writer, loop.remove_writer, spec_write)
    except BrokenPipeError:
        pass  # the launcher died: its missing answer says so
    finally:
        os.close(spec_write)
    answer = bytearray()
    try:
        os.set_blocking(reply_read, False)
        while not answer.endswith(b"\n"):
            try:
                chunk = os.read(reply_read, 4096)
            except BlockingIOError:
                await fd_ready(loop.add_reader, loop.remove_reader, reply_read)
                continue
            if not chunk:
                break
            answer += chunk
    finally:
        os.close(reply_read)
    return bytes(answer)


async def wait_exit(process: ProcessId, poll_interval: float = 1.0) -> None:
    """Return once ``process`` has exited (and reap it if it is this process' child)."""
    try:
        fd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        fd = -1
    except OSError:  # no pidfd (a kernel before 5.3): look now and then
        while is_alive(process):
            await asyncio.sleep(poll_interval)
        fd = -1
    if fd >= 0:
        try:
            # Checked after opening, so the pidfd names the process we mean.
            if is_alive(process):
                loop = asyncio.get_running_loop()
                exited = loop.create_future()
                loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
                try:
                    await exited
                finally:
                    loop.remove_reader(fd)
        finally:
            os.close(fd)
    # A launcher this agent process started stays a zombie until reaped here; the
    # start time check keeps a later child that reused the pid out of it.
    stat = process_stat(process.pid)
    if stat is not None and stat[0] == "Z" and stat[1] == process.start_time:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(process.pid, os.WNOHANG)


def signal_group(process: ProcessId, signum: int) -> bool:
    """Send ``signum`` to the process group ``process`` leads; False when it is gone.

    The leader is checked first (pid and start time); a zombie leader its
    launcher has not reaped yet still counts, as its group id cannot be reused.
    """
    stat = process_stat(process.pid)
    if stat is None or (process.start_time is not None and stat[1] != process.start_time):
        return False
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def returncode_of(wait_status: int) -> int:
    """A wait status as a returncode: the exit code, or minus the signal that ended it."""
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def describe_exit(returncode: int) -> str:
    """Mesos' wording: 'Command exited with status 3' / 'Command terminated with signal ...'."""
    if returncode >= 0:
        return f"Command exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"Command terminated with signal {name} ({-returncode})"
