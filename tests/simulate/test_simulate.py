"""pymesos-modules simulate on tiny clusters: reports, side-by-side allocators, traces, plots."""

from __future__ import annotations

import json
import subprocess
import sys

from pymesos_modules.allocators import create_builtin
from pymesos_modules.master.resources import parse_resources
from pymesos_modules.simulate.sim import Simulation, TaskSpec, read_trace, synthetic_workload


def simulate(tmp_path, *args):
    out = tmp_path / "sim.json"
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "simulate", "--json", str(out), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    return done, (json.loads(out.read_text()) if out.exists() else None)


def test_two_drf_implementations_simulate_identically_and_plots_are_written(tmp_path):
    done, report = simulate(
        tmp_path,
        "--agents",
        "12",
        "--frameworks",
        "4",
        "--roles",
        "2",
        "--tasks",
        "300",
        "--allocator",
        "native/drf,python/drf,python/first_fit",
        "--plot",
        str(tmp_path / "sim"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    native, python, first_fit = report["runs"]
    for run in report["runs"]:
        assert run["finished"] == run["tasks"] == 300
        assert 0 < run["utilization_mean"] <= 1
        assert 0 < run["jain_mean"] <= 1
        assert run["wait_s"]["p50"] <= run["wait_s"]["p90"] <= run["wait_s"]["p99"]
    # same policy, same decisions: same waits, makespan and fairness
    for key in ("makespan_s", "wait_s", "jain_mean", "utilization_mean"):
        assert native[key] == python[key], key
    assert first_fit["allocator"] == "python/first_fit"
    for name in ("sim-utilization.png", "sim-shares.png"):
        image = (tmp_path / name).read_bytes()
        assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 5000


def test_trace_workload_runs_every_task(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "submit_time,duration,cpus,mem,framework,role\n"
        "0,10,1,512,alpha,eng\n0,10,4,2048,beta,ops\n5,1,1,256,alpha,eng\n30,2,8,8192,beta,ops\n"
    )
    specs = read_trace(trace)
    assert [s.framework for s in specs] == [0, 1, 0, 1]
    sim = Simulation(create_builtin("python/drf"), specs, 2, parse_resources("cpus:8;mem:16384"))
    report = sim.run()
    assert report["finished"] == 4
    # the 8-cpu task arrives at 30 s and needs a whole agent: it runs by 32 s
    assert 32.0 <= report["makespan_s"] <= 34.0


def test_bad_trace_names_the_line(tmp_path):
    trace = tmp_path / "bad.csv"
    trace.write_text("submit_time,duration,cpus,mem,framework,role\n0,1,x,1,a,r\n")
    try:
        read_trace(trace)
    except ValueError as exc:
        assert "bad.csv:2" in str(exc)
    else:
        raise AssertionError("accepted a bad trace")


def test_synthetic_workload_is_seeded():
    a = synthetic_workload(50, 3, 2, 10, 8.0, seed=4)
    assert a == synthetic_workload(50, 3, 2, 10, 8.0, seed=4)
    assert a != synthetic_workload(50, 3, 2, 10, 8.0, seed=5)
    assert all(isinstance(s, TaskSpec) and s.role in ("role0", "role1") for s in a)
