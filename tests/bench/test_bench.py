"""pymesos-modules bench on tiny grids: schema, ratios from the same run, --check, plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def bench(tmp_path, *args: str, status: int = 0) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "bench", "--json", str(out), *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == status, done.stdout + done.stderr
    return done, json.loads(out.read_text())


def test_bench_writes_schema_ratios_and_plot(tmp_path):
    plot = tmp_path / "cycles.png"
    done, doc = bench(
        tmp_path, "--agents", "60,120", "--frameworks", "6", "--roles", "1,3",
        "--scenarios", "steady,declined,quota", "--cycles", "3", "--warmup", "1",
        "--plot", str(plot), "--check",
    )  # fmt: skip
    assert set(doc) >= {"machine", "results", "ratios", "targets"}
    # the three DRF paths agree offer for offer in every scenario, filters included
    assert doc["check"]["run"] and doc["check"]["disagree"] == {}
    assert doc["machine"]["cpus"] == os.cpu_count()
    assert len(doc["results"]) == 2 * 2 * 3 * 3
    for row in doc["results"]:
        assert "error" not in row, row
        assert set(row) >= {"scenario", "agents", "frameworks", "roles", "allocator", "cycle_ms",
                            "offers_per_cycle", "materialize_ms", "rss_mb"}  # fmt: skip
        c = row["cycle_ms"]
        assert 0 < c["min"] <= c["median"] <= c["p95"]
        assert row["offers_per_cycle"] > 0
    # every ratio is recomputable from the same run's medians
    medians = {(r["scenario"], r["agents"], r["frameworks"], r["roles"], r["allocator"]):
               r["cycle_ms"]["median"] for r in doc["results"]}  # fmt: skip
    assert doc["ratios"]
    for ratio in doc["ratios"]:
        key = (ratio["scenario"], ratio["agents"], ratio["frameworks"], ratio["roles"])
        expected = medians[(*key, ratio["baseline"])] / medians[(*key, ratio["allocator"])]
        assert abs(ratio["speedup"] - expected) < 1e-9 * expected
    assert {r["baseline"] for r in doc["ratios"]} == {"python/drf", "pybind/drf"}
    # the cffi/pybind11 pair again, both in one process with their cycles interleaved
    assert [(i["agents"], i["frameworks"]) for i in doc["interleaved"]] == [(60, 6), (120, 6)]
    for row in doc["interleaved"]:
        assert set(row["median_ms"]) == {"native/drf", "pybind/drf"} and row["cycles"] == 3
        assert row["cffi_over_pybind_median_of_pairs"] > 0
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "allocation cycle" in done.stdout and "targets" in done.stdout


def test_check_refuses_speedups_for_an_allocator_that_disagrees(tmp_path):
    modules = json.dumps({"libraries": [
        {"python": "support.wrong_allocator:ReversedDRF", "modules": ["reversed_drf"]}]})  # fmt: skip
    done, doc = bench(
        tmp_path, "--agents", "50", "--frameworks", "5", "--scenarios", "steady",
        "--allocators", "python/drf,native/drf,pybind/drf,reversed_drf",
        "--modules", modules, "--check", "--cycles", "2", "--warmup", "1",
    )  # fmt: skip
    assert doc["check"]["run"] is True
    assert set(doc["check"]["disagree"]) == {"reversed_drf"}
    assert doc["check"]["policies"]["reversed_drf"] == "drf"
    assert not [r for r in doc["ratios"] if "reversed_drf" in (r["allocator"], r["baseline"])]
    assert {r["allocator"] for r in doc["ratios"]} == {"native/drf", "pybind/drf"}
    assert "reversed_drf disagrees" in done.stdout


def test_one_failed_measurement_fails_the_run(tmp_path):
    done, doc = bench(
        tmp_path, "--quick", "--scenarios", "steady", "--allocators", "native/drf,no/such",
        status=1,
    )  # fmt: skip
    good, bad = doc["results"]
    assert (good["allocator"], good["agents"], good["frameworks"]) == ("native/drf", 100, 10)
    assert "error" not in good and good["offers_per_cycle"] > 0
    assert bad["allocator"] == "no/such" and "no/such" in bad["error"]
    assert "1 of 2 measurements failed" in done.stdout


def test_bench_rejects_unknown_scenario(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pymesos_modules", "bench", "--scenarios", "nope"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown scenario" in done.stdout + done.stderr


def test_the_cffi_target_prefers_the_interleaved_ratio():
    from pymesos_modules.bench.cli import evaluate_targets

    separate = [{"scenario": "steady", "agents": 10000, "frameworks": 1000, "roles": 1,
                 "baseline": "pybind/drf", "allocator": "native/drf", "speedup": 0.5}]  # fmt: skip
    target = "cffi time / pybind11 time, steady, 10k agents"

    def value(interleaved):
        rows = evaluate_targets([], separate, interleaved)
        return next(t for t in rows if t["target"] == target)

    assert value(None)["value"] == 2.0 and value(None)["met"] is False
    paired = [{"agents": 10000, "frameworks": 1000, "cffi_over_pybind_median_of_pairs": 1.02}]
    assert value(paired)["value"] == 1.02 and value(paired)["met"] is True
    # a failed interleaved run leaves the separate-process ratio in charge
    assert value([{"agents": 10000, "error": "timed out"}])["value"] == 2.0
