"""The agent's checkpoint: what a restarted agent needs to take its tasks over (Mesos' meta dir).

Laid out as Mesos lays out ``<work_dir>/meta`` (src/slave/paths.cpp), one JSON
document per file::

    meta/boot_id                                   the machine's boot id when last written
    meta/slaves/latest -> <agent_id>               symlink: the id a restart re-registers with
    meta/slaves/<agent_id>/slave.info              AgentInfo
      frameworks/<framework_id>/framework.info     FrameworkInfo
        executors/<executor_id>/executor.info      ExecutorInfo (custom executors only)
        executors/<executor_id>/runs/<container_id>/
          pids/forked.pid                          the launcher: {"pid", "start_time"}
          pids/task.pid                            the task (its process group leader): same shape
          termination                              the launcher's record of how the task ended
          tasks/<task_id>/task.info                TaskInfo as launched
          tasks/<task_id>/task.updates             the status update stream: UPDATE and ACK
                                                   records, one JSON document a line, appended

A command task's run holds its one task; a custom executor's run holds each
task given to the executor (and ``pids/task.pid`` is the executor's process).

Every file but ``task.updates`` is replaced whole and atomically (a temporary
file, then ``os.replace``): a crash leaves the old document or the new one,
never half of one (:func:`~.launcher.write_atomically`; the task launcher
writes the pid of its task and the termination record the same way).  The
agent's own records are fsynced first; a task's are not, as Mesos'
checkpoint() does not by default: they outlive the agent, which is what
recovery needs, at no disk flush per task.  ``task.updates`` is appended to,
one record a line, as Mesos appends to its update streams: a record costs one
write, not a new file; a write the disk refuses is cut back off, so the
stream never holds half a record.

A file that exists but cannot be read or has the wrong shape is a
:class:`CheckpointError` naming it.  With ``strict`` (Mesos' ``--strict``, the
default) :func:`recover` raises it; without, it logs it and recovers what it can.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymesos_modules import jsonio
from pymesos_modules.agent.launcher import (
    LAUNCHER_PID_FILE,
    PIDS_DIR,
    RESERVED,
    TASK_PID_FILE,
    TERMINATION_FILE,
    ProcessId,
    write_atomically,
)

logger = logging.getLogger(__name__)

BOOT_ID_FILE = "boot_id"
SLAVES_DIR = "slaves"
LATEST = "latest"
SLAVE_INFO_FILE = "slave.info"
FRAMEWORKS_DIR = "frameworks"
FRAMEWORK_INFO_FILE = "framework.info"
EXECUTORS_DIR = "executors"
RUNS_DIR = "runs"
TASKS_DIR = "tasks"
TASK_INFO_FILE = "task.info"
EXECUTOR_INFO_FILE = "executor.info"
TASK_UPDATES_FILE = "task.updates"


class CheckpointError(Exception):
    """A checkpoint file exists but cannot be used; the message names the file."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}. Fix or remove the file, or restart the agent with "
            f"--recover=cleanup (kills the tasks it checkpointed) or --strict=false "
            f"(recovers what can be read)"
        )
        self.path = path


def read_json(path: Path, lines: bool = False) -> Any:
    """The JSON document in ``path``; CheckpointError names the file if it is not one.

    ``lines``: a file of one JSON document a line, read as their list.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise CheckpointError(path, "is not UTF-8 text (corrupt)") from None
    try:
        if lines:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except ValueError as exc:
        raise CheckpointError(path, f"is not valid JSON ({exc}; corrupt or truncated)") from None


def boot_id() -> str | None:
    """This boot of the machine (Linux); None where the kernel does not say."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class Termination:
    """How a task ended, as its launcher recorded it: a raw wait status or a launch error."""

    wait_status: int | None = None
    launch_error: str | None = None


