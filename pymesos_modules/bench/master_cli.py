"""``pymesos-modules bench --master``: Mesos' master benchmarks, with Mesos' figure beside ours.

Each scenario (see ``master_scenarios``) runs against its own master process;
the table, the JSON document and the plot follow the allocator benchmark's
conventions (``machine`` block with the load average, one row per
measurement, a ``targets`` list).  ``--quick`` shrinks every scenario to a
size a test can afford; its figures say nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pymesos_modules.bench import master_scenarios as ms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MasterScenario:
    """One master benchmark: how to run it at full and quick size, and what to compare with."""

    name: str
    doc: str
    #: Mesos' published figure and where it comes from (None: Mesos published none).
    mesos: str | None
    #: the measured field the target is about, its comparison and limit
    measure: str
    op: str
    limit: float
    unit: str
    full: Callable[[ms.Context], Any]
    quick: Callable[[ms.Context], Any]
    #: a second target (field, op, limit, unit), e.g. /health's p99 under /state load
    also: tuple[str, str, float, str] | None = None


RUNNING = ms.AgentShape(frameworks=5, tasks_per_framework=2)
WITH_COMPLETED = ms.AgentShape(5, 2, 5, 2)
POLLED = ms.AgentShape(10, 10, 10, 10)

MASTER_SCENARIOS: dict[str, MasterScenario] = {
    s.name: s
    for s in (
        MasterScenario(
            "failover-10k",
            "10k agents x 10 tasks re-register to a restarted master",
            "about 4.5 s (Mesos 1.5 release blog, AgentReregistrationDelay)",
            "seconds",
            "<=",
            2.0,
            "s",
            lambda c: ms.failover(c, 10000, RUNNING),
            lambda c: ms.failover(c, 40, RUNNING),
        ),
        MasterScenario(
            "failover-40k",
            "40k agents x 10 tasks re-register to a restarted master",
            "about 19 s (Mesos 1.5 release blog)",
            "seconds",
            "<=",
            8.0,
            "s",
            lambda c: ms.failover(c, 40000, RUNNING),
            lambda c: ms.failover(c, 80, RUNNING),
        ),
        MasterScenario(
            "state-20k",
            "/state with 20k agents, 200k running + 200k completed tasks",
            "3.0-3.2 s (GetState, commit c23bb29a)",
            "seconds",
            "<=",
            1.5,
            "s",
            lambda c: ms.state(c, 20000, WITH_COMPLETED),
            lambda c: ms.state(c, 30, WITH_COMPLETED),
        ),
        MasterScenario(
            "state-poll",
            "20 clients poll /state (100 agents, 10k running + 10k completed)",
            "about 0.95 s (Mesos 1.7 blog, MasterActorResponsiveness)",
            "seconds",
            "<=",
            0.4,
            "s",
            lambda c: ms.state_poll(c, 100, POLLED, 20, 5),
            lambda c: ms.state_poll(c, 4, POLLED, 3, 2),
            also=("health_p99_ms", "<=", 50.0, "ms"),
        ),
        MasterScenario(
            "reconcile-100k",
            "explicit reconciliation of 100k tasks",
            None,
            "seconds",
            "<=",
            1.0,
            "s",
            lambda c: ms.reconcile(c, 100000),
            lambda c: ms.reconcile(c, 400, per_call=150),
        ),
        MasterScenario(
            "offers-10k",
            "offer -> ACCEPT -> TASK_RUNNING, 10k simulated agents, 100 frameworks",
            None,
            "tasks_per_s",
            ">=",
            20000.0,
            "tasks/s",
            lambda c: ms.offers(c, 10000, 100, 100000, 600.0),
            lambda c: ms.offers(c, 40, 4, 200, 120.0),
        ),
        MasterScenario(
            "launch-true",
            "real `true` tasks through 2 real agents, launch to TASK_FINISHED",
            "about 33/s (1,000 containers in about 30 s, Mesos' 2018 containerizer post)",
            "tasks_per_s",
            ">=",
            300.0,
            "tasks/s",
            lambda c: ms.launch(c, 1000),
            lambda c: ms.launch(c, 10, timeout=180.0),
        ),
    )
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the master benchmark's own arguments (``--quick``, ``--scenarios``, ``--json`` and
    ``--plot`` are the allocator bench's)."""
    parser.add_argument(
        "--master",
        action="store_true",
        help=f"run the master scenarios ({','.join(MASTER_SCENARIOS)}) instead",
    )
    parser.add_argument(
        "--master-flags",
        default="",
        help="with --master: extra flags for every master, e.g. '--allocator pybind/drf'",
    )


def _met(value: float | None, op: str, limit: float) -> bool | None:
    if value is None or value != value:  # None or NaN
        return None
    return value <= limit if op == "<=" else value >= limit


