"""The bundled cgroups isolators (cgroups/mem, cgroups/cpu) on real cgroups and real processes.

CI's machine runs these as root on cgroup v1 (writable memory, cpu and cpuacct
hierarchies under /sys/fs/cgroup); they are never skipped there.  The same
tests run again inside a real kernel with cgroup v2, and with the combined v1
``cpu,cpuacct`` mount (tests/isolator/test_cgroups_vm.py): ``LAYOUT`` is what
the machine they run on has.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cgroup_roots import HIERARCHY, LAYOUT, folders, join_cgroups, unique_root

from pymesos_modules.abi import NativeCallError
from pymesos_modules.errors import ModuleCreateError
from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.kinds.isolator import ContainerConfig, Isolator, Limitation, NativeIsolator
from pymesos_modules.manager import ModuleManager

MB = 1024 * 1024

# Touches 600 MB at once (bytes * n writes every page).
BIG = "data = b'x' * (600 * 1024 * 1024)\nprint(len(data))\n"
# A slow leak: 4 MB every 20 ms until something stops it.
LEAK = (
    "import time\n"
    "chunks = []\n"
    "while True:\n"
    "    chunks.append(b'y' * (4 * 1024 * 1024))\n"
    "    time.sleep(0.02)\n"
)
BUSY = "while True: pass\n"


@pytest.fixture
def root():
    with unique_root() as name:
        yield name


_made: list[NativeIsolator] = []


@pytest.fixture(autouse=True)
def _close_isolators(manager):
    """Instances a failed test left alive would keep the manager from unloading."""
    yield
    while _made:
        _made.pop().close()


def make(manager: ModuleManager, name: str, root: str, **parameters: str) -> NativeIsolator:
    isolator = resolve(manager, name, "isolator", "--isolation", {"root": root, **parameters})
    _made.append(isolator)
    return isolator


def config(container_id: str = "c1", task: dict | None = None, **resources: float):
    return ContainerConfig(
        container_id=container_id,
        task_id="t1",
        framework_id="f1",
        sandbox="/tmp",
        user=None,
        resources=resources or {"cpus": 1.0, "mem": 64.0},
        task=task or {"name": "t1", "task_id": {"value": "t1"}},
    )


def spawn(code: str, cgroups: list[str], **popen: object) -> subprocess.Popen:
    """A task process as the agent's launcher starts one: in its cgroups before exec."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    # -S: the tasks need no site-packages (and start several seconds sooner in the VM)
    return subprocess.Popen(
        [sys.executable, "-S", "-c", code],
        start_new_session=True,
        preexec_fn=lambda: join_cgroups(cgroups),
        **popen,
    )


def paths(root: str, container_id: str, *controllers: str) -> list[str]:
    """The launch info's cgroups: the container's distinct folders over ``controllers``."""
    return [str(p) for p in LAYOUT.folders(root, container_id, controllers)]


def test_both_isolators_are_isolators_and_find_this_machine_s_cgroups(manager, root):
    cpu = make(manager, "cgroups/cpu", root)
    assert isinstance(cpu, Isolator)
    # v1 apart: a cpu and a cpuacct folder; v1 cpu,cpuacct and v2: one folder
    assert cpu.prepare(config()).cgroups == paths(root, "c1", "cpu", "cpuacct")
    folder = LAYOUT.folder("cpu", root, "c1")
    assert LAYOUT.weight(folder) == LAYOUT.weight_for(1.0)
    assert LAYOUT.cfs(folder)[0] is None  # CFS is off
    cpu.cleanup("c1")
    assert not any(p.exists() for p in LAYOUT.folders(root, "c1", ("cpu", "cpuacct")))
    if "memory" not in LAYOUT.mounts:
        return  # the VM's v1 cpu,cpuacct boot mounts no memory hierarchy
    mem = make(manager, "cgroups/mem", root)
    assert isinstance(mem, Isolator)
    assert mem.prepare(config()).cgroups == paths(root, "c1", "memory")
    memory = LAYOUT.folder("memory", root, "c1")
    assert LAYOUT.hard_limit(memory) == 64 * MB
    assert LAYOUT.soft_limit(memory) == 64 * MB
    mem.cleanup("c1")
    assert not any(p.exists() for p in folders(root, "c1"))


