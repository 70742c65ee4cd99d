"""The bundled posix isolators on real child processes, through the module manager."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from pymesos_modules.abi import NativeCallError
from pymesos_modules.errors import ModuleCreateError
from pymesos_modules.kinds.base import protocol_for
from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.kinds.isolator import (
    RLIMITS,
    ContainerConfig,
    Isolator,
    LaunchInfo,
    Limitation,
    NativeIsolator,
    RLimit,
)
from pymesos_modules.manager import ModuleManager

GROW = (
    "import time\n"
    "chunks = []\n"
    "while True:\n"
    "    chunks.append(bytearray(4 * 1024 * 1024))\n"  # bytearray() touches its pages
    "    time.sleep(0.02)\n"
)


def make(manager: ModuleManager, name: str, **parameters: str) -> NativeIsolator:
    return resolve(manager, name, "isolator", "--isolation", parameters or None)


def config(tmp_path, container_id: str = "c1", **resources: float) -> ContainerConfig:
    return ContainerConfig(
        container_id=container_id,
        task_id="t1",
        framework_id="f1",
        sandbox=str(tmp_path),
        user=None,
        resources=resources or {"cpus": 1.0, "mem": 64.0},
        task={"name": "t1", "task_id": {"value": "t1"}},
    )


def spawn(code: str, rlimits: list[RLimit] = ()) -> subprocess.Popen:
    """A task process as the agent starts one: own process group, rlimits before exec."""

    def child() -> None:
        for limit in rlimits:
            unlimited = resource.RLIM_INFINITY
            resource.setrlimit(
                RLIMITS[limit.resource],
                (
                    unlimited if limit.soft is None else limit.soft,
                    unlimited if limit.hard is None else limit.hard,
                ),
            )

    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True, preexec_fn=child)


def poll(isolator: NativeIsolator, container_id: str, process: subprocess.Popen, seconds=60.0):
    """watch() every 20 ms while the process runs: the first limitation, or None."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        found = isolator.watch(container_id, None)
        if found is not None:
            return found
        time.sleep(0.02)
    return None