@dataclass
class RunState:
    """One checkpointed container (a command task's run) as recovery found it."""

    framework_id: str
    executor_id: str
    container_id: str
    task_id: str
    path: Path
    task_info: dict[str, Any]
    #: the status update stream as written: {"type": "UPDATE", "status"} / {"type": "ACK", "uuid"}
    records: list[dict[str, Any]]
    launcher: ProcessId | None
    task: ProcessId | None
    termination: Termination | None

    def statuses(self) -> list[dict[str, Any]]:
        """Every status the agent generated for the task, oldest first."""
        return [r["status"] for r in self.records if r["type"] == "UPDATE"]

    def pending(self) -> list[dict[str, Any]]:
        """The statuses not acknowledged yet, in order (the replayed stream)."""
        acknowledged = {r["uuid"] for r in self.records if r["type"] == "ACK"}
        return [s for s in self.statuses() if s["uuid"] not in acknowledged]


@dataclass
class ExecutorRunState:
    """One checkpointed run of a custom executor: its ExecutorInfo, process and tasks."""

    framework_id: str
    executor_id: str
    container_id: str
    path: Path
    info: dict[str, Any]
    #: each task given to the executor, as a run of its own would be (same pids)
    tasks: list[RunState]
    launcher: ProcessId | None
    process: ProcessId | None
    termination: Termination | None


@dataclass
class AgentState:
    """What the previous agent on this work_dir left: its id, frameworks and runs."""

    agent_id: str
    info: dict[str, Any]
    #: False when the machine rebooted since: no process of the checkpoint can be alive
    same_boot: bool
    frameworks: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[RunState] = field(default_factory=list)
    executor_runs: list[ExecutorRunState] = field(default_factory=list)
    #: folders of runs that could not be recovered (strict=false)
    unrecoverable: list[Path] = field(default_factory=list)
    #: their task processes, where a pid file could still be read: to be killed as orphans
    orphans: list[ProcessId] = field(default_factory=list)


