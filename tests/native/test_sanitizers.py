"""Native code under AddressSanitizer + UndefinedBehaviorSanitizer, and valgrind.

The DRF engine runs a long random sequence of good and bad calls in a C++
driver; the module libraries (bundled ones and the bad-module zoo) are loaded
through the Python loader in a child process with the sanitizer runtimes
preloaded.  Any report fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cgroup_roots import unique_root
from support.launcher_cases import exercise, exercise_server
from support.native_build import cmake_build, sanitizer_preload

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer", "SUMMARY:")

pytestmark = pytest.mark.sanitize


def _clean(done: subprocess.CompletedProcess) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for marker in REPORTS:
        assert marker not in output, output[-4000:]


@pytest.fixture(scope="module")
def sanitized_driver(tmp_path_factory) -> Path:
    build = cmake_build(
        HERE, tmp_path_factory.mktemp("asan-driver"), sanitize=True,
        defines={"PMM_SOURCE_DIR": str(ROOT)},
    )  # fmt: skip
    return build / "drf_driver"


def test_drf_engine_is_clean_under_asan_and_ubsan(sanitized_driver):
    env = {
        **os.environ,
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
        "UBSAN_OPTIONS": "print_stacktrace=1",
    }
    done = subprocess.run(
        [str(sanitized_driver), "30000", "7"], capture_output=True, text=True, env=env
    )
    _clean(done)
    assert "rows" in done.stdout


@pytest.mark.parametrize("scenario", ["steady", "suppressed", "declined"])
def test_drf_bench_scenarios_are_clean_under_asan_and_ubsan(sanitized_driver, scenario):
    """The bench's set-up paths (waves of declines, revives, suppression) sanitized."""
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"}
    bench = sanitized_driver.parent / "drf_bench"
    done = subprocess.run(
        [str(bench), scenario, "300", "40", "3", "4"], capture_output=True, text=True, env=env
    )
    _clean(done)
    assert "300 offers" in done.stdout


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_drf_engine_leaks_nothing_under_valgrind(tmp_path):
    build = cmake_build(HERE, tmp_path / "plain", defines={"PMM_SOURCE_DIR": str(ROOT)})
    done = subprocess.run(
        ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
         "--error-exitcode=9", str(build / "drf_driver"), "4000", "11"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "definitely lost: 0 bytes" in done.stderr or "no leaks are possible" in done.stderr


LOADER_SCRIPT = r"""
import json, math, sys
from pathlib import Path
from pymesos_modules import errors
from pymesos_modules.config import parse_config
from pymesos_modules.manager import ModuleManager
from pymesos_modules.kinds.allocator import AgentInfo, AllocatorCallError, AllocatorOptions, FrameworkInfo

lib_dir, zoo_dir = Path(sys.argv[1]), Path(sys.argv[2])
manager = ModuleManager()
manager.load(parse_config(json.dumps({"libraries": [
    {"file": str(lib_dir / "libpmm_drf.so"), "modules": ["org_pymesos_DRFAllocator"]},
    {"file": str(lib_dir / "libpmm_hello.so"), "modules": ["org_pymesos_Hello"]},
]})))
hello = manager.create("org_pymesos_Hello")
drf = manager.create("org_pymesos_DRFAllocator", kind="allocator")
drf.initialize(AllocatorOptions(resource_names=("cpus", "mem")))
drf.add_role(0, "*")
drf.add_framework(0, FrameworkInfo((0,)))
for i in range(50):
    drf.add_agent(i, AgentInfo((4.0, 1024.0)))
batch = drf.allocate(0.0)
assert len(batch) == 50
for row, values in zip(batch.rows, batch.values):
    drf.recover_resources(int(row["framework"]), int(row["agent"]), 0, tuple(values), 5.0, 0.0)
for bad in (lambda: drf.add_agent(1, AgentInfo((1.0, 1.0))), lambda: drf.add_agent(99, AgentInfo((math.nan, 1.0)))):
    try:
        bad()
    except AllocatorCallError:
        pass
    else:
        raise SystemExit("bad call accepted")
drf.close(); hello.close(); manager.unload_all()
import subprocess
from pymesos_modules.abi import NativeCallError
from pymesos_modules.kinds.isolator import ContainerConfig
manager.load(parse_config(json.dumps({"libraries": [{"file": str(lib_dir / "libpmm_posix.so"),
    "modules": ["org_pymesos_PosixRlimits", "org_pymesos_PosixUsage"]}]})))
child = subprocess.Popen(["sleep", "30"], start_new_session=True)
for name in ("org_pymesos_PosixRlimits", "org_pymesos_PosixUsage"):
    iso = manager.create(name, kind="isolator", parameters={"cpu_time_seconds": "5", "address_space_headroom_mb": "8"} if "Rl" in name else None)
    limits = [{"type": "RLMT_NOFILE", "soft": "64", "hard": 64}, {"type": "RLMT_CPU", "soft": 1, "hard": 9}, {"type": "RLMT_CORE"}]
    for task in ({"container": {"rlimit_info": {"rlimits": [{"type": "RLMT_X" * 40}, 7]}}}, {"container": {"rlimit_info": {"rlimits": [{"type": "RLMT_AS", "soft": "99999999999999999999", "hard": 1}]}}}):
        try:
            iso.prepare(ContainerConfig("c", "t", "f", "/tmp", None, {"mem": 1.0}, task))
        except NativeCallError:
            assert "Rl" in name  # posix/usage does not read the task
            continue
        iso.cleanup("c")
    iso.prepare(ContainerConfig("c", "t", "f", "/tmp", None, {"cpus": 1.0, "mem": 1.0}, {"name": "t", "container": {"rlimit_info": {"rlimits": limits}}}))
    iso.isolate("c", child.pid)
    iso.update("c", {"cpus": 1.0, "mem": 0.001})
    iso.usage("c"); iso.watch("c", None); iso.watch("c", 9); iso.watch("c", 1 << 8); iso.watch("c", 24)
    for bad in (lambda: iso.isolate("x", 1), lambda: iso.isolate("c", -1), lambda: iso.cleanup("x")):
        try:
            bad()
        except NativeCallError:
            pass
        else:
            raise SystemExit("bad isolator call accepted")
    iso.cleanup("c"); iso.close()
child.kill(); child.wait()
from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.kinds.resource_estimator import AgentUsage, ExecutorUsage
usage = AgentUsage({"cpus": 4.0}, [ExecutorUsage("c", "t", "f", {"cpus": 1.0}, True, {})])
fixed = resolve(manager, "fixed", "resource_estimator", "asan", {"resources": "cpus:2;mem:64"})
assert fixed.oversubscribable(usage) == {"cpus": 1.0, "mem": 64.0}
loadavg = Path("loadavg"); loadavg.write_text("9 9 9 1/1 1")
load = resolve(manager, "load", "qos_controller", "asan", {"load_threshold_5min": "1", "loadavg_path": "loadavg"})
assert len(load.corrections(usage)) == 1
hook = resolve(manager, "example_hook", "hook", "asan")
task = {"name": "t", "task_id": {"value": "t"}, "labels": {"labels": []}}
hook.master_launch_task_label_decorator(task, {}, "a"); hook.master_agent_lost("a", "h")
hook.agent_run_task_label_decorator(task, {}, {"hostname": "h"})
hook.agent_task_environment_decorator(task, {"A": "1"}); hook.agent_task_status_decorator("f", {"state": "TASK_RUNNING"})
hook.agent_resources_decorator({"resources": []}); hook.agent_attributes_decorator({})
sd = resolve(manager, "service_discovery", "hook", "asan", {"path": "hosts"})
sd.agent_run_task_label_decorator({**task, "resources": [{"name": "ports", "ranges": {"range": [{"begin": 1, "end": 2}]}}]}, {}, {"hostname": "h"})
sd.agent_task_status_decorator("f", {"task_id": {"value": "t"}, "state": "TASK_RUNNING"})
sd.agent_run_task_label_decorator({"name": "a b\n", "task_id": {"value": "u"}}, {}, {"hostname": "h"})
sd.agent_task_status_decorator("f", {"task_id": {"value": "u"}, "state": "TASK_RUNNING"})
sd.agent_task_status_decorator("f", {"task_id": {"value": "u"}, "state": "TASK_FINISHED"})
noops = [resolve(manager, "noop", k, "asan") for k in ("resource_estimator", "qos_controller")]
assert noops[0].oversubscribable(usage) == {} and noops[1].corrections(usage) == []
real = resolve(manager, "load", "qos_controller", "asan", {"load_threshold_15min": "1e9"})
assert real.corrections(usage) == []
for m in (*noops, real):
    m.close()
for bad in (lambda: fixed.oversubscribable.__self__.instance.call_output("oversubscribable", "[1"),
            lambda: hook.agent_resources_decorator.__call__("not json but a string id"),
            lambda: sd.agent_task_status_decorator("f", {"state": "TASK_RUNNING"}),
            lambda: sd.agent_run_task_label_decorator({**task, "resources": [{"name": "ports", "ranges": {"range": [{"begin": 9, "end": 1 << 40}]}}]}, {}, {}),
            lambda: load.corrections(AgentUsage({}, [7])),
            lambda: fixed.oversubscribable(AgentUsage({}, [ExecutorUsage("c", "t", "f", {"cpus": "x"}, "yes", {})]))):
    try:
        bad()
    except NativeCallError:
        pass
    else:
        raise SystemExit("bad document accepted")
from pymesos_modules.kinds.authorizer import Action, AuthorizationRequest
authz = resolve(manager, "role_authorizer", "authorizer", "asan", {"roles": "p=a", "forbidden_users": "root"})
assert not authz.authorized(AuthorizationRequest(Action.REGISTER_FRAMEWORK, "b", "p"))
assert not authz.authorized(AuthorizationRequest(Action.RUN_TASK, "a", "root"))
bearer = resolve(manager, "bearer", "http_authenticator", "asan", {"tokens": "t:a"})
assert bearer.authenticate({"Authorization": "Bearer t"}).principal == "a"
assert bearer.authenticate({"Authorization": "Basic x"}).status == 401
authz.close(); bearer.close()
sources = {m.source for m in manager.modules()}
assert all(src.startswith(str(lib_dir)) for src in sources), sources  # the sanitized builds
for m in (fixed, load, hook, sd):
    m.close()
for animal in sorted(zoo_dir.glob("libzoo_*.so")):
    try:
        m = ModuleManager()
        names = {"libzoo_throws.so": ["zoo_Thrower"],
                 "libzoo_election.so": ["zoo_Contender", "zoo_Detector"]}.get(animal.name, ["zoo_Good"])
        m.load(parse_config(json.dumps({"libraries": [{"file": str(animal), "modules": names}]})))
        for module in m.modules():
            try:
                created = m.create(module.name)
                if module.kind == "master_contender":
                    created.contend({"id": "m"})
                    assert created.watch(0, 0.05).state == "elected"
                elif module.kind == "master_detector":
                    assert created.detect(0, 0.05).leader is None
                created.close()
            except errors.ModuleError:
                pass
        m.unload_all()
    except errors.ModuleError:
        pass
print("loader ok")
"""


@pytest.fixture(scope="module")
def sanitized_modules(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Every bundled module built with ASan/UBSan (one build for this file's tests):
    their folder and the environment that runs Python with the sanitizers preloaded."""
    preload = sanitizer_preload()
    if preload is None:
        pytest.skip("the compiler has no ASan/UBSan runtime")
    tmp_path = tmp_path_factory.mktemp("asan-modules")
    modules = cmake_build(
        ROOT, tmp_path / "modules", sanitize=True,
        defines={"PMM_BUILD_PYTHON": "OFF", "PMM_MODULE_OUTPUT_DIR": str(tmp_path / "lib")},
    )  # fmt: skip
    assert modules.exists()
    env = {
        **os.environ,
        "LD_PRELOAD": preload,
        # Built-in names (kinds/builtin.py) find the sanitized libraries first.
        "LD_LIBRARY_PATH": str(tmp_path / "lib"),
        # CPython itself is not leak-clean; leaks are covered by valgrind above.
        "ASAN_OPTIONS": "detect_leaks=0",
        "UBSAN_OPTIONS": "print_stacktrace=1",
    }
    return tmp_path / "lib", env


# The sanitized build of every module (in the first test's setup) takes minutes on a loaded machine.
@pytest.mark.timeout(1500)
def test_loader_and_modules_are_clean_under_asan_and_ubsan(tmp_path, sanitized_modules):
    lib, env = sanitized_modules
    zoo = cmake_build(ROOT / "tests" / "zoo", tmp_path / "zoo", sanitize=True)
    done = subprocess.run(
        [sys.executable, "-c", LOADER_SCRIPT, str(lib), str(zoo)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    _clean(done)
    assert "loader ok" in done.stdout


CGROUPS_SCRIPT = r"""
import os, signal, subprocess, sys
from pathlib import Path
from pymesos_modules.abi import NativeCallError
from pymesos_modules.errors import ModuleError
from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.kinds.isolator import ContainerConfig
from pymesos_modules.manager import ModuleManager

lib_dir, root = Path(sys.argv[1]), sys.argv[2]
# The tasks run without the sanitizer runtimes (their shadow memory is no task's).
plain = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}

def spawn(code, cgroups):
    def join():
        for path in cgroups:
            with open(path + "/cgroup.procs", "w") as procs:
                procs.write("0")
    return subprocess.Popen([sys.executable, "-c", code], env=plain, preexec_fn=join,
                            start_new_session=True, stdout=subprocess.DEVNULL)

manager = ModuleManager()
mem = resolve(manager, "cgroups/mem", "isolator", "asan", {"root": root, "limit_swap": "true"})
cpu = resolve(manager, "cgroups/cpu", "isolator", "asan", {"root": root, "enable_cfs": "true"})
assert {m.source for m in manager.modules()} == {str(lib_dir / "libpmm_cgroups.so")}
task = {"name": "t", "limits": {"mem": {"value": 96}}}
cgroups = []
for iso in (mem, cpu):
    cgroups += iso.prepare(ContainerConfig("c1", "t", "f", "/tmp", None, {"cpus": 0.5, "mem": 64.0}, task)).cgroups
    iso.prepare(ContainerConfig("orphan", "t", "f", "/tmp", None, {"cpus": 0.1, "mem": 32.0}, {}))
big = spawn("data = b'x' * (600 << 20)", cgroups)
for iso in (mem, cpu):
    iso.isolate("c1", big.pid)
    iso.update("c1", {"cpus": 1.0, "mem": 80.0})
    iso.usage("c1"); iso.watch("c1", None)
assert big.wait(timeout=120) == -signal.SIGKILL
found = mem.watch("c1", signal.SIGKILL)
assert found is not None and found.reason == "REASON_CONTAINER_LIMITATION_MEMORY", found
assert cpu.watch("c1", signal.SIGKILL) is None
for iso in (mem, cpu):
    iso.cleanup("c1")
    for bad in (lambda: iso.usage("c1"), lambda: iso.prepare(ContainerConfig("a/b", "t", "f", "/", None, {}, {})),
                lambda: iso.update("orphan", {"cpus": float("nan"), "mem": float("inf")}),
                lambda: iso.prepare(ContainerConfig("x", "t", "f", "/", None, {"mem": 64.0}, {"limits": {"mem": "lots"}}))):
        try:
            bad()
        except NativeCallError:
            pass
        else:
            assert iso is cpu, "bad isolator call accepted"  # cgroups/cpu does not read limits
            iso.cleanup("x")
    iso.close()
for name in ("cgroups/mem", "cgroups/cpu"):  # a restarted agent: its orphans go
    again = resolve(manager, name, "isolator", "asan", {"root": root})
    assert again.recover(["kept"]) is True
    again.close()
assert not any((Path("/sys/fs/cgroup") / c / root / "orphan").exists() for c in ("memory", "cpu", "cpuacct"))
for parameters in ({"root": ".."}, {"root": root, "hierarchy": "/nonexistent"}, {"root": root, "cfs": "1"}):
    try:
        resolve(manager, "cgroups/mem", "isolator", "asan", parameters)
    except ModuleError:
        pass
    else:
        raise SystemExit(f"bad parameters accepted: {parameters}")
manager.unload_all()
print("cgroups ok")
"""


@pytest.mark.timeout(1500)
def test_cgroups_isolators_are_clean_under_asan_and_ubsan(tmp_path, sanitized_modules):
    lib, env = sanitized_modules
    with unique_root() as root:
        done = subprocess.run(
            [sys.executable, "-c", CGROUPS_SCRIPT, str(lib), root],
            capture_output=True, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
    _clean(done)
    assert "cgroups ok" in done.stdout


@pytest.mark.timeout(1500)
def test_the_task_launcher_is_clean_under_asan_and_ubsan(tmp_path, sanitized_modules):
    lib, _ = sanitized_modules
    # The launcher links the sanitizers itself; it must also free all it allocates.
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"}
    runs = exercise(lib / "pmm_launcher", tmp_path / "direct", env)
    texts = [run.stderr for run in runs]
    texts += exercise_server(lib / "pmm_launcher", tmp_path / "served", env)
    for text in texts:
        for marker in REPORTS:
            assert marker not in text, text[-4000:]
