"""``pymesos-modules bench``: time allocators side by side on the same clusters.

Every (allocator, scenario, size) runs in its own process (see ``runner``),
so memory growth is per allocator and a slow one times out alone; all
measurements of one invocation are reported together, and ratios are only
computed between allocators measured in the same run.  ``--check`` first
runs every allocator on the same seed and refuses to report a speedup for an
allocator whose offers differ from the others of its policy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pymesos_modules import paths
from pymesos_modules.bench import master_cli
from pymesos_modules.bench.runner import Request, make_manager
from pymesos_modules.bench.scenarios import SCENARIOS, Cluster, options

logger = logging.getLogger(__name__)

DEFAULT_ALLOCATORS = ("python/drf", "native/drf", "pybind/drf")
BASELINE = "python/drf"
#: About a minute on 2 cores: the Python twin's declined set-up (one decline round per
#: framework, each a full cycle) is what limits it; --full has the Mesos-sized shapes.
DEFAULT_GRID = {"agents": [500, 2000], "frameworks": [20], "roles": [1]}
#: Seconds, not minutes: every scenario and allocator once on a small cluster
#: (what CI runs to prove an install works end to end).
QUICK_GRID = {"agents": [100], "frameworks": [10], "roles": [1]}
FULL_GRID = {"agents": [1000, 10000, 50000], "frameworks": [100, 1000, 6000], "roles": [1, 100]}

#: (description, check) pairs evaluated on the results of one run.
TARGETS_DOC = "targets from the project's benchmark issue, measured on this machine"


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [v for v in text.split(",") if v]


def register(parser: argparse.ArgumentParser) -> None:
    """Add the bench arguments."""
    parser.add_argument("--agents", type=_ints, help="e.g. 1000,10000 (default 500,2000)")
    parser.add_argument("--frameworks", type=_ints, help="e.g. 100,1000 (default 20)")
    parser.add_argument("--roles", type=_ints, help="e.g. 1,100 (default 1)")
    parser.add_argument(
        "--scenarios",
        type=_names,
        help=f"subset of {','.join(SCENARIOS)} (with --master: of the master scenarios)",
    )
    parser.add_argument(
        "--allocators",
        type=_names,
        default=list(DEFAULT_ALLOCATORS),
        help="allocators to time (built-in names or --modules module names)",
    )
    parser.add_argument(
        "--allocator", action="append", default=[], help="one more allocator to time (repeatable)"
    )
    parser.add_argument("--modules", help="module config (Mesos format) with more allocators")
    parser.add_argument("--modules_dir", help="folder of module configs")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="the big grid (takes long)")
    size.add_argument(
        "--quick",
        action="store_true",
        help="100 agents x 10 frameworks: a smoke test in seconds "
        "(with --master: every master scenario at a size a test affords; not a figure)",
    )
    parser.add_argument("--cycles", type=int, default=7, help="timed cycles per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed cycles first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds one measurement may take before it is abandoned",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="first verify allocators of one policy make identical offers",
    )
    parser.add_argument("--json", dest="json_path", help="write results as JSON here")
    parser.add_argument("--plot", help="write a log-log plot of cycle time vs agents (PNG)")
    master_cli.register(parser)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            models = [
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            ]
        info["cpu_model"] = models[0] if models else None
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def policy_of(allocator: Any, name: str) -> str:
    """The policy an allocator claims (allocators of one policy must agree)."""
    return getattr(allocator, "policy", None) or name


def check_agreement(
    allocators: list[str], scenarios: list[str], args: argparse.Namespace, cycles: int = 4
) -> dict[str, Any]:
    """Run every allocator on the same small cluster; report who disagrees with its policy.

    Returns {"size": ..., "policies": {allocator: policy}, "disagree": {allocator: reason}}.
    """
    import random

    from pymesos_modules.allocators import resolve_allocator

    request = Request("", "", 200, 20, 2, args.seed, modules=args.modules,
                      modules_dir=args.modules_dir)  # fmt: skip
    manager = make_manager(request)
    policies: dict[str, str] = {}
    disagree: dict[str, str] = {}
    for scenario_name in scenarios:
        scenario = SCENARIOS[scenario_name]
        runs: dict[str, list] = {}
        for name in allocators:
            allocator = resolve_allocator(name, manager)
            policies[name] = policy_of(allocator, name)
            cluster = Cluster(request.agents, request.frameworks, request.roles,
                              random.Random(args.seed))  # fmt: skip
            allocator.initialize(options(args.seed))
            scenario.setup(allocator, cluster)
            batches = []
            for _ in range(cycles):
                batch = allocator.allocate(cluster.now)
                batches.append(batch.copy())
                scenario.between(allocator, cluster, batch)
                cluster.now += 1.0
            runs[name] = batches
            allocator.close()
        for policy in set(policies.values()):
            members = [n for n in allocators if policies[n] == policy]
            reference = members[0]
            for name in members[1:]:
                for cycle, (ours, theirs) in enumerate(
                    zip(runs[name], runs[reference], strict=True)
                ):
                    if not ours.same_offers(theirs):
                        disagree.setdefault(
                            name,
                            f"{scenario_name}: cycle {cycle} differs from {reference} "
                            f"({len(ours)} vs {len(theirs)} offers)",
                        )
                        break
    return {"size": {"agents": 200, "frameworks": 20, "roles": 2}, "policies": policies,
            "disagree": disagree}  # fmt: skip


def _measure_in_child(command: list[str], base: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The JSON row a measuring child prints; a timeout or crash becomes ``base`` plus an error."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**base, "error": f"exit status {done.returncode}: {last}"}
    return json.loads(done.stdout)


def run_one(request: Request, timeout: float) -> dict[str, Any]:
    """Measure in a child process; a timeout or crash becomes an error row."""
    command = paths.module_command("pymesos_modules.bench.runner", json.dumps(asdict(request)))
    base = {
        k: getattr(request, k) for k in ("scenario", "agents", "frameworks", "roles", "allocator")
    }
    return _measure_in_child(command, base, timeout)


def run_interleaved(
    agents: int, frameworks: int, cycles: int, warmup: int, timeout: float
) -> dict[str, Any]:
    """The cffi and pybind11 paths in one child, cycles interleaved (see bench.native_paths)."""
    command = paths.module_command(
        "pymesos_modules.bench.native_paths", "--agents", str(agents),
        "--frameworks", str(frameworks), "--cycles", str(cycles), "--warmup", str(warmup),
    )  # fmt: skip
    base = {"agents": agents, "frameworks": frameworks}
    return _measure_in_child(command, base, timeout)


def compute_ratios(results: list[dict[str, Any]], disagree: dict[str, str]) -> list[dict[str, Any]]:
    """Speedups against the Python twin, and cffi against pybind11, within this run only."""
    ratios = []
    index = {
        (r["scenario"], r["agents"], r["frameworks"], r["roles"], r["allocator"]): r
        for r in results
        if "error" not in r
    }
    for (scenario, agents, frameworks, roles, allocator), row in index.items():
        pairs = [(BASELINE, allocator)]
        if allocator == "native/drf":
            pairs.append(("pybind/drf", allocator))
        for baseline, name in pairs:
            if name == baseline or name in disagree or baseline in disagree:
                continue
            base = index.get((scenario, agents, frameworks, roles, baseline))
            if base is None:
                continue
            ratios.append({
                "scenario": scenario, "agents": agents, "frameworks": frameworks, "roles": roles,
                "baseline": baseline, "allocator": name,
                "speedup": base["cycle_ms"]["median"] / max(row["cycle_ms"]["median"], 1e-9),
            })  # fmt: skip
    return ratios


#: The project's performance targets: (description, measure, op, limit, unit).  A
#: measure is ("cycle", scenario, agents, frameworks), ("speedup", scenario,
#: agents, frameworks, baseline), ("cffi_overhead", agents) or ("materialize", agents, frameworks).
TARGETS: list[tuple[str, tuple, str, float, str]] = [
    ("steady 10k x 1k cycle (native, cffi)", ("cycle", "steady", 10000, 1000), "<=", 2.0, "ms"),
    ("steady 50k x 6k cycle (native, cffi)", ("cycle", "steady", 50000, 6000), "<=", 15.0, "ms"),
    ("declined 10k x 1k cycle (native, cffi)", ("cycle", "declined", 10000, 1000), "<=", 10.0,
     "ms"),
    ("speedup over the Python twin, steady 10k x 1k",
     ("speedup", "steady", 10000, 1000, BASELINE), ">=", 15.0, "x"),
    ("speedup over the Python twin, declined 10k x 1k",
     ("speedup", "declined", 10000, 1000, BASELINE), ">=", 50.0, "x"),
    ("cffi time / pybind11 time, steady, 10k agents", ("cffi_overhead", 10000), "<=", 1.10, "x"),
    ("materialize the offers of a 10k x 1k cycle", ("materialize", 10000, 1000), "<=", 10.0,
     "ms"),
]  # fmt: skip


def evaluate_targets(
    results: list[dict[str, Any]],
    ratios: list[dict[str, Any]],
    interleaved: list[dict[str, Any]] | None = None,
) -> list[dict]:
    """Each performance target with its value measured in this run (None: not measured).

    The cffi/pybind11 ratio is taken from the interleaved measurement when there
    is one: separate processes meet a shared machine at different moments.
    """
    native = {
        (r["scenario"], r["agents"], r["frameworks"]): r
        for r in results
        if r["allocator"] == "native/drf" and "error" not in r
    }

    def value(measure: tuple) -> float | None:
        kind, *rest = measure
        if kind == "cycle":
            row = native.get(tuple(rest))
            return None if row is None else row["cycle_ms"]["median"]
        if kind == "materialize":
            row = native.get(("steady", *rest))
            return None if row is None else row["materialize_ms"]["median"]
        if kind == "speedup":
            scenario, agents, frameworks, baseline = rest
            found = [r["speedup"] for r in ratios if r["allocator"] == "native/drf"
                     and (r["scenario"], r["agents"], r["frameworks"], r["baseline"])
                     == (scenario, agents, frameworks, baseline)]  # fmt: skip
            return found[0] if found else None
        paired = [i["cffi_over_pybind_median_of_pairs"] for i in interleaved or ()
                  if i.get("agents") == rest[0] and "error" not in i]  # fmt: skip
        if paired:
            return max(paired)
        overheads = [1.0 / r["speedup"] for r in ratios if r["baseline"] == "pybind/drf"
                     and r["scenario"] == "steady" and r["agents"] == rest[0]]  # fmt: skip
        return max(overheads) if overheads else None

    out = []
    for name, measure, op, limit, unit in TARGETS:
        measured = value(measure)
        met = None if measured is None else (measured <= limit if op == "<=" else measured >= limit)
        out.append({"target": name, "value": measured, "limit": f"{op} {limit} {unit}", "met": met})
    return out


def _table(results: list[dict[str, Any]], ratios: list[dict[str, Any]]) -> Table:
    table = Table(title="allocation cycle (ms)")
    for column in ("scenario", "agents", "frameworks", "roles", "allocator", "min", "median",
                   "p95", "offers", "materialize", "RSS MB", "vs python"):  # fmt: skip
        table.add_column(
            column, justify="right" if column not in ("scenario", "allocator") else "left"
        )
    speed = {(r["scenario"], r["agents"], r["frameworks"], r["roles"], r["allocator"]): r["speedup"]
             for r in ratios if r["baseline"] == BASELINE}  # fmt: skip
    for r in results:
        key = (r["scenario"], r["agents"], r["frameworks"], r["roles"], r["allocator"])
        if "error" in r:
            table.add_row(*map(str, key), "[red]" + r["error"] + "[/red]", "", "", "", "", "", "")
            continue
        c = r["cycle_ms"]
        ratio = speed.get(key)
        table.add_row(
            *map(str, key), f"{c['min']:.2f}", f"{c['median']:.2f}", f"{c['p95']:.2f}",
            f"{r['offers_per_cycle']:.0f}", f"{r['materialize_ms']['median']:.2f}",
            f"{r['rss_mb']:.1f}", "" if ratio is None else f"{ratio:.1f}x",
        )  # fmt: skip
    return table


def plot(results: list[dict[str, Any]], path: str) -> None:
    """Cycle time against agents, log-log, one line per allocator and scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 6))
    lines: dict[tuple, list[tuple[int, float]]] = {}
    for r in results:
        if "error" in r:
            continue
        key = (r["allocator"], r["scenario"], r["frameworks"], r["roles"])
        lines.setdefault(key, []).append((r["agents"], r["cycle_ms"]["median"]))
    for (allocator, scenario, frameworks, roles), points in sorted(lines.items()):
        points.sort()
        label = f"{allocator} {scenario} ({frameworks} fw, {roles} roles)"
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("agents")
    axes.set_ylabel("median allocation cycle (ms)")
    axes.set_title("pymesos-modules bench")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    """Run the grid (or, with --master, the master scenarios) and report."""
    if args.master:
        return master_cli.run(args, machine_info())
    if args.scenarios is None:
        args.scenarios = list(SCENARIOS)
    # Wide enough for the result table when output goes to a file or CI log.
    console = Console() if Console().is_terminal else Console(width=150)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        console.print(f"error: unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
        return 2
    grid = dict(FULL_GRID if args.full else QUICK_GRID if args.quick else DEFAULT_GRID)
    for key in grid:
        if getattr(args, key):
            grid[key] = getattr(args, key)
    allocators = list(dict.fromkeys([*args.allocators, *args.allocator]))

    check: dict[str, Any] = {"run": False, "disagree": {}}
    if args.check:
        check = {"run": True, **check_agreement(allocators, args.scenarios, args)}
        for name, reason in check["disagree"].items():
            console.print(f"[red]{name} disagrees with its policy ({check['policies'][name]}): "
                          f"{reason}; no speedup will be reported for it[/red]")  # fmt: skip

    requests = [
        Request(a, s, agents, frameworks, roles, args.seed, args.cycles, args.warmup,
                args.modules, args.modules_dir)
        for s in args.scenarios for agents in grid["agents"] for frameworks in grid["frameworks"]
        for roles in grid["roles"] for a in allocators
    ]  # fmt: skip
    results = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(requests))
        for request in requests:
            progress.update(task, description=f"{request.allocator} {request.scenario} "
                            f"{request.agents}x{request.frameworks}x{request.roles}")  # fmt: skip
            results.append(run_one(request, args.timeout))
            progress.advance(task)

    ratios = compute_ratios(results, check["disagree"])
    interleaved = []
    if "steady" in args.scenarios and {"native/drf", "pybind/drf"} <= set(allocators):
        # The cffi/pybind11 target again, both paths in one process, cycles alternating.
        for agents in grid["agents"]:
            for frameworks in grid["frameworks"]:
                interleaved.append(run_interleaved(agents, frameworks, args.cycles,
                                                   args.warmup, args.timeout))  # fmt: skip
    targets = evaluate_targets(results, ratios, interleaved)
    console.print(_table(results, ratios))
    target_table = Table(title=TARGETS_DOC)
    for column in ("target", "measured", "limit", "met"):
        target_table.add_column(column)
    for t in targets:
        value = "not measured" if t["value"] is None else f"{t['value']:.2f}"
        met = {None: "-", True: "[green]yes[/green]", False: "[red]no[/red]"}[t["met"]]
        target_table.add_row(t["target"], value, t["limit"], met)
    console.print(target_table)
    for row in interleaved:
        if "error" not in row:
            ratio = row["cffi_over_pybind_median_of_pairs"]
            console.print(f"cffi / pybind11, steady {row['agents']} x {row['frameworks']}, cycles "
                          f"interleaved in one process: {ratio:.3f} "
                          f"(medians {row['median_ms']['native/drf']:.2f} / "
                          f"{row['median_ms']['pybind/drf']:.2f} ms)")  # fmt: skip
    document = {"machine": machine_info(), "results": results, "ratios": ratios,
                "interleaved": interleaved, "targets": targets, "check": check}  # fmt: skip
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(document, indent=2))
        console.print(f"results written to {args.json_path}")
    if args.plot:
        plot(results, args.plot)
        console.print(f"plot written to {args.plot}")
    # A failed measurement fails the run: a table with holes is not a result.
    errors = [r for r in results if "error" in r]
    if errors:
        console.print(f"[red]{len(errors)} of {len(results)} measurements failed[/red]")
        return 1
    return 0


__all__ = ["register", "run", "statistics"]
