"""The bundled posix isolators on real child processes, through the module manager."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
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


def config(
    tmp_path, container_id: str = "c1", task: dict | None = None, **resources: float
) -> ContainerConfig:
    return ContainerConfig(
        container_id=container_id,
        task_id="t1",
        framework_id="f1",
        sandbox=str(tmp_path),
        user=None,
        resources=resources or {"cpus": 1.0, "mem": 64.0},
        task=task or {"name": "t1", "task_id": {"value": "t1"}},
    )


def spawn(code: str, rlimits: list[RLimit] = (), **popen: object) -> subprocess.Popen:
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

    return subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, preexec_fn=child, **popen
    )


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


# Reserves address space (untouched, so RSS stays small) until RLIMIT_AS
# refuses, says so, and fails when told: a runtime that cleans up before dying.
RESERVE = (
    "import mmap, sys\n"
    "maps = []\n"
    "try:\n"
    "    while True: maps.append(mmap.mmap(-1, 4 << 20))\n"
    "except OSError:\n"
    "    print('full', flush=True)\n"
    "    sys.stdin.readline()\n"
    "    sys.exit(1)\n"
)


def reserve_until_full(iso: NativeIsolator, launch: LaunchInfo) -> subprocess.Popen:
    """A RESERVE task at its RLIMIT_AS, sampled by watch() (which must see no limitation)."""
    process = spawn(RESERVE, launch.rlimits, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    iso.isolate("c1", process.pid)
    assert process.stdout.readline() == b"full\n"
    time.sleep(0.2)  # past the /proc snapshot's 100 ms lifetime: the next watch() reads anew
    assert iso.watch("c1", None) is None  # RSS is far below mem: nothing to report while running
    return process


def test_rlimits_failure_at_the_address_space_backstop_is_attributed_to_memory(manager, tmp_path):
    iso = make(manager, "posix/rlimits", address_space_factor="1", address_space_headroom_mb="64")
    launch = iso.prepare(config(tmp_path, mem=64.0))
    assert launch.rlimits == [RLimit("RLMT_AS", 128 << 20, 128 << 20)]
    process = reserve_until_full(iso, launch)
    process.communicate(b"go\n", timeout=60)
    assert process.returncode == 1
    found = iso.watch("c1", 1 << 8)  # waitpid status of exit(1)
    assert found is not None and found.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert "address space" in found.message and "128.0 MB" in found.message
    assert found.resources == {"mem": 64.0}
    iso.cleanup("c1")


def test_a_killed_task_near_its_limit_is_not_blamed_on_memory(manager, tmp_path):
    # SIGKILL/SIGTERM are the agent's kills (or the OOM killer), never RLIMIT_AS.
    iso = make(manager, "posix/rlimits", address_space_factor="1", address_space_headroom_mb="64")
    process = reserve_until_full(iso, iso.prepare(config(tmp_path, mem=64.0)))
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert iso.watch("c1", signal.SIGKILL) is None
    iso.cleanup("c1")


def test_a_task_failing_far_below_its_limits_is_not_blamed_on_memory(manager, tmp_path):
    iso = make(manager, "posix/rlimits")
    iso.prepare(config(tmp_path, mem=512.0))
    process = spawn("import time, sys; time.sleep(0.3); sys.exit(3)")
    iso.isolate("c1", process.pid)
    while process.poll() is None:
        assert iso.watch("c1", None) is None
        time.sleep(0.02)
    assert process.returncode == 3
    assert iso.watch("c1", 3 << 8) is None


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
        ({"address_space_headroom_mb": "-5"}, "'address_space_headroom_mb' must be >= 0"),
        ({"address_space_factor": "inf"}, "'address_space_factor' must be 0"),
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


def rlimit_task(*rlimits: dict) -> dict:
    """A TaskInfo asking for its own limits, in Mesos' ContainerInfo.rlimit_info shape."""
    return {"name": "t1", "container": {"type": "MESOS", "rlimit_info": {"rlimits": list(rlimits)}}}


