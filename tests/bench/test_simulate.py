"""pymesos-modules simulate on tiny workloads: report schema, side by side, traces, plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pymesos_modules.allocators import create_builtin
from pymesos_modules.simulate.engine import Simulation, VirtualClock, jain_index
from pymesos_modules.simulate.workload import SyntheticWorkload, TraceError, read_trace

TESTS = Path(__file__).resolve().parents[1]


def simulate(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "sim.json"
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "simulate", "--json", str(out), *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(out.read_text())


def test_side_by_side_summary_schema_and_plot(tmp_path):
    plot = tmp_path / "sim.png"
    done, doc = simulate(
        tmp_path, "--allocator", "python/drf,native/drf", "--agents", "8", "--frameworks", "4",
        "--roles", "2", "--tasks", "300", "--mean-duration", "5", "--plot", str(plot),
    )  # fmt: skip
    assert set(doc) == {"machine", "workload", "results"}
    assert [r["allocator"] for r in doc["results"]] == ["python/drf", "native/drf"]
    for r in doc["results"]:
        assert r["finished"] == r["tasks"] == 300
        assert r["makespan_s"] > 0
        assert 0 < r["utilization"]["cpus_mean"] <= 1
        assert set(r["dominant_share_mean"]) == {"role000", "role001"}
        assert 0 < r["jain_fairness_mean"] <= 1
        assert 0 <= r["wait_s"]["p50"] <= r["wait_s"]["p90"] <= r["wait_s"]["p99"]
        assert r["cycle_ms"]["count"] > 0
    # the twin and the native engine make the same decisions, so the same schedule
    python, native = doc["results"]
    assert python["makespan_s"] == native["makespan_s"]
    assert python["wait_s"] == native["wait_s"]
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "python/drf" in done.stdout and "native/drf" in done.stdout


def test_trace_drives_the_simulation(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "framework,role,submit_time,duration,cpus,mem,comment\n"
        "a,r1,0,10,2,512,x\n"
        "b,r2,0.5,4,1,256,\n"
        "a,r1,1,3,24,1024,\n"
    )
    _, doc = simulate(tmp_path, "--trace", str(trace), "--agents", "2", "--allocator", "native/drf")
    (result,) = doc["results"]
    assert result["tasks"] == result["finished"] == 3
    assert result["frameworks"] == 2 and result["roles"] == 2
    assert doc["workload"]["trace"] == str(trace)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("submit_time,duration,cpus,mem,framework\n0,1,1,1,a\n", "missing role"),
        ("submit_time,duration,cpus,mem,framework,role\n0,x,1,1,a,r\n", ":2: column 'duration'"),
        ("submit_time,duration,cpus,mem,framework,role\n0,1,-1,1,a,r\n", "column 'cpus'"),
        ("submit_time,duration,cpus,mem,framework,role\n0,1,1,1,,r\n", "must not be empty"),
        ("submit_time,duration,cpus,mem,framework,role\n", "no tasks"),
        (
            "submit_time,duration,cpus,mem,framework,role\n0,1,1,1,a,r\n0,1,1,1,a,q\n",
            "one role per framework",
        ),
    ],
)
def test_bad_traces_name_the_fault(tmp_path, text, message):
    trace = tmp_path / "bad.csv"
    trace.write_text(text)
    with pytest.raises(TraceError, match=message) as info:
        read_trace(trace)
    assert str(trace) in str(info.value)


def test_cli_reports_a_bad_trace_without_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "simulate", "--trace", str(tmp_path / "nope")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "cannot read trace" in done.stdout and "Traceback" not in done.stderr


def test_synthetic_workload_is_seeded():
    make = lambda seed: SyntheticWorkload(50, 3, 2, 4, 24.0, seed=seed).generate()  # noqa: E731
    assert make(7) == make(7)
    assert make(7) != make(8)
    tasks = make(7)
    assert [t.submit_time for t in tasks] == sorted(t.submit_time for t in tasks)


def test_virtual_clock_orders_and_cancels():
    clock = VirtualClock()
    seen: list[tuple[float, str]] = []
    clock.call_at(2.0, lambda: seen.append((clock.now, "b")))
    clock.call_at(1.0, lambda: seen.append((clock.now, "a")))
    clock.call_at(1.5, lambda: seen.append((clock.now, "never"))).cancel()
    clock.call_at(2.0, lambda: seen.append((clock.now, "c")))
    while clock.step():
        pass
    assert seen == [(1.0, "a"), (2.0, "b"), (2.0, "c")]


def test_jain_index():
    assert jain_index([0.2, 0.2, 0.2]) == pytest.approx(1.0)
    assert jain_index([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain_index([0.0, 0.0]) is None


def test_simulation_in_process_api():
    tasks = SyntheticWorkload(100, 2, 2, 2, 8.0, mean_duration=2.0).generate()
    result = Simulation(create_builtin("python/drf"), "python/drf", tasks, 2, 8.0, 4096.0).run()
    assert result.finished == 100
    assert len(result.waits) == 100
    assert result.samples and all(0 <= s.cpus <= 1 for s in result.samples)