def test_rlimits_memory_limitation_is_reported_with_mesos_reason(manager, tmp_path):
    iso = make(manager, "posix/rlimits")
    assert isinstance(iso, Isolator) and isinstance(iso, NativeIsolator)
    launch = iso.prepare(config(tmp_path, mem=64.0))
    assert launch == LaunchInfo(rlimits=[RLimit("RLMT_AS", 128 << 20, 128 << 20)])
    process = spawn(GROW, launch.rlimits)
    try:
        iso.isolate("c1", process.pid)
        found = poll(iso, "c1", process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert isinstance(found, Limitation)
    assert found.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert "Memory limit exceeded" in found.message and "64.0 MB" in found.message
    assert found.resources == {"mem": 64.0}
    iso.cleanup("c1")


def test_rlimits_address_space_backstop_failure_is_attributed_to_memory(manager, tmp_path):
    # Never watched while running: the task dies on RLIMIT_AS; the exit-time
    # watch() only knows its peak RSS from samples, so sample it once late.
    iso = make(manager, "posix/rlimits", address_space_factor="1.5")
    launch = iso.prepare(config(tmp_path, mem=64.0))
    assert launch.rlimits == [RLimit("RLMT_AS", 96 << 20, 96 << 20)]
    process = spawn(GROW, launch.rlimits)
    iso.isolate("c1", process.pid)
    seen = None
    while process.poll() is None:
        seen = iso.watch("c1", None) or seen
        time.sleep(0.01)
    status = process.returncode
    wait_status = (status & 0xFF) << 8 if status >= 0 else -status
    found = seen or iso.watch("c1", wait_status)
    assert status != 0
    assert found is not None and found.reason == "REASON_CONTAINER_LIMITATION_MEMORY"


def test_rlimits_cpu_time_limit_kills_with_sigxcpu_and_is_reported(manager, tmp_path):
    iso = make(manager, "posix/rlimits", cpu_time_seconds="1", address_space_factor="0")
    launch = iso.prepare(config(tmp_path, cpus=1.0, mem=64.0))
    assert launch.rlimits == [RLimit("RLMT_CPU", 1, 2)]
    process = spawn("while True: pass", launch.rlimits)
    iso.isolate("c1", process.pid)
    assert process.wait(timeout=120) == -signal.SIGXCPU
    found = iso.watch("c1", signal.SIGXCPU)  # waitpid status of a signal death
    assert found is not None and found.reason == "REASON_CONTAINER_LIMITATION"
    assert "SIGXCPU" in found.message and "1 s" in found.message


def test_clean_exit_is_no_limitation(manager, tmp_path):
    iso = make(manager, "posix/rlimits")
    iso.prepare(config(tmp_path))
    process = spawn("pass")
    iso.isolate("c1", process.pid)
    assert process.wait() == 0
    assert iso.watch("c1", 0) is None


def test_usage_reports_growing_rss_and_cpu_time_of_the_process_group(manager, tmp_path):
    iso = make(manager, "posix/usage")
    assert iso.prepare(config(tmp_path, cpus=0.5, mem=512.0)) is None
    code = (
        "import os, time\n"
        "os.fork() or None\n"  # two processes in the group
        "data = bytearray(64 * 1024 * 1024)\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        "time.sleep(60)\n"
    )
    process = spawn(code)
    try:
        iso.isolate("c1", process.pid)
        stats = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = iso.usage("c1")
            cpu = stats["cpus_user_time_secs"] + stats["cpus_system_time_secs"]
            if stats["processes"] == 2 and cpu >= 0.5:
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert stats["processes"] == 2 and stats["threads"] >= 2
    assert stats["mem_rss_bytes"] > 2 * 64 * 1024 * 1024  # both copies touched their buffer
    # The spin reads a cpu clock, a system call: time lands in user and system.
    assert stats["cpus_user_time_secs"] + stats["cpus_system_time_secs"] >= 0.5
    assert stats["cpus_user_time_secs"] > 0
    assert stats["cpus_limit"] == 0.5 and stats["mem_limit_bytes"] == 512 * 1024 * 1024
    assert abs(stats["timestamp"] - time.time()) < 3600
    iso.cleanup("c1")


def test_unknown_containers_and_bad_calls_are_named_and_change_nothing(manager, tmp_path):
    iso = make(manager, "posix/rlimits")
    with pytest.raises(
        NativeCallError, match=r"org_pymesos_PosixRlimits.*isolate.*unknown container 'nope'"
    ):
        iso.isolate("nope", 1)
    iso.prepare(config(tmp_path))
    with pytest.raises(NativeCallError, match="already prepared"):
        iso.prepare(config(tmp_path))
    with pytest.raises(NativeCallError, match="pid must be > 0"):
        iso.isolate("c1", 0)
    with pytest.raises(NativeCallError, match=r"usage.*unknown container"):
        iso.usage("other")
    iso.update("c1", {"cpus": 2.0, "mem": 32.0})
    assert iso.usage("c1") == {"mem_limit_bytes": 32 * 1024 * 1024}
    iso.cleanup("c1")
    with pytest.raises(NativeCallError, match=r"cleanup.*unknown container 'c1'"):
        iso.cleanup("c1")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"address_space_factor": "0.5"}, "'address_space_factor' must be 0"),
        ({"cpu_time_seconds": "soon"}, "'cpu_time_seconds' must be a number, got 'soon'"),
        ({"cpu_time_seconds": "-1"}, "'cpu_time_seconds' must be >= 0"),
    ],
)
def test_bad_parameters_fail_create_with_the_parameter_named(manager, parameters, message):
    with pytest.raises(ModuleCreateError, match=message):
        make(manager, "posix/rlimits", **parameters)


def test_a_python_isolator_satisfies_the_protocol():
    class Recorder:
        def prepare(self, config):
            return LaunchInfo(environment={"A": "1"})

        def isolate(self, container_id, pid): ...
        def update(self, container_id, resources): ...
        def usage(self, container_id):
            return {}

        def watch(self, container_id, wait_status):
            return None

        def cleanup(self, container_id): ...

    assert protocol_for("isolator") is Isolator
    assert isinstance(Recorder(), Isolator)
    assert not isinstance(object(), Isolator)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("RLMT_BOGUS", 1, 1), "unknown rlimit type 'RLMT_BOGUS'"),
        (("RLMT_AS", 5, 4), "soft 5 above hard 4"),
        (("RLMT_AS", None, 4), "soft None above hard 4"),
        (("RLMT_AS", -1, None), "soft must be a count"),
    ],
)
def test_rlimit_records_refuse_nonsense(args, message):
    with pytest.raises(ValueError, match=message):
        RLimit(*args)