def test_rlimits_applies_the_tasks_own_limits_capped_by_the_operators(manager, tmp_path):
    iso = make(manager, "posix/rlimits", cpu_time_seconds="10")
    task = rlimit_task(
        {"type": "RLMT_NOFILE", "soft": 64, "hard": 128},
        {"type": "RLMT_AS", "soft": "1073741824", "hard": "1073741824"},  # looser: ours wins
        {"type": "RLMT_CPU", "soft": 1, "hard": 2},  # tighter: the task's wins
        {"type": "RLMT_CORE"},  # neither soft nor hard: unlimited
    )
    launch = iso.prepare(config(tmp_path, task=task, mem=64.0))
    assert launch.rlimits == [
        RLimit("RLMT_AS", 128 << 20, 128 << 20),
        RLimit("RLMT_CPU", 1, 2),
        RLimit("RLMT_NOFILE", 64, 128),
        RLimit("RLMT_CORE", None, None),
    ]
    process = spawn(
        "import resource; print(*resource.getrlimit(resource.RLIMIT_NOFILE)); "
        "print(*resource.getrlimit(resource.RLIMIT_CPU)); "
        "print(resource.getrlimit(resource.RLIMIT_CORE)[0] == resource.RLIM_INFINITY)",
        launch.rlimits,
        stdout=subprocess.PIPE,
    )
    iso.isolate("c1", process.pid)
    assert process.communicate(timeout=60)[0].split() == [b"64", b"128", b"1", b"2", b"True"]
    # The cpu-time message names the limit the task actually ran under.
    found = iso.watch("c1", signal.SIGXCPU)
    assert found is not None and "its 1 s of cpu time" in found.message


@pytest.mark.parametrize(
    ("rlimits", "message"),
    [
        ([{"type": "RLMT_BOGUS", "soft": 1, "hard": 1}], r"rlimits\[0\]\.type must be a Mesos"),
        ([{"soft": 1, "hard": 1}], r"rlimits\[0\]\.type .*got nothing"),
        ([{"type": "RLMT_NOFILE", "soft": 1}], r"\(RLMT_NOFILE\): set both soft and hard"),
        ([{"type": "RLMT_NOFILE", "soft": 9, "hard": 8}], "soft 9 is above hard 8"),
        ([{"type": "RLMT_NOFILE", "soft": -1, "hard": 8}], r"rlimits\[0\]\.soft must be a count"),
        ([{"type": "RLMT_NOFILE", "soft": "1e3", "hard": 8}], r"\.soft must be a count"),
        ([{"type": "RLMT_NOFILE", "soft": 1.5, "hard": 8}], r"\.soft must be a count"),
        (
            [{"type": "RLMT_NOFILE"}, {"type": "RLMT_NOFILE", "soft": 1, "hard": 1}],
            r"rlimits\[1\]: RLMT_NOFILE is given twice",
        ),
        ({"type": "RLMT_NOFILE"}, "rlimits must be a list"),
        (["RLMT_NOFILE"], r"rlimits\[0\] must be an object"),
    ],
)
def test_a_bad_task_rlimit_fails_prepare_naming_it_and_changes_nothing(
    manager, tmp_path, rlimits, message
):
    iso = make(manager, "posix/rlimits")
    task = {"name": "t1", "container": {"rlimit_info": {"rlimits": rlimits}}}
    with pytest.raises(NativeCallError, match=r"org_pymesos_PosixRlimits.*prepare.*" + message):
        iso.prepare(config(tmp_path, task=task))
    with pytest.raises(NativeCallError, match="unknown container 'c1'"):
        iso.watch("c1", None)  # nothing was recorded ...
    assert iso.prepare(config(tmp_path)) is not None  # ... so the id is still free


def test_isolator_calls_from_several_threads_are_serialized(manager, tmp_path):
    # Two containers of one instance, different process counts, asked from
    # four threads at once: every answer must be its own container's.
    iso = make(manager, "posix/usage")
    iso.prepare(config(tmp_path, "one"))
    iso.prepare(config(tmp_path, "two"))
    one = spawn("import time; time.sleep(60)")
    two = spawn("import os, time; os.fork(); time.sleep(60)")
    try:
        iso.isolate("one", one.pid)
        iso.isolate("two", two.pid)
        deadline = time.monotonic() + 60
        while iso.usage("two").get("processes") != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        wrong: list[tuple[str, float]] = []

        def ask(container_id: str, expected: float) -> None:
            for _ in range(300):
                got = iso.usage(container_id)["processes"]
                if got != expected:
                    wrong.append((container_id, got))

        threads = [
            threading.Thread(target=ask, args=(cid, n)) for cid, n in [("one", 1), ("two", 2)] * 2
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for process in (one, two):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert wrong == []
