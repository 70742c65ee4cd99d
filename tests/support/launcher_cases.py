"""The task launcher (native/launcher/launcher.c) driven as the agent drives it, case by case.

:func:`exercise` runs every case against one launcher program: the plain
build (tests/agent/test_launcher.py) and the sanitized one
(tests/native/test_sanitizers.py), which then also checks the launcher's
stderr for sanitizer reports.
"""

from __future__ import annotations

import array
import json
import os
import pwd
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymesos_modules.agent.checkpoint import read_termination
from pymesos_modules.agent.launcher import LaunchSpec, process_stat


@dataclass
class Run:
    """One launcher run: its answer, records and messages."""

    reply: dict[str, Any] | None
    run_dir: Path
    stderr: str
    returncode: int

    def record(self, name: str) -> Any:
        """A record the launcher wrote into the run folder."""
        return json.loads((self.run_dir / name).read_text())


def launch(
    launcher: Path, folder: Path, spec: LaunchSpec | bytes, env: dict[str, str] | None = None
) -> Run:
    """Start ``launcher`` on ``folder``/run with ``spec`` on stdin; wait for it to exit."""
    run_dir = folder / "run"
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    payload = spec if isinstance(spec, bytes) else spec.encode()
    done = subprocess.run(
        [str(launcher), str(run_dir)], input=payload, capture_output=True, env=env, timeout=60
    )
    line = done.stdout.decode().strip()
    return Run(json.loads(line) if line else None, run_dir, done.stderr.decode(), done.returncode)


def spec(folder: Path, *argv: str, **fields: Any) -> LaunchSpec:
    """A spec running ``argv`` (through ``sh -c`` when one string) with output in ``folder``."""
    if len(argv) == 1:
        argv = ("/bin/sh", "-c", argv[0])
    sandbox = folder / "sandbox"
    sandbox.mkdir(exist_ok=True)
    base: dict[str, Any] = {
        "program": argv[0],
        "argv": list(argv),
        "env": {"PATH": "/usr/bin:/bin", "GREETING": "hello \u00e9"},
        "cwd": str(sandbox),
        "stdout": str(sandbox / "stdout"),
        "stderr": str(sandbox / "stderr"),
        "rlimits": [],
    }
    return LaunchSpec(**{**base, **fields})


