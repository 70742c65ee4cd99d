"""pymesos-modules simulate refuses bad input up front, naming it, without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allocator", "native/drf,nope"], "unknown module 'nope'"),
        (["--trace", "{tmp}/missing.csv"], "missing.csv"),
        (["--trace", "{tmp}/bad.csv"], "bad.csv:2:"),
        (["--trace", "{tmp}/nocolumns.csv"], "lacks column"),
        (["--agent_resources", "cpus:x"], "resource 'cpus'"),
    ],
)
def test_bad_input_is_named(tmp_path, args, message):
    (tmp_path / "bad.csv").write_text("submit_time,duration,cpus,mem,framework,role\n0,x,1,1,a,r\n")
    (tmp_path / "nocolumns.csv").write_text("submit_time,duration\n0,1\n")
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "simulate", "--tasks", "5", "--agents", "2",
         *(a.format(tmp=tmp_path) for a in args)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stdout
    assert "Traceback" not in done.stderr
