"""The package in a source tree: its path queries work, and missing build products say what to run.

``python -m pymesos_modules`` in a clone's root imports the clone's own
package.  Here that is a copy of the checkout without any build product (no
``_cdef.py``, no ``_drf`` binding, no ``lib/``), as a fresh clone is: the
header and CMake queries still print folders that hold what they promise, and
everything that needs a build product fails with one line naming the command
that builds it, never a ``ModuleNotFoundError`` traceback.  (The editable
layout is the one these tests run in; ``.ci/packaging`` checks the installed
one.)
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from pymesos_modules import paths

CHECKOUT = Path(__file__).resolve().parents[1]
BUILD_PRODUCTS = shutil.ignore_patterns(
    "_cdef.py", "_drf*.so", "lib", "include", "cmake", "__pycache__"
)


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """A copy of the checkout's sources with no build product in its package."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(CHECKOUT / "pymesos_modules", root / "pymesos_modules", ignore=BUILD_PRODUCTS)
    for folder in ("include", "cmake"):
        shutil.copytree(CHECKOUT / folder, root / folder)
    shutil.copy(CHECKOUT / "setup.py", root / "setup.py")
    return root


def in_clone(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m pymesos_modules ARGS`` in the clone's root, as if nothing were installed.

    ``-S`` (no .pth files): the editable install these tests run on would
    otherwise lend the clone's package its own build products through its
    import hook; the dependencies come from PYTHONPATH instead.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(site.getsitepackages())}
    done = subprocess.run(
        [sys.executable, "-S", "-m", "pymesos_modules", *args],
        cwd=root, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_header_and_cmake_queries_point_into_the_source_tree(fresh_clone):
    include = in_clone(fresh_clone, "--includedir")
    cmake = in_clone(fresh_clone, "--cmakedir")
    assert include.returncode == cmake.returncode == 0, include.stderr + cmake.stderr
    assert Path(include.stdout.strip()) == fresh_clone / "include"
    assert Path(cmake.stdout.strip()) == fresh_clone / "cmake"
    assert (fresh_clone / "include" / "pymesos_modules" / "module.h").is_file()


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["--libdir"], "libpmm_drf.so"),
        (["bench", "--agents", "10", "--frameworks", "2", "--scenarios", "steady"], "_cdef.py"),
        (["simulate", "--agents", "2", "--frameworks", "1", "--tasks", "2"], "_cdef.py"),
    ],
    ids=["libdir", "bench", "simulate"],
)
def test_a_missing_build_product_names_the_command_that_builds_it(fresh_clone, args, missing):
    done = in_clone(fresh_clone, *args)
    assert done.returncode == 1
    [line] = [line for line in (done.stdout + done.stderr).splitlines() if "error" in line]
    assert missing in line and f"run `pip install -e .` in {fresh_clone}" in line, line
    assert "ModuleNotFoundError" not in done.stdout + done.stderr


def test_the_checkouts_own_headers_and_cmake_files_are_used():
    # Tests run on an editable install: a copy staged into the package would go stale.
    assert paths.SOURCE_ROOT == CHECKOUT
    assert paths.INCLUDE_DIR == CHECKOUT / "include"
    assert paths.CMAKE_DIR == CHECKOUT / "cmake"
