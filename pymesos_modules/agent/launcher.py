"""The task launcher: a small process between the agent and each task, so tasks outlive the agent.

As Mesos splits the agent from its launcher and executors, every task runs
under ``python -I -S <this file> <run_dir>`` (:func:`.containers.launch` starts it):

1. the agent starts the launcher in a session of its own (``setsid``): a signal
   to the agent's terminal or process group, or the agent's death, does not
   reach it, and its parent becomes init (or a subreaper) when the agent exits;
2. the agent writes ``pids/forked.pid`` (the launcher's pid and start time),
   then the launch spec (argv, environment, working directory, rlimits, output
   files) as JSON on the launcher's stdin;
3. the launcher starts the task in yet another session, so the task leads a
   process group that holds everything it forks and nothing of the launcher's:
   a kill of the task's group never takes the launcher down before it has
   recorded the end.  The child joins its cgroups (isolators' launch info)
   and sets its rlimits between fork and exec, so they hold from the task's
   first instruction and bind all it forks (the launcher is single-threaded,
   so a ``preexec_fn`` is safe here);
4. it writes ``pids/task.pid`` and answers one JSON line on stdout:
   ``{"pid": ..., "start_time": ...}`` or ``{"error": "failed to run ..."}``;
5. it reaps the task, SIGKILLs whatever is left in its process group (nothing
   outlives a task), writes ``termination`` (the raw ``waitpid`` status) into
   the run's checkpoint folder, and exits.

A pid is only trusted together with its start time (``/proc/<pid>/stat``), so
a pid reused by another process after a restart is never signalled or waited on.

The file runs as a script in isolated mode without site-packages (``-I -S``,
:func:`pymesos_modules.paths.stdlib_script_command`) and imports the standard
library only, never anything from the current folder: the launcher starts in
about 30 ms instead of the 100 ms importing the package would cost it, on
every task.  :mod:`.checkpoint` imports the shared
parts (file names, :func:`write_atomically`, :class:`ProcessId`) from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PIDS_DIR = "pids"
LAUNCHER_PID_FILE = "forked.pid"
TASK_PID_FILE = "task.pid"
TERMINATION_FILE = "termination"
#: What the launcher's own records (task.pid, termination) hold until they are
#: written: readers take it as "not written yet".
RESERVED: dict[str, Any] = {"reserved": True}
#: Bytes each of those records reserves on disk before the task starts.
RESERVED_SIZE = 4096


def write_atomically(path: Path, document: Any, make_parents: bool = True) -> None:
    """Replace ``path`` with ``document`` as JSON: whole, synced, or not at all."""
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    # Named per process, so two writers never share a temporary file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(document, out)
            out.flush()
            os.fsync(out.fileno())  # as Mesos: the rename must not reach the disk before the data
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):  # e.g. a full disk: leave no half-written file
            temporary.unlink()
        raise


def _padded(document: Any) -> bytes:
    data = json.dumps(document).encode()
    if len(data) > RESERVED_SIZE:
        raise OSError(f"the record takes {len(data)} bytes, more than the {RESERVED_SIZE} reserved")
    return data.ljust(RESERVED_SIZE)  # JSON allows the trailing spaces


def reserve(path: Path) -> None:
    """Write the placeholder, padded to :data:`RESERVED_SIZE` and synced.

    A disk full by the time the task ends (the task may fill it) then still
    takes the record: :func:`write_in_place` needs no new blocks.
    """
    with open(path, "wb") as out:
        out.write(_padded(RESERVED))
        out.flush()
        os.fsync(out.fileno())


def write_in_place(path: Path, document: Any) -> None:
    """Overwrite a :func:`reserve`d record in the blocks it owns (never truncated first)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        data = _padded(document)
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ProcessId:
    """A process as the checkpoint names it: pid plus start time, so a reused pid is told apart."""

    pid: int
    start_time: int | None

    def to_json(self) -> dict[str, Any]:
        """The pid file's document."""
        return {"pid": self.pid, "start_time": self.start_time}


@dataclass
class LaunchSpec:
    """What the launcher needs to start a task (JSON on its stdin)."""

    program: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdout: str
    stderr: str
    #: (RLIMIT_*, soft, hard), checked by the agent beforehand
    rlimits: list[tuple[int, int, int]]
    #: cgroup folders the task joins before exec (isolators' launch info)
    cgroups: list[str] = field(default_factory=list)
    #: [uid, gid, *supplementary groups] to run the task as (--switch_user); None: as is
    user: list[int] | None = None