def targets_of(results: list[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    """Every scenario's target(s) with the measured value; none is met in a --quick run."""
    out = []
    for row in results:
        scenario = MASTER_SCENARIOS[row["scenario"]]
        checks = [(scenario.measure, scenario.op, scenario.limit, scenario.unit)]
        if scenario.also:
            checks.append(scenario.also)
        for measure, op, limit, unit in checks:
            value = row.get(measure)
            out.append(
                {
                    "target": f"{scenario.name}: {measure}",
                    "value": value,
                    "limit": f"{op} {limit:g} {unit}",
                    "met": None if quick or "error" in row else _met(value, op, limit),
                }
            )
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


def _table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="master scenarios")
    for column in (
        "scenario",
        "ours",
        "Mesos",
        "target",
        "master CPU s",
        "master RSS MB",
        "details",
    ):
        table.add_column(column)
    for row in results:
        scenario = MASTER_SCENARIOS[row["scenario"]]
        if "error" in row:
            table.add_row(
                scenario.name, f"[red]{row['error']}[/red]", scenario.mesos or "-", "", "", "", ""
            )
            continue
        ours = f"{_fmt(row.get(scenario.measure))} {scenario.unit}"
        details = {
            k: v
            for k, v in row.items()
            if k
            not in (
                "scenario",
                scenario.measure,
                "master_cpu_s",
                "rss_mb",
                "peak_rss_mb",
                "states",
                "load_average",
                "wall_s",
            )
        }
        table.add_row(
            scenario.name,
            ours,
            scenario.mesos or "(none published)",
            f"{scenario.op} {scenario.limit:g} {scenario.unit}",
            _fmt(row.get("master_cpu_s")),
            _fmt(row.get("peak_rss_mb")),
            ", ".join(f"{k}={_fmt(v)}" for k, v in details.items()),
        )
    return table


def plot(results: list[dict[str, Any]], path: str) -> None:
    """Each scenario's figure as a share of its target (1.0 = exactly on target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, ratios = [], []
    for row in results:
        scenario = MASTER_SCENARIOS[row["scenario"]]
        value = row.get(scenario.measure)
        if "error" in row or not value:
            continue
        names.append(scenario.name)
        # Drawn so that below 1 is always better than the target.
        ratios.append(value / scenario.limit if scenario.op == "<=" else scenario.limit / value)
    figure, axes = plt.subplots(figsize=(9, 5))
    axes.bar(names, ratios, color=["tab:green" if r <= 1 else "tab:red" for r in ratios])
    axes.axhline(1.0, color="black", linewidth=1)
    axes.set_yscale("log")
    axes.set_ylabel("measured / target (below 1: target met)")
    axes.set_title("pymesos-modules bench --master")
    axes.tick_params(axis="x", labelrotation=20)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(args: argparse.Namespace, machine: dict[str, Any]) -> int:
    """Run the chosen master scenarios one after another and report."""
    console = Console() if Console().is_terminal else Console(width=170)
    chosen = args.scenarios or list(MASTER_SCENARIOS)
    unknown = [s for s in chosen if s not in MASTER_SCENARIOS]
    if unknown:
        console.print(
            f"error: unknown master scenario(s) {unknown}; known: {', '.join(MASTER_SCENARIOS)}"
        )
        return 2
    flags = args.master_flags.split()
    results: list[dict[str, Any]] = []
    for name in chosen:
        scenario = MASTER_SCENARIOS[name]
        body = scenario.quick if args.quick else scenario.full
        console.print(f"running {name} ({'quick' if args.quick else 'full'}) ...")
        started = time.perf_counter()
        try:
            row = {"scenario": name, **ms.run_scenario(body, flags)}
        except Exception as exc:  # one failing scenario must not lose the others
            logger.exception("master scenario %s failed", name)
            row = {"scenario": name, "error": f"{type(exc).__name__}: {exc}"}
        row["wall_s"] = time.perf_counter() - started
        row["load_average"] = list(os.getloadavg())
        results.append(row)
    targets = targets_of(results, args.quick)
    console.print(_table(results))
    target_table = Table(title="master targets (issue 14), measured on this machine")
    for column in ("target", "measured", "limit", "met"):
        target_table.add_column(column)
    for t in targets:
        met = {None: "-", True: "[green]yes[/green]", False: "[red]no[/red]"}[t["met"]]
        target_table.add_row(t["target"], _fmt(t["value"]), t["limit"], met)
    console.print(target_table)
    document = {
        "machine": {**machine, "load_average": list(os.getloadavg())},
        "quick": args.quick,
        "master_flags": flags,
        "mesos": {n: MASTER_SCENARIOS[n].mesos for n in chosen},
        "results": results,
        "targets": targets,
    }
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(document, indent=2))
        console.print(f"results written to {args.json_path}")
    if args.plot:
        plot(results, args.plot)
        console.print(f"plot written to {args.plot}")
    # As for the allocator grid: a failed scenario fails the run.
    failed = [r["scenario"] for r in results if "error" in r]
    if failed:
        console.print(f"[red]{len(failed)} of {len(results)} scenarios failed: {failed}[/red]")
        return 1
    return 0
