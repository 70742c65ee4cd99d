"""The task launcher's side of the agent: its records, its launch spec, and who is alive.

Every task runs under ``pmm_launcher <run_dir>`` (native/launcher/launcher.c,
bundled with the package; :func:`.containers.launch` starts it), a small
process between the agent and the task, so tasks outlive the agent, as Mesos
splits the agent from its launcher:

1. the agent asks its launcher server (:class:`LauncherServer`, one
   ``pmm_launcher --serve`` per agent) for a launcher: the server forks one,
   which leaves for a session of its own (``setsid``: a signal to the agent's
   terminal or process group, or the agent's or the server's death, does not
   reach it) and writes ``pids/forked.pid`` (its pid and start time);
2. the agent sends the launch spec (:meth:`LaunchSpec.encode`) on the
   launcher's stdin;
3. the launcher reserves its two records (4 KiB each, holding :data:`RESERVED`, so
   a task that fills the disk cannot cost them), then starts the task in yet
   another session, so the task leads a process group that holds everything
   it forks and nothing of the launcher's.  Between fork and exec the child
   joins its cgroups (isolators' launch info), sets its rlimits, then its
   groups, group and user, so they hold from the task's first instruction and
   bind all it forks;
4. it writes ``pids/task.pid`` and answers one JSON line on stdout:
   ``{"launcher": {"pid", "start_time"}, "pid": ..., "start_time": ...}`` or
   ``{"launcher": {...}, "error": "failed to run ..."}``;
5. it reaps the task, SIGKILLs whatever is left in its process group (nothing
   outlives a task), writes ``termination`` (the raw ``waitpid`` status) into
   the run's checkpoint folder, and exits.

The launcher is a C program because a Python one (``python -I -S``) cost
about 50 ms of CPU per task, which capped a 2-core agent near 35 tasks/s; and
launchers are forked by a server rather than spawned by the agent because
``os.posix_spawn`` holds the agent's GIL until the child has exec'd, which
under load stalled the agent's event loop for milliseconds per task.

A pid is only trusted together with its start time (``/proc/<pid>/stat``), so
a pid reused by another process after a restart is never signalled or waited on.
:mod:`.checkpoint` imports the shared parts (file names,
:func:`write_atomically`, :class:`ProcessId`) from here.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymesos_modules import jsonio, paths

PIDS_DIR = "pids"
LAUNCHER_PID_FILE = "forked.pid"
TASK_PID_FILE = "task.pid"
TERMINATION_FILE = "termination"
#: What the launcher's own records (task.pid, termination) hold until they are
#: written: readers take it as "not written yet".
RESERVED: dict[str, Any] = {"reserved": True}


def write_atomically(
    path: Path, document: Any, make_parents: bool = True, sync: bool = True
) -> None:
    """Replace ``path`` with ``document`` as JSON: whole or not at all.

    ``sync`` fsyncs the data before the rename, so not even a machine crash
    leaves half a document: for the agent's own rare records.  Records of
    every task are written without (``sync=False``), as Mesos' checkpoint()
    writes them by default: they survive the agent, which is what recovery
    needs (after a machine crash no task survives anyway), and an fsync costs
    milliseconds of disk per record.
    """
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    # Named per process, so two writers never share a temporary file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(jsonio.dumps(document))
            if sync:
                out.flush()
                os.fsync(out.fileno())  # the rename must not reach the disk before the data
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):  # e.g. a full disk: leave no half-written file
            temporary.unlink()
        raise


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

    def encode(self) -> bytes:
        """The spec as the launcher reads it: fields ``<tag><text>\\0`` (launcher.c says
        which tag is which); :meth:`problem` first, as no text may hold a NUL byte."""
        fields = [f"P{self.program}", *(f"A{a}" for a in self.argv)]
        fields += [f"E{k}={v}" for k, v in self.env.items()]
        fields += [f"D{self.cwd}", f"O{self.stdout}", f"R{self.stderr}"]
        fields += [f"C{c}" for c in self.cgroups]
        # RLIM_INFINITY is -1 in Python's resource module, and the launcher reads it so.
        fields += [f"L{w} {soft} {hard}" for w, soft, hard in self.rlimits]
        if self.user:
            fields.append("U" + " ".join(str(i) for i in self.user))
        fields.append("")
        # As os.fsencode: undecodable bytes the strings carry go back as they were.
        return "\0".join(fields).encode(errors="surrogateescape")

    def problem(self) -> str | None:
        """What no launcher could take (a NUL byte in a text), or None."""
        texts = [self.program, *self.argv, self.cwd, self.stdout, self.stderr, *self.cgroups]
        for key, value in self.env.items():
            if "\0" in key or "=" in key or "\0" in value:
                return f"environment variable {key!r} cannot be passed to a process"
        bad = next((t for t in texts if "\0" in t), None)
        return None if bad is None else f"{bad!r} holds a NUL byte"


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


class LauncherServer:
    """The agent's ``pmm_launcher --serve``: forks a launcher per request.

    Started on first use and again when it died (a request then fails over
    to a new one); it ends when :meth:`close` closes its socket.  Launchers
    it forked are in sessions of their own and outlive it, as they outlive
    the agent.
    """

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._pid: int | None = None

    def _start(self) -> socket.socket:
        if not paths.LAUNCHER.is_file():
            raise paths.not_built(f"the task launcher ({paths.LAUNCHER.name})")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._pid = os.posix_spawn(
                str(paths.LAUNCHER),
                [str(paths.LAUNCHER), "--serve"],
                os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 0)],
                setsid=True,  # a signal to the agent's group must not stop it mid-fork
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket = ours
        return ours

    async def request(self, run_dir: Path, fds: list[int]) -> None:
        """Ask for a launcher of ``run_dir`` with ``fds`` (spec pipe, reply pipe, stderr
        file) as its stdin, stdout and stderr; OSError if no server takes it."""
        payload = os.fsencode(str(run_dir))
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            server = self._socket or self._start()
            try:
                while True:
                    try:
                        server.sendmsg([payload], rights)
                        return
                    except BlockingIOError:
                        await fd_ready(loop.add_writer, loop.remove_writer, server.fileno())
            except (BrokenPipeError, ConnectionResetError):
                self.close()  # it died: the next attempt starts another
                if attempt:
                    raise

    def close(self) -> None:
        """Close the socket (the server exits) and reap the server."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        pid, self._pid = self._pid, None
        if pid is not None and os.waitpid(pid, os.WNOHANG)[0] == 0:
            # It exits as soon as it reads the end of its socket; reaped meanwhile.
            threading.Thread(target=_reap, args=(pid,), daemon=True).start()


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


async def fd_ready(add: Any, remove: Any, fd: int) -> None:
    """Until ``fd`` is ready (``add``/``remove``: the loop's reader or writer calls)."""
    ready = asyncio.get_running_loop().create_future()
    add(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        remove(fd)