def process_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks after boot) of ``pid``; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks after boot), None if there is no such process."""
    stat = process_stat(pid)
    return None if stat is None else stat[1]


def is_alive(process: ProcessId) -> bool:
    """``process`` still runs: its pid exists, is no zombie, and started when it did then."""
    stat = process_stat(process.pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return process.start_time is None or stat[1] == process.start_time


# --- the launcher's program ---------------------------------------------------------------------


def _child_setup(
    limits: list[tuple[int, int, int]],
    cgroup_procs: tuple[int, ...] = (),
    user: list[int] | None = None,
) -> Callable[[], None] | None:
    """The child's set-up between fork and exec: cgroups, rlimits, then the user.

    It joins the cgroups (each an open ``cgroup.procs``; "0" moves the writer):
    in its cgroups before exec, nothing the task runs or forks is ever outside
    them.  Then the rlimits, while still root (a hard limit may only be raised
    by root); then supplementary groups, group and user, in that order (each
    step needs the privileges the next one drops).
    """
    if not limits and not cgroup_procs and not user:
        return None
    prepared = tuple((int(which), (int(soft), int(hard))) for which, soft, hard in limits)

    def apply() -> None:
        for fd in cgroup_procs:
            os.write(fd, b"0")
        for which, values in prepared:
            resource.setrlimit(which, values)
        if user:
            uid, gid, *groups = user
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)

    return apply


def _open_cgroups(cgroups: list[str]) -> list[int]:
    """Each cgroup's ``cgroup.procs``, opened here so a missing cgroup is a clear error."""
    fds: list[int] = []
    folder = ""
    try:
        for folder in cgroups:
            fds.append(os.open(os.path.join(folder, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise OSError(exc.errno, f"cannot join the cgroup {folder}: {exc.strerror}") from None
    return fds


def _record(run_dir: Path, name: str, document: Any) -> None:
    """Write a checkpoint file of the run; a run folder removed meanwhile is no error.

    Replaced atomically when the disk allows; on a full disk, written into the
    space :func:`reserve` set aside for it before the task started.
    """
    path = run_dir / name
    try:
        write_atomically(path, document, make_parents=False)
        return
    except FileNotFoundError:
        return  # the agent forgot the run (e.g. the master removed the agent)
    except OSError as exc:
        failure = exc
    try:
        write_in_place(path, document)
    except OSError as exc:
        print(
            f"pmm-launcher: cannot write {path}: {failure}; nor into its reserved space: {exc}",
            file=sys.stderr,
            flush=True,
        )


def _reply(document: dict[str, Any]) -> None:
    """Answer the agent (one line), then let go of the pipe: the agent may be gone later."""
    with contextlib.suppress(OSError):
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def run(run_dir: Path, spec: LaunchSpec) -> int:
    """Start the task, answer the agent, wait for the task, record how it ended."""
    try:
        # Before the task runs: a task that fills the disk must not cost its records.
        for name in (f"{PIDS_DIR}/{TASK_PID_FILE}", TERMINATION_FILE):
            reserve(run_dir / name)
    except FileNotFoundError:
        pass  # the agent forgot the run meanwhile: there is nothing to record into
    except OSError as exc:
        _reply(
            {
                "error": f"cannot reserve space for the task's records in {run_dir} "
                f"({exc.strerror or exc}); the task was not started"
            }
        )
        return 1
    cgroup_procs: list[int] = []
    try:
        cgroup_procs = _open_cgroups(spec.cgroups)
        with open(spec.stdout, "ab") as stdout, open(spec.stderr, "ab") as stderr:
            task = subprocess.Popen(
                spec.argv,
                executable=spec.program,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=spec.env,
                cwd=spec.cwd,
                start_new_session=True,
                preexec_fn=_child_setup(spec.rlimits, tuple(cgroup_procs), spec.user),
            )
    except (OSError, subprocess.SubprocessError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        message = f"failed to run {shlex.join(spec.argv)[:2000]}: {reason}"
        _record(run_dir, TERMINATION_FILE, {"launch_error": message})
        _reply({"error": message})
        return 1
    finally:
        for fd in cgroup_procs:
            os.close(fd)
    task_process = ProcessId(task.pid, start_time(task.pid))
    _record(run_dir, f"{PIDS_DIR}/{TASK_PID_FILE}", task_process.to_json())
    _reply(task_process.to_json())
    _, wait_status = os.waitpid(task.pid, 0)
    task.returncode = 0  # reaped above (for the raw status); Popen must not wait again
    # Whatever the task forked is part of it: nothing may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(task.pid, signal.SIGKILL)
    _record(run_dir, TERMINATION_FILE, {"wait_status": wait_status})
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -I -S launcher.py <run_dir>``, the spec on stdin."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -I -S launcher.py RUN_DIR  (the launch spec on stdin)", file=sys.stderr
        )
        return 2
    os.chdir("/")  # hold no folder of the agent's (the task gets its own cwd)
    try:
        spec = LaunchSpec(**json.loads(sys.stdin.buffer.read()))
    except (ValueError, TypeError) as exc:
        # The agent died while sending the spec: nothing was started.
        print(f"pmm-launcher: no usable launch spec on stdin: {exc}", file=sys.stderr)
        return 2
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return run(Path(args[0]), spec)


if __name__ == "__main__":
    sys.exit(main())