def exercise(launcher: Path, tmp: Path, env: dict[str, str] | None = None) -> list[Run]:
    """Every case; returns the runs (their stderr is for the caller to inspect)."""
    runs = []

    def case(name: str, *argv: str, **fields: Any) -> Run:
        folder = tmp / name
        folder.mkdir(parents=True)
        run = launch(launcher, folder, spec(folder, *argv, **fields), env)
        runs.append(run)
        return run

    # A task that exits: its pid record, its wait status, its output and environment.
    ok = case("ok", "echo $GREETING $PWD; exit 3")
    assert ok.returncode == 0 and ok.reply is not None, ok
    assert ok.record("pids/task.pid") == {k: ok.reply[k] for k in ("pid", "start_time")}
    assert ok.reply["start_time"] > 0 and ok.reply["launcher"]["pid"] != ok.reply["pid"]
    assert read_termination(ok.run_dir).wait_status == 3 << 8
    sandbox = ok.run_dir.parent / "sandbox"
    assert (sandbox / "stdout").read_text() == f"hello \u00e9 {sandbox}\n"

    # Signals: the task gets default dispositions back (sh ignores none), and its group dies.
    killed = case("killed", "kill -TERM $$")
    assert read_termination(killed.run_dir).wait_status == signal.SIGTERM

    # A program that does not exist: the reply and the record say so, nothing ran.
    missing = case("missing", "/nonexistent/program", "it's")
    message = "failed to run /nonexistent/program 'it'\"'\"'s': No such file or directory"
    assert missing.reply is not None and missing.returncode == 1
    assert missing.reply["error"] == message and "pid" in missing.reply["launcher"]
    assert read_termination(missing.run_dir).launch_error == message

    # A long message with quotes and control characters is cut, and still one JSON line.
    noisy = case("noisy", "/nonexistent/program", '"\\\n\x01' * 3000)
    assert noisy.reply is not None and noisy.reply["error"].startswith("failed to run ")
    assert noisy.reply["error"].endswith("No such file or directory")
    assert read_termination(noisy.run_dir).launch_error == noisy.reply["error"]

    # A working directory that does not exist.
    nowhere = case("nowhere", "true", cwd="/nonexistent")
    assert nowhere.reply is not None and "cannot enter /nonexistent" in nowhere.reply["error"]

    # rlimits hold from the first instruction (RLIM_INFINITY travels as -1).
    limited = case(
        "limited",
        "ulimit -n; ulimit -H -c",
        rlimits=[(resource.RLIMIT_NOFILE, 77, 77), (resource.RLIMIT_CORE, 0, -1)],
    )
    assert limited.reply is not None and "pid" in limited.reply
    out = (limited.run_dir.parent / "sandbox" / "stdout").read_text().split()
    assert out == ["77", "unlimited"]
    bad_limit = case("bad-limit", "true", rlimits=[(resource.RLIMIT_NOFILE, 10, 5)])
    assert "cannot set its rlimits" in bad_limit.reply["error"]

    # A cgroup that does not exist is named.
    no_cgroup = case("no-cgroup", "true", cgroups=["/nonexistent/cgroup"])
    assert no_cgroup.reply is not None and no_cgroup.reply["error"] == (
        "cannot join the cgroup /nonexistent/cgroup: No such file or directory"
    )

    # --switch_user: the task runs as the user given, with its groups (as root only).
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        switched = case("switched", "id -u; id -g", user=[nobody.pw_uid, nobody.pw_gid])
        assert switched.reply is not None and "pid" in switched.reply
        out = (switched.run_dir.parent / "sandbox" / "stdout").read_text().split()
        assert out == [str(nobody.pw_uid), str(nobody.pw_gid)]

    # What the task forked dies with it; the launcher exits once the task has.
    folder = tmp / "orphans"
    folder.mkdir(parents=True)
    child_pid = folder / "child"
    forked = launch(
        launcher, folder, spec(folder, f"sleep 600 & echo $! > {child_pid}; exit 0"), env
    )
    runs.append(forked)
    pid = int(child_pid.read_text())
    deadline = time.monotonic() + 30
    while (stat := process_stat(pid)) is not None and stat[0] != "Z":
        assert time.monotonic() < deadline, "the task's child outlived it"
        time.sleep(0.05)

    # A spec cut short (the agent died while sending it): nothing starts.
    folder = tmp / "cut"
    folder.mkdir(parents=True)
    cut = launch(launcher, folder, spec(folder, "true").encode()[:-3], env)
    assert cut.returncode == 2 and cut.reply is None
    assert "no usable launch spec" in cut.stderr
    assert not (cut.run_dir / "termination").exists()
    runs.append(cut)
    for garbage in (b"", b"\0", b"Z1\0", b"L1 2\0", b"Ux\0", b"P/bin/true\0"):
        bad = launch(launcher, folder, garbage, env)
        assert bad.returncode == 2 and bad.reply is None, (garbage, bad)
        runs.append(bad)

    # A run folder the agent forgot meanwhile: the task still runs, nothing is recorded.
    gone = tmp / "gone"
    gone.mkdir(parents=True)
    done = subprocess.run(
        [str(launcher), str(gone / "no-such-run")],
        input=spec(gone, "true").encode(),
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0 and b'"pid"' in done.stdout, done
    assert done.stderr == b""
    return runs


def exercise_server(launcher: Path, tmp: Path, env: dict[str, str] | None = None) -> list[str]:
    """``pmm_launcher --serve`` as the agent drives it; returns every process' messages."""
    tmp.mkdir(parents=True, exist_ok=True)
    messages = tmp / "server-stderr"
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with open(messages, "wb") as errors:
        server = subprocess.Popen(
            [str(launcher), "--serve"], stdin=theirs, stderr=errors, env=env, start_new_session=True
        )
    theirs.close()
    texts = []

    def request(name: str, payload: bytes) -> tuple[Path, dict[str, Any] | None]:
        folder = tmp / name
        run_dir = folder / "run"
        (run_dir / "pids").mkdir(parents=True)
        stderr = os.open(folder / "stderr", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        spec_read, spec_write = os.pipe()
        reply_read, reply_write = os.pipe()
        fds = array.array("i", [spec_read, reply_write, stderr])
        ours.sendmsg([os.fsencode(str(run_dir))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        for fd in (spec_read, reply_write, stderr):
            os.close(fd)
        with open(spec_write, "wb") as out:
            out.write(payload)
        with open(reply_read, "rb") as answer:
            line = answer.readline()
        texts.append((folder / "stderr").read_text())
        return run_dir, json.loads(line) if line else None

    # The forked launcher is on record, in a session of its own, and starts the task.
    folder = tmp / "served"
    folder.mkdir(parents=True)
    # (The task lingers, so its launcher is still there to be looked at.)
    run_dir, reply = request("served-ok", spec(folder, "sleep 2; exit 5").encode())
    assert reply is not None and "pid" in reply, reply
    recorded = json.loads((run_dir / "pids" / "forked.pid").read_text())
    assert recorded == reply["launcher"]
    assert os.getsid(recorded["pid"]) == recorded["pid"]
    deadline = time.monotonic() + 30
    while (termination := read_termination(run_dir)) is None:
        assert time.monotonic() < deadline, "the served task never ended"
        time.sleep(0.05)
    assert termination.wait_status == 5 << 8

    # A failing task is answered with the launcher's identity too.
    run_dir, reply = request("served-missing", spec(folder, "/nonexistent/x", "y").encode())
    assert reply is not None and reply["error"].startswith("failed to run /nonexistent/x y")
    assert reply["launcher"] == json.loads((run_dir / "pids" / "forked.pid").read_text())

    # A spec cut short: that launcher gives up; the server goes on serving.
    run_dir, reply = request("served-cut", b"P/bin/true")
    assert reply is None and "no usable launch spec" in texts[-1]

    # A request without descriptors or with a relative folder is ignored.
    ours.sendmsg([b"/tmp/nothing"])
    fds = array.array("i", [0, 1, 2])
    ours.sendmsg([b"relative"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    run_dir, reply = request("served-after", spec(folder, "true").encode())
    assert reply is not None and "pid" in reply, reply

    # The agent closing its end ends the server.
    ours.close()
    assert server.wait(timeout=30) == 0
    texts.append(messages.read_text())
    assert texts[-1].count("ignoring a request") == 2, texts[-1]
    return texts
