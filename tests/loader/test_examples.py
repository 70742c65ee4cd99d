"""The out-of-tree example builds the way a user's project does and runs as an allocator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from pymesos_modules.config import parse_config
from pymesos_modules.kinds.allocator import AgentInfo, AllocatorOptions, FrameworkInfo
from pymesos_modules.manager import ModuleManager

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "first_fit"


def _query(flag: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", flag], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_path_queries_point_at_headers_and_cmake_package():
    include, cmake = Path(_query("--includedir")), Path(_query("--cmakedir"))
    assert (include / "pymesos_modules" / "module.h").is_file()
    assert (include / "pymesos_modules" / "module.hpp").is_file()
    assert (cmake / "PyMesosModulesConfig.cmake").is_file()


def test_example_builds_out_of_tree_and_allocates(tmp_path):
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(
        ["cmake", "-S", str(EXAMPLE), "-B", str(build), *generator,
         f"-DCMAKE_PREFIX_PATH={_query('--cmakedir')}"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True)
    library = build / "libexample_first_fit.so"

    inspected = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "inspect", str(library), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    [module] = json.loads(inspected.stdout)["modules"]
    assert (module["name"], module["kind"], module["ok"]) == (
        "org_example_FirstFit",
        "allocator",
        True,
    )

    manager = ModuleManager()
    manager.load(parse_config(json.dumps(
        {"libraries": [{"file": str(library), "modules": ["org_example_FirstFit"]}]}
    )))  # fmt: skip
    with manager.create("org_example_FirstFit", kind="allocator") as allocator:
        allocator.initialize(AllocatorOptions(resource_names=("cpus", "mem")))
        allocator.add_framework(3, FrameworkInfo((0,)))
        allocator.add_agent(0, AgentInfo((2.0, 512.0)))
        allocator.add_agent(1, AgentInfo((1.0, 256.0)))
        assert allocator.allocate(0.0).as_tuples() == [
            (3, 0, 0, 0xFFFFFFFF, 0, (2.0, 512.0)),
            (3, 1, 0, 0xFFFFFFFF, 0, (1.0, 256.0)),
        ]
        allocator.recover_resources(3, 1, 0, (1.0, 256.0), 0.0, 0.0)
        assert [r[1] for r in allocator.allocate(1.0).as_tuples()] == [1]
        # No allocate_agents in its table (NULL): a cycle over some agents runs allocate().
        allocator.recover_resources(3, 0, 0, (2.0, 512.0), 0.0, 1.0)
        assert [r[1] for r in allocator.allocate(2.0, [1]).as_tuples()] == [0]
    manager.unload_all()
