"""The task launcher's side of the agent: its records, its launch spec, and who is alive.

Every task runs under ``pmm_launcher <run_dir>`` (native/launcher/launcher.c,
bundled with the package; :func:`.containers.launch` starts it), a small
process between the agent and the task, so tasks outlive the agent, as Mesos
splits the agent from its launcher:

1. the agent starts the launcher in a session of its own (``setsid``): a signal
   to the agent's terminal or process group, or the agent's death, does not
   reach it, and its parent becomes init (or a subreaper) when the agent exits;
2. the agent writes ``pids/forked.pid`` (the launcher's pid and start time),
   then the launch spec (:meth:`LaunchSpec.encode`) on the launcher's stdin;
3. the launcher reserves its two records (4 KiB each, holding :data:`RESERVED`, so
   a task that fills the disk cannot cost them), then starts the task in yet
   another session, so the task leads a process group that holds everything
   it forks and nothing of the launcher's.  Between fork and exec the child
   joins its cgroups (isolators' launch info), sets its rlimits, then its
   groups, group and user, so they hold from the task's first instruction and
   bind all it forks;
4. it writes ``pids/task.pid`` and answers one JSON line on stdout:
   ``{"pid": ..., "start_time": ...}`` or ``{"error": "failed to run ..."}``;
5. it reaps the task, SIGKILLs whatever is left in its process group (nothing
   outlives a task), writes ``termination`` (the raw ``waitpid`` status) into
   the run's checkpoint folder, and exits.

The launcher is a C program because a Python one (``python -I -S``) cost
about 50 ms of CPU per task, which capped a 2-core agent near 35 tasks/s.

A pid is only trusted together with its start time (``/proc/<pid>/stat``), so
a pid reused by another process after a restart is never signalled or waited on.
:mod:`.checkpoint` imports the shared parts (file names,
:func:`write_atomically`, :class:`ProcessId`) from here.
"""

from __future__ import annotations

import contextlib
import json
import os
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
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(document, out)
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
        fields = [b"P" + os.fsencode(self.program)]
        fields += [b"A" + os.fsencode(a) for a in self.argv]
        fields += [b"E" + os.fsencode(f"{k}={v}") for k, v in self.env.items()]
        fields += [b"D" + os.fsencode(self.cwd), b"O" + os.fsencode(self.stdout)]
        fields.append(b"R" + os.fsencode(self.stderr))
        fields += [b"C" + os.fsencode(c) for c in self.cgroups]
        # RLIM_INFINITY is -1 in Python's resource module, and the launcher reads it so.
        fields += [f"L{w} {soft} {hard}".encode() for w, soft, hard in self.rlimits]
        if self.user:
            fields.append(("U" + " ".join(str(i) for i in self.user)).encode())
        return b"".join(f + b"\0" for f in fields)

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
