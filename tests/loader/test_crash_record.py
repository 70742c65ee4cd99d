"""A module that crashes its host is named in the host's last line (issue 12, item 8).

Real master and agent processes load zoo bombs that segfault in create() or
compatible() or abort(); the process dies of the signal (as in Mesos), after
Python's stack dump, with a last line naming the library, module and call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import pymesos_modules

CASES = [
    ("master", "crash_in_create", signal.SIGSEGV, "create()"),
    ("master", "abort_in_create", signal.SIGABRT, "create()"),
    ("agent", "crash_in_compatible", signal.SIGSEGV, "compatible()"),
    ("agent", "abort_in_create", signal.SIGABRT, "create()"),
]


@pytest.mark.parametrize(("runtime", "animal", "signum", "call"), CASES)
def test_the_last_line_of_a_crashed_host_names_library_module_and_call(
    zoo, tmp_path, runtime, animal, signum, call
):
    config = json.dumps({"libraries": [{"file": str(zoo[animal]), "modules": ["zoo_Good"]}]})
    args = [runtime, f"--modules={config}", "--port=0"]
    if runtime == "agent":
        args += ["--master=127.0.0.1:9", f"--work_dir={tmp_path / 'work'}"]
    root = str(Path(pymesos_modules.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert done.returncode == -signum, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == (
        f"pymesos-modules: {signum.name} in module code: {zoo[animal].resolve()}: "
        f"module 'zoo_Good': {call}"
    ), done.stderr[-2000:]
    # Python's own stacks come first, so the record is what an operator sees last.
    assert any(line.startswith("Fatal Python error") for line in lines[:-1])


def test_a_crash_outside_module_code_says_no_module_was_running(tmp_path):
    script = (
        "import ctypes\n"
        "from pymesos_modules import crash\n"
        "assert crash.install()\n"
        "ctypes.string_at(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == -signal.SIGSEGV
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("pymesos-modules: SIGSEGV outside module code")
    )