class MetaDir:
    """``<work_dir>/meta``: the paths of the layout above, writing and reading them."""

    def __init__(self, work_dir: Path) -> None:
        self.root = work_dir / "meta"
        #: what this process last wrote into each framework.info
        self._frameworks: dict[Path, dict[str, Any]] = {}

    # --- paths -----------------------------------------------------------------------------

    def agent_dir(self, agent_id: str) -> Path:
        """meta/slaves/<agent_id>."""
        return self.root / SLAVES_DIR / agent_id

    def framework_dir(self, agent_id: str, framework_id: str) -> Path:
        """meta/slaves/<agent_id>/frameworks/<framework_id>."""
        return self.agent_dir(agent_id) / FRAMEWORKS_DIR / framework_id

    def executor_dir(self, agent_id: str, framework_id: str, executor_id: str) -> Path:
        """.../frameworks/<framework_id>/executors/<executor_id>."""
        return self.framework_dir(agent_id, framework_id) / EXECUTORS_DIR / executor_id

    def run_dir(self, agent_id: str, framework_id: str, executor_id: str, container: str) -> Path:
        """.../executors/<executor_id>/runs/<container_id>."""
        return self.executor_dir(agent_id, framework_id, executor_id) / RUNS_DIR / container

    @staticmethod
    def task_dir(run_dir: Path, task_id: str) -> Path:
        """<run>/tasks/<task_id>."""
        return run_dir / TASKS_DIR / task_id

    @property
    def latest(self) -> Path:
        """meta/slaves/latest (a symlink to the current agent's folder)."""
        return self.root / SLAVES_DIR / LATEST

    @property
    def legacy_file(self) -> Path:
        """meta/agent.json, where agents before checkpointing kept their id."""
        return self.root / "agent.json"

    # --- writing ---------------------------------------------------------------------------

    def save_agent(self, agent_id: str, info: dict[str, Any]) -> None:
        """slave.info, then ``latest`` pointing at it (so ``latest`` never names a bare folder)."""
        write_atomically(self.agent_dir(agent_id) / SLAVE_INFO_FILE, info)
        write_atomically(self.root / BOOT_ID_FILE, boot_id())
        temporary = self.latest.with_name(f".{LATEST}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(agent_id)
        os.replace(temporary, self.latest)
        with contextlib.suppress(FileNotFoundError):
            self.legacy_file.unlink()

    def save_framework(self, agent_id: str, framework_id: str, info: dict[str, Any]) -> None:
        """framework.info, unless it holds ``info`` already (every task of a framework
        checkpoints it; the framework's last run going takes the file with it)."""
        path = self.framework_dir(agent_id, framework_id) / FRAMEWORK_INFO_FILE
        if self._frameworks.get(path) == info and path.exists():
            return
        write_atomically(path, info)
        self._frameworks[path] = copy.deepcopy(info)

    def save_task(self, run_dir: Path, task_id: str, task_info: dict[str, Any]) -> None:
        """task.info (written before the task is launched)."""
        write_atomically(self.task_dir(run_dir, task_id) / TASK_INFO_FILE, task_info, sync=False)

    def append_update(self, run_dir: Path, task_id: str, record: dict[str, Any]) -> None:
        """One record at the end of task.updates; OSError (e.g. a full disk) leaves the
        stream as it was."""
        # A string, not a Path: this runs for every update and acknowledgement.
        path = f"{run_dir}/{TASKS_DIR}/{task_id}/{TASK_UPDATES_FILE}"
        data = jsonio.dumps(record) + b"\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, f"short write to {path}")
            except OSError:
                with contextlib.suppress(OSError):  # shrinking needs no space
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

    def forget_agent(self, agent_id: str | None) -> None:
        """Remove the agent's checkpoint and ``latest`` (the next start registers anew)."""
        with contextlib.suppress(FileNotFoundError):
            self.latest.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.legacy_file.unlink()
        if agent_id:
            shutil.rmtree(self.agent_dir(agent_id), ignore_errors=True)

    def save_executor(
        self, agent_id: str, framework_id: str, executor_id: str, info: dict[str, Any]
    ) -> None:
        """executor.info: the ExecutorInfo of a custom executor (its runs hold its tasks)."""
        path = self.executor_dir(agent_id, framework_id, executor_id) / EXECUTOR_INFO_FILE
        write_atomically(path, info)

    @staticmethod
    def forget_task(run_dir: Path, task_id: str) -> None:
        """Remove one task of an executor's run (the run stays for its other tasks)."""
        shutil.rmtree(run_dir / TASKS_DIR / task_id, ignore_errors=True)

    @staticmethod
    def forget_run(run_dir: Path) -> None:
        """Remove a finished run, then its executor's and framework's folders once empty."""
        shutil.rmtree(run_dir, ignore_errors=True)
        executor = run_dir.parent.parent
        framework = executor.parent.parent
        with contextlib.suppress(OSError):  # not empty: another run or executor is there
            (executor / RUNS_DIR).rmdir()
            with contextlib.suppress(FileNotFoundError):
                (executor / EXECUTOR_INFO_FILE).unlink()
            executor.rmdir()
            (framework / EXECUTORS_DIR).rmdir()
            (framework / FRAMEWORK_INFO_FILE).unlink()
            framework.rmdir()

    # --- reading ---------------------------------------------------------------------------

    def latest_agent_id(self) -> str | None:
        """The id ``latest`` points at (or the legacy agent.json holds), None if neither."""
        if self.latest.is_symlink():
            return Path(os.readlink(self.latest)).name
        if self.legacy_file.exists():
            document = read_json(self.legacy_file)
            agent_id = document.get("agent_id") if isinstance(document, dict) else None
            if not isinstance(agent_id, str) or not agent_id:
                raise CheckpointError(self.legacy_file, "has no string 'agent_id'")
            return agent_id
        return None

    def recover(self, strict: bool = True) -> AgentState | None:
        """Read the previous agent's checkpoint; None when there is none.

        ``strict``: the first unusable file raises :class:`CheckpointError`;
        otherwise it is logged and the part it describes is skipped (a run
        without a readable task.info lands in ``unrecoverable``).
        """
        agent_id = self.latest_agent_id()
        if agent_id is None:
            return None
        agent_dir = self.agent_dir(agent_id)
        info: dict[str, Any] = {}
        if self.latest.is_symlink():  # written after slave.info: that must be there
            info = _tolerant(strict, {}, _object, agent_dir / SLAVE_INFO_FILE)
        saved_boot = None  # unknown: the pids' start times still tell a reused pid apart
        if (self.root / BOOT_ID_FILE).exists():
            saved_boot = _tolerant(strict, None, read_json, self.root / BOOT_ID_FILE)
        current = boot_id()
        state = AgentState(agent_id, info, saved_boot is None or saved_boot == current)
        frameworks = agent_dir / FRAMEWORKS_DIR
        for framework_dir in _folders(frameworks):
            framework_id = framework_dir.name
            info_file = framework_dir / FRAMEWORK_INFO_FILE
            if info_file.exists():
                state.frameworks[framework_id] = _tolerant(strict, {}, _object, info_file)
            for executor_dir in _folders(framework_dir / EXECUTORS_DIR):
                executor_info = None
                if (executor_dir / EXECUTOR_INFO_FILE).exists():
                    executor_info = _tolerant(
                        strict, {}, _object, executor_dir / EXECUTOR_INFO_FILE
                    )
                for run_dir in _folders(executor_dir / RUNS_DIR):
                    try:
                        if executor_info is not None:
                            state.executor_runs.append(
                                self._executor_run(
                                    framework_id, executor_dir.name, run_dir, executor_info
                                )
                            )
                            continue
                        run = self._run(framework_id, executor_dir.name, run_dir)
                    except CheckpointError as exc:
                        if strict:
                            raise
                        logger.error("not recovering %s: %s", run_dir, exc)
                        state.unrecoverable.append(run_dir)
                        with contextlib.suppress(CheckpointError):
                            orphan = _process(run_dir / PIDS_DIR / TASK_PID_FILE)
                            if orphan is not None:
                                state.orphans.append(orphan)
                        continue
                    if run is not None:
                        state.runs.append(run)
        return state

    def _run(self, framework_id: str, executor_id: str, run_dir: Path) -> RunState | None:
        infos = _task_infos(run_dir)
        if not infos:
            # The agent stopped between creating the folder and writing task.info,
            # before anything was launched: nothing to recover.
            logger.info("removing %s: the agent stopped before launching its task", run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
            return None
        if len(infos) > 1:
            raise CheckpointError(
                run_dir / TASKS_DIR, "holds more than one task (a command run has one)"
            )
        return self._task_run(framework_id, executor_id, run_dir, infos[0])

    def _task_run(
        self, framework_id: str, executor_id: str, run_dir: Path, info_file: Path
    ) -> RunState:
        task_dir = info_file.parent
        task_info = _object(info_file)
        named = (task_info.get("task_id") or {}).get("value")
        if named != task_dir.name:
            raise CheckpointError(info_file, f"names task {named!r}, its folder {task_dir.name!r}")
        updates_file = task_dir / TASK_UPDATES_FILE
        records = _records(updates_file) if updates_file.exists() else []
        pids = run_dir / PIDS_DIR
        return RunState(
            framework_id,
            executor_id,
            run_dir.name,
            task_dir.name,
            run_dir,
            task_info,
            records,
            _process(pids / LAUNCHER_PID_FILE),
            _process(pids / TASK_PID_FILE),
            read_termination(run_dir),
        )

    def _executor_run(
        self, framework_id: str, executor_id: str, run_dir: Path, info: dict[str, Any]
    ) -> ExecutorRunState:
        tasks = [
            self._task_run(framework_id, executor_id, run_dir, i) for i in _task_infos(run_dir)
        ]
        pids = run_dir / PIDS_DIR
        return ExecutorRunState(
            framework_id,
            executor_id,
            run_dir.name,
            run_dir,
            info,
            tasks,
            _process(pids / LAUNCHER_PID_FILE),
            _process(pids / TASK_PID_FILE),
            read_termination(run_dir),
        )


def _task_infos(run_dir: Path) -> list[Path]:
    """The task.info files of a run's tasks, in task id order."""
    tasks = _folders(run_dir / TASKS_DIR)
    return [t / TASK_INFO_FILE for t in tasks if (t / TASK_INFO_FILE).exists()]


def _folders(path: Path) -> list[Path]:
    """Sub-folders of ``path`` in name order (none if it does not exist); links are skipped."""
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())
    except FileNotFoundError:
        return []


def _tolerant(strict: bool, default: Any, read: Any, path: Path) -> Any:
    """``read(path)``, or (not strict) ``default`` with the error logged."""
    try:
        return read(path)
    except CheckpointError as exc:
        if strict:
            raise
        logger.error("ignoring %s", exc)
        return default


def _object(path: Path) -> dict[str, Any]:
    document = read_json(path)
    if not isinstance(document, dict):
        raise CheckpointError(path, f"holds a JSON {type(document).__name__}, not an object")
    return document


def _process(path: Path) -> ProcessId | None:
    if not path.exists():
        return None
    document = _object(path)
    if document == RESERVED:  # reserved by the launcher, not written yet
        return None
    pid, start = document.get("pid"), document.get("start_time")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise CheckpointError(path, f"'pid' must be a positive integer, found {pid!r}")
    if start is not None and (not isinstance(start, int) or isinstance(start, bool)):
        raise CheckpointError(path, f"'start_time' must be an integer, found {start!r}")
    return ProcessId(pid, start)


def read_termination(run_dir: Path) -> Termination | None:
    """The launcher's termination record of a run, None if it wrote none (yet)."""
    path = run_dir / TERMINATION_FILE
    if not path.exists():
        return None
    document = _object(path)
    if document == RESERVED:  # the task has not ended yet (or its launcher died first)
        return None
    status, error = document.get("wait_status"), document.get("launch_error")
    if isinstance(status, int) and not isinstance(status, bool):
        return Termination(wait_status=status)
    if isinstance(error, str):
        return Termination(launch_error=error)
    raise CheckpointError(path, "needs an integer 'wait_status' or a string 'launch_error'")


def _records(path: Path) -> list[dict[str, Any]]:
    """task.updates, each record checked, and the stream checked to replay in order.

    One JSON record a line; a file an agent before append-only streams wrote
    holds one JSON list, and is read as well.
    """
    legacy = False
    with contextlib.suppress(OSError), open(path, "rb") as stream:  # read_json names a problem
        legacy = stream.read(1) == b"["
    document = read_json(path, lines=not legacy)
    if not isinstance(document, list):
        raise CheckpointError(path, "must hold a list of update records")
    sent: list[str] = []
    acknowledged = 0
    for index, record in enumerate(document):
        kind = record.get("type") if isinstance(record, dict) else None
        if kind == "UPDATE":
            status = record.get("status")
            ok = isinstance(status, dict) and isinstance(status.get("uuid"), str)
            if not ok or not isinstance(status.get("state"), str):
                raise CheckpointError(
                    path, f"record {index}: an UPDATE needs a status with uuid and state"
                )
            sent.append(status["uuid"])
        elif kind == "ACK":
            # Acknowledgements come in the order the updates went out (one in flight per task).
            if acknowledged >= len(sent) or record.get("uuid") != sent[acknowledged]:
                raise CheckpointError(
                    path,
                    f"record {index}: acknowledges {record.get('uuid')!r}, not the next update",
                )
            acknowledged += 1
        else:
            raise CheckpointError(
                path, f"record {index}: type must be UPDATE or ACK, found {kind!r}"
            )
    return document