def test_600_mb_at_once_under_64_is_oom_killed_and_reported_with_limit_and_peak(manager, root):
    mem = make(manager, "cgroups/mem", root)
    launch = mem.prepare(config(mem=64.0))
    process = spawn(BIG, launch.cgroups)
    mem.isolate("c1", process.pid)
    assert process.wait(timeout=120) == -signal.SIGKILL  # the kernel's OOM killer
    found = mem.watch("c1", signal.SIGKILL)
    assert isinstance(found, Limitation)
    assert found.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert "Memory limit exceeded: Requested: 64MB Maximum Used: 64MB" in found.message
    assert found.resources == {"mem": 64.0}
    mem.cleanup("c1")


def test_a_slow_leak_is_reported_while_the_task_runs_or_once_it_died(manager, root):
    mem = make(manager, "cgroups/mem", root)
    launch = mem.prepare(config(mem=64.0))
    process = spawn(LEAK, launch.cgroups)
    mem.isolate("c1", process.pid)
    found = None
    deadline = time.monotonic() + 120
    while found is None and process.poll() is None and time.monotonic() < deadline:
        found = mem.watch("c1", None)
        time.sleep(0.02)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    status = process.wait()
    found = found or mem.watch("c1", -status)
    assert found is not None and found.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert "Requested: 64MB" in found.message
    mem.cleanup("c1")


