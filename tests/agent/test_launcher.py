"""The task launcher program, driven directly as the agent drives it (support/launcher_cases.py).

The agent tests run it through real tasks; these cases reach what a task
cannot easily show: a spec cut short, garbage on stdin, a run folder that is
gone, exec and set-up failures with their exact messages.
"""

from __future__ import annotations

from support.launcher_cases import exercise, exercise_server

from pymesos_modules import paths
from pymesos_modules.agent.launcher import LaunchSpec


def test_the_launcher_runs_tasks_and_records_how_they_end(tmp_path):
    runs = exercise(paths.LAUNCHER, tmp_path)
    # Only the cases that are meant to complain wrote to stderr.
    assert all(r.stderr == "" or "no usable launch spec" in r.stderr for r in runs)


def test_the_launcher_server_forks_launchers_that_go_their_own_way(tmp_path):
    texts = exercise_server(paths.LAUNCHER, tmp_path)
    assert "no usable launch spec" in texts[2]


def test_a_spec_with_a_nul_byte_is_refused_before_any_launcher_starts(tmp_path):
    spec = LaunchSpec("/bin/true", ["/bin/true", "a\0b"], {}, "/", "o", "e", [])
    assert spec.problem() == "'a\\x00b' holds a NUL byte"
    spec = LaunchSpec("/bin/true", ["/bin/true"], {"A=B": "1"}, "/", "o", "e", [])
    assert spec.problem() == "environment variable 'A=B' cannot be passed to a process"
