"""The cgroups isolators on cgroup v2 and on the combined v1 ``cpu,cpuacct`` mount, in a real kernel.

CI's machine cannot offer either layout (tests/support/cgroup_vm.py says
why), so one VM boot runs the same tests as on the host
(tests/isolator/test_cgroups.py through the isolator wrapper, and a real
master, agent and tasks from tests/agent/test_cgroups_isolation.py) in a
guest whose cgroups have those layouts, and the tests here assert on what
the guest reports.  Never skipped: without qemu or the kernel the fixture
fails, naming ``.ci/cgroup-vm`` (CI runs it).
"""

from __future__ import annotations

import ast

import pytest
from support import cgroup_vm, pymesos_site

ISOLATOR = "tests/isolator/test_cgroups.py"
AGENT = "tests/agent/test_cgroups_isolation.py"
#: the combined mount has cpu and cpuacct only: the cgroups/cpu tests
V1_CPU_CPUACCT = [
    "test_both_isolators_are_isolators_and_find_this_machine_s_cgroups",
    "test_cpu_shares_and_cfs_quota_follow_the_cpus",
    "test_a_root_made_beforehand_is_used_and_on_v2_cpu_is_enabled_beside_cpuset",
    "test_a_cpu_bound_task_under_half_a_cpu_with_cfs_gets_about_half_a_core",
    "test_a_tight_cfs_quota_throttles_a_busy_task_whatever_the_load",
]
#: the issue's end-to-end cases through a real agent (each task costs the slow
#: guest a launcher process; the rest of that file is the same code on v2)
V2_AGENT = [
    "test_a_task_over_its_memory_fails_with_the_mesos_reason[600MB-at-once]",
    "test_a_well_behaved_task_runs_in_its_cgroups_untouched_and_measured",
    "test_a_busy_task_under_half_a_cpu_with_cfs_uses_at_most_half_a_core",
]
PHASES = [
    cgroup_vm.Phase("v1-cpu-cpuacct", [f"{ISOLATOR}::{name}" for name in V1_CPU_CPUACCT]),
    cgroup_vm.Phase("v2", [ISOLATOR, *(f"{AGENT}::{name}" for name in V2_AGENT)]),
]


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    """Boot the VM once for this module: each layout's results, and the console text."""
    why = cgroup_vm.missing()
    if why is not None:
        pytest.fail(why)
    out = tmp_path_factory.mktemp("cgroup-vm")
    # The guest has no network: it uses the host's pymesos site, read-only.
    env = {"PMM_PYMESOS_SITE": str(pymesos_site.prepare())}
    return cgroup_vm.boot(PHASES, out, timeout=1500, env=env)


def isolator_tests() -> list[str]:
    """Every test of tests/isolator/test_cgroups.py, by the name JUnit gives it."""
    tree = ast.parse((cgroup_vm.REPO / ISOLATOR).read_text())
    return [
        f"test_cgroups.py::{node.name}"
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("layout", [p.layout for p in PHASES])
def test_the_cgroups_tests_pass_in_a_real_kernel_on_this_layout(guest, layout):
    results, console = guest
    result = results[layout]
    assert result.returncode is not None, f"the guest never finished {layout}:\n{console[-4000:]}"
    assert not result.problems(), "\n".join(result.problems()) + "\n" + result.log[-6000:]
    assert result.returncode == 0, result.log[-6000:]
    if layout == "v2":
        expected = isolator_tests() + [f"test_cgroups_isolation.py::{n}" for n in V2_AGENT]
    else:
        expected = [f"test_cgroups.py::{n}" for n in V1_CPU_CPUACCT]
    assert sorted(result.outcomes) == sorted(expected), result.log[-3000:]