def test_a_well_behaved_task_is_untouched_and_measured_from_its_cgroup(manager, root):
    mem = make(manager, "cgroups/mem", root)
    launch = mem.prepare(config(mem=64.0))
    code = "import sys, time\ndata = b'z' * (16 * 1024 * 1024)\nprint('ok', flush=True)\nsys.stdin.readline()\n"
    process = subprocess.Popen(
        [sys.executable, "-S", "-c", code],
        start_new_session=True,
        preexec_fn=lambda: join_cgroups(launch.cgroups),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    mem.isolate("c1", process.pid)
    assert process.stdout.readline() == b"ok\n"
    assert mem.watch("c1", None) is None
    usage = mem.usage("c1")
    assert 16 * MB <= usage["mem_total_bytes"] <= 64 * MB
    assert 16 * MB <= usage["mem_rss_bytes"] <= 64 * MB
    assert usage["mem_limit_bytes"] == 64 * MB and usage["mem_soft_limit_bytes"] == 64 * MB
    assert usage["processes"] == 1 and usage["threads"] >= 1
    process.communicate(b"\n", timeout=60)
    assert process.returncode == 0
    assert mem.watch("c1", 0) is None
    mem.cleanup("c1")


def test_memory_limits_follow_updates_but_the_hard_limit_never_drops(manager, root):
    mem = make(manager, "cgroups/mem", root)
    mem.prepare(config(mem=64.0))
    memory = LAYOUT.folder("memory", root, "c1")
    mem.update("c1", {"cpus": 1.0, "mem": 128.0})
    assert LAYOUT.hard_limit(memory) == 128 * MB
    assert LAYOUT.soft_limit(memory) == 128 * MB
    mem.update("c1", {"cpus": 1.0, "mem": 32.0})  # lowering could OOM-kill a blameless task
    assert LAYOUT.hard_limit(memory) == 128 * MB
    assert LAYOUT.soft_limit(memory) == 32 * MB
    assert mem.usage("c1")["mem_limit_bytes"] == 128 * MB
    mem.cleanup("c1")


def test_limit_swap_caps_memory_and_swap_together_as_the_limit_moves(manager, root):
    mem = make(manager, "cgroups/mem", root, limit_swap="true")
    mem.prepare(config(mem=64.0))
    memory = LAYOUT.folder("memory", root, "c1")

    def limits() -> tuple[int | None, int | None]:
        return LAYOUT.hard_limit(memory), LAYOUT.swap_cap(memory)

    # v1 caps memory + swap together (memsw); v2 caps swap alone, at none
    assert limits() == (64 * MB, 0 if LAYOUT.v2 else 64 * MB)
    mem.update("c1", {"mem": 128.0})  # v1: memsw has to rise before the limit may
    assert limits() == (128 * MB, 0 if LAYOUT.v2 else 128 * MB)
    mem.cleanup("c1")


def test_task_limits_mem_sets_the_hard_limit_above_the_soft_one(manager, root):
    mem = make(manager, "cgroups/mem", root)
    mem.prepare(config(task={"name": "t", "limits": {"mem": {"value": 96}}}, mem=64.0))
    memory = LAYOUT.folder("memory", root, "c1")
    assert LAYOUT.hard_limit(memory) == 96 * MB
    assert LAYOUT.soft_limit(memory) == 64 * MB
    mem.prepare(
        config("c2", task={"name": "t", "limits": {"mem": {"value": "Infinity"}}}, mem=64.0)
    )
    assert LAYOUT.hard_limit(memory.parent / "c2") is None  # unlimited
    with pytest.raises(NativeCallError, match=r"limits.mem 32MB is below its mem 64MB"):
        mem.prepare(config("c3", task={"name": "t", "limits": {"mem": {"value": 32}}}, mem=64.0))
    assert not (memory.parent / "c3").exists()  # a refused prepare leaves nothing behind
    mem.cleanup("c1")
    mem.cleanup("c2")


def test_cpu_shares_and_cfs_quota_follow_the_cpus(manager, root):
    cpu = make(manager, "cgroups/cpu", root, enable_cfs="true")
    cpu.prepare(config(cpus=0.5, mem=64.0))
    folder = LAYOUT.folder("cpu", root, "c1")
    assert LAYOUT.weight(folder) == LAYOUT.weight_for(0.5)  # 512 shares, weight 50
    assert LAYOUT.cfs(folder) == (50000, 100000)
    cpu.update("c1", {"cpus": 2.0, "mem": 64.0})
    assert LAYOUT.weight(folder) == LAYOUT.weight_for(2.0)
    assert LAYOUT.cfs(folder) == (200000, 100000)
    assert cpu.usage("c1")["cpus_limit"] == 2.0
    cpu.cleanup("c1")


def test_a_root_made_beforehand_is_used_and_on_v2_cpu_is_enabled_beside_cpuset(manager, root):
    base = LAYOUT.folder("cpu", root)
    base.mkdir()
    if LAYOUT.v2:
        # "cpuset" begins with "cpu": a root whose children may use cpuset only
        # must still get cpu enabled (found by the VM run; v1 has no such file).
        top = HIERARCHY / "cgroup.subtree_control"
        if "cpuset" not in top.read_text().split():
            top.write_text("+cpuset")
        (base / "cgroup.subtree_control").write_text("+cpuset")
    cpu = make(manager, "cgroups/cpu", root)
    cpu.prepare(config(cpus=0.5, mem=64.0))
    assert LAYOUT.weight(LAYOUT.folder("cpu", root, "c1")) == LAYOUT.weight_for(0.5)
    cpu.cleanup("c1")


def cpu_share(cpu: NativeIsolator, cpus: float, periods: int = 30) -> tuple[float, dict, dict]:
    """Cores a busy task under ``cpus`` used, measured over ``periods`` CFS periods.

    The window is counted in the kernel's CFS periods (100 ms each, counted
    while the task is runnable), not in the test's wall clock; at most the
    quota (cpus x 100 ms) runs per period, however idle the machine is.
    """
    launch = cpu.prepare(config(cpus=cpus, mem=64.0))
    process = spawn(BUSY, launch.cgroups)
    try:
        cpu.isolate("c1", process.pid)
        while cpu.usage("c1").get("cpus_nr_periods", 0) < 3:
            time.sleep(0.05)
        before = cpu.usage("c1")
        deadline = time.monotonic() + 120
        while cpu.usage("c1")["cpus_nr_periods"] - before["cpus_nr_periods"] < periods:
            assert time.monotonic() < deadline, "no CFS periods: the quota is not enforced"
            time.sleep(0.1)
        after = cpu.usage("c1")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        cpu.cleanup("c1")

    def total(u: dict) -> float:
        return u["cpus_user_time_secs"] + u["cpus_system_time_secs"]

    elapsed = after["cpus_nr_periods"] - before["cpus_nr_periods"]
    return (total(after) - total(before)) / (elapsed * 0.1), before, after


def test_a_cpu_bound_task_under_half_a_cpu_with_cfs_gets_about_half_a_core(manager, root):
    cpu = make(manager, "cgroups/cpu", root, enable_cfs="true")
    share, _, _ = cpu_share(cpu, 0.5)
    # Never more than its half (plus accounting slack); on a busy 2-core
    # machine it may get less, but it does run.
    assert 0.1 <= share <= 0.6, share


def test_a_tight_cfs_quota_throttles_a_busy_task_whatever_the_load(manager, root):
    cpu = make(manager, "cgroups/cpu", root, enable_cfs="true")
    share, before, after = cpu_share(cpu, 0.05)
    assert share <= 0.1, share
    assert after["cpus_nr_throttled"] > before["cpus_nr_throttled"]
    assert after["cpus_throttled_time_secs"] > before["cpus_throttled_time_secs"]


def test_cleanup_kills_a_process_that_left_the_task_s_process_group(manager, root):
    mem = make(manager, "cgroups/mem", root)
    launch = mem.prepare(config())
    # The child leaves the process group (setsid): a killpg misses it, its cgroup does not.
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid(); print(os.getpid(), flush=True); time.sleep(600)\n"
        "time.sleep(600)\n"
    )
    process = spawn(code, launch.cgroups, stdout=subprocess.PIPE)
    escaped = int(process.stdout.readline())
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert os.path.exists(f"/proc/{escaped}")
    mem.cleanup("c1")
    assert not LAYOUT.folder("memory", root, "c1").exists()
    stat = Path(f"/proc/{escaped}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1][0] == "Z"


def test_recover_destroys_orphans_and_prepare_adopts_what_is_kept(manager, root):
    first = make(manager, "cgroups/mem", root)
    for cid in ("kept", "orphan"):
        first.prepare(config(cid))
    orphan = spawn("import time; time.sleep(600)", paths(root, "orphan", "memory"))
    first.close()  # the agent died: its cgroups stay
    second = make(manager, "cgroups/mem", root)
    assert second.recover(["kept"]) is True
    assert orphan.wait(timeout=60) == -signal.SIGKILL
    assert not LAYOUT.folder("memory", root, "orphan").exists()
    assert LAYOUT.folder("memory", root, "kept").exists()
    assert second.prepare(config("kept")).cgroups == paths(root, "kept", "memory")
    second.cleanup("kept")


def test_bad_calls_and_parameters_are_refused_with_clear_messages(manager, root):
    mem = make(manager, "cgroups/mem", root)
    with pytest.raises(NativeCallError, match="unknown container 'nope'"):
        mem.usage("nope")
    with pytest.raises(NativeCallError, match="cannot name a cgroup folder"):
        mem.prepare(config("cgroup.procs"))
    mem.prepare(config())
    with pytest.raises(NativeCallError, match="prepared already"):
        mem.prepare(config())
    mem.cleanup("c1")
    for parameters, message in (
        ({"root": "../x"}, r"must not hold '\.' or '\.\.'"),
        ({"root": "/"}, "must name a folder below the hierarchy"),
        ({"root": root, "limit_swap": "maybe"}, "'limit_swap' must be true or false"),
        ({"root": root, "cfs": "true"}, "unknown parameter 'cfs'"),
    ):
        with pytest.raises(ModuleCreateError, match=message):
            resolve(manager, "cgroups/mem", "isolator", "--isolation", parameters)


def test_a_hierarchy_without_the_controllers_is_refused_naming_what_is_missing(manager, tmp_path):
    with pytest.raises(ModuleCreateError, match=r"no cgroup hierarchy under .* offers the memory"):
        resolve(manager, "cgroups/mem", "isolator", "x", {"hierarchy": str(tmp_path)})
    if LAYOUT.v2:  # one cgroup2 hierarchy, holding every controller
        return
    # CI's cgroup2 mount holds only hugetlb: v2 is detected and refused for that.
    with pytest.raises(ModuleCreateError, match=r"does not offer the cpu controller.*hugetlb"):
        resolve(manager, "cgroups/cpu", "isolator", "x", {"hierarchy": str(HIERARCHY / "unified")})


READ_ONLY = """
import sys
from pymesos_modules.errors import ModuleError
from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.manager import ModuleManager
for name in ("cgroups/mem", "cgroups/cpu"):
    try:
        resolve(ModuleManager(), name, "isolator", "--isolation")
    except ModuleError as exc:
        print(str(exc).replace(chr(10), " "))
    else:
        sys.exit(name + " was created without write access to cgroups")
"""


def read_only_cgroups(argv: list[str]) -> list[str]:
    """``argv`` in a mount namespace of its own whose cgroup mounts are read-only.

    Only that namespace sees them read-only; the machine's stay as they are.
    """
    remount = " && ".join(f"mount -o remount,bind,ro {m}" for m in LAYOUT.distinct_mounts())
    return ["unshare", "--mount", "sh", "-c", f'{remount} && exec "$@"', "sh", *argv]


def test_compatible_refuses_where_cgroups_are_not_writable():
    done = subprocess.run(
        read_only_cgroups([sys.executable, "-P", "-c", READ_ONLY]),
        capture_output=True, text=True, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    memory, cpu = LAYOUT.mounts["memory"], LAYOUT.mounts["cpu"]
    assert f"cgroups/mem: the cgroup hierarchy {memory} is not writable" in lines[0]
    assert "Read-only file system" in lines[0] and "says it cannot run on this host" in lines[0]
    assert f"cgroups/cpu: the cgroup hierarchy {cpu} is not writable" in lines[1]
