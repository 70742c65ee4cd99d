"""pymesos-modules bench --master --quick: every master scenario runs and reports sane fields.

Nothing here times anything: the quick sizes say nothing about speed, and a
figure is never compared with a limit (the report marks no target as met).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pymesos_modules.bench.master_cli import MASTER_SCENARIOS


def bench_master(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "master.json"
    done = subprocess.run(
        [
            sys.executable,
            "-P",
            "-m",
            "pymesos_modules",
            "bench",
            "--master",
            "--quick",
            "--json",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


def test_every_master_scenario_runs_through_the_http_apis(tmp_path):
    plot = tmp_path / "master.png"
    done, doc = bench_master(tmp_path, "--plot", str(plot))
    assert doc["quick"] is True
    assert doc["machine"]["cpus"] == os.cpu_count() and len(doc["machine"]["load_average"]) == 3
    rows = {r["scenario"]: r for r in doc["results"]}
    assert set(rows) == set(MASTER_SCENARIOS)
    for name, row in rows.items():
        assert "error" not in row, row
        assert row["seconds"] > 0 and row["master_cpu_s"] >= 0, row
        assert row["peak_rss_mb"] >= row["rss_mb"] > 10, row
        assert doc["mesos"][name] == MASTER_SCENARIOS[name].mesos
    # what the master reports is what the simulated agents told it
    for name in ("failover-10k", "failover-40k"):
        row = rows[name]
        assert row["master_agents"] == row["agents"]
        assert row["master_tasks_running"] == row["running_tasks"] == 10 * row["agents"]
    state = rows["state-20k"]
    assert state["state_agents"] == state["agents"]
    assert state["state_tasks"] == state["running_tasks"]
    assert state["state_completed_tasks"] == state["completed_tasks"] == state["setup_updates"]
    assert state["state_bytes"] > 1000
    poll = rows["state-poll"]
    assert poll["state_requests"] == 3 * 2 and poll["health_probes"] >= 1
    assert 0 < poll["health_p50_ms"] <= poll["health_p99_ms"] <= poll["health_max_ms"]
    reconcile = rows["reconcile-100k"]
    assert reconcile["updates_received"] == reconcile["tasks"] == 400
    assert reconcile["reconcile_calls"] == 3
    for name, state_name in (("offers-10k", "TASK_RUNNING"), ("launch-true", "TASK_FINISHED")):
        row = rows[name]
        assert not row["timed_out"], row
        assert row["tasks_done"] == row["tasks_launched"] > 0
        assert row["states"][state_name] == row["tasks_done"]
        assert row["tasks_per_s"] > 0
    # a quick run never claims a target
    assert doc["targets"] and all(t["met"] is None for t in doc["targets"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "master scenarios" in done.stdout and "Mesos" in done.stdout


def test_bench_master_rejects_an_unknown_scenario(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-P",
            "-m",
            "pymesos_modules",
            "bench",
            "--master",
            "--scenarios",
            "failover-10k,nope",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown master scenario" in done.stdout and "nope" in done.stdout
