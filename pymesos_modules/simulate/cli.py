"""``pymesos-modules simulate``: compare allocators on one workload, side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pymesos_modules.allocators import resolve_allocator
from pymesos_modules.config import load_flags
from pymesos_modules.errors import ModuleError
from pymesos_modules.manager import ModuleManager
from pymesos_modules.master.resources import parse_resources
from pymesos_modules.simulate.sim import Simulation, read_trace, synthetic_workload


def register(parser: argparse.ArgumentParser) -> None:
    """Add the simulate arguments."""
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--frameworks", type=int, default=10)
    parser.add_argument("--roles", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=5000, help="synthetic tasks to run")
    parser.add_argument(
        "--trace", help="CSV trace instead of a synthetic workload (docs/simulate.md)"
    )
    parser.add_argument("--load", type=float, default=0.9, help="synthetic offered load (0-1+)")
    parser.add_argument("--agent_resources", default="cpus:8;mem:16384")
    parser.add_argument(
        "--allocator",
        default="native/drf",
        help="comma-separated allocators to compare on the same workload",
    )
    parser.add_argument("--allocation_interval", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modules", help="module config with more allocators")
    parser.add_argument("--modules_dir")
    parser.add_argument("--json", dest="json_path", help="write the summary here")
    parser.add_argument("--plot", help="PNG prefix: <prefix>-utilization.png, <prefix>-shares.png")


def run(args: argparse.Namespace) -> int:
    """Simulate each allocator on the same workload and report side by side."""
    console = Console() if Console().is_terminal else Console(width=150)
    # Bad input (trace, resources, allocator names, module config) is reported
    # before the first, possibly long, run starts, without a traceback.
    try:
        resources = parse_resources(args.agent_resources)
        if args.trace:
            workload = read_trace(args.trace)
        else:
            workload = synthetic_workload(
                args.tasks,
                args.frameworks,
                args.roles,
                args.agents,
                resources.scalars.get("cpus", 1.0),
                args.seed,
                args.load,
            )
        manager = ModuleManager()
        manager.load(load_flags(args.modules, args.modules_dir))
        names = [n for n in args.allocator.split(",") if n]
        allocators = [(name, resolve_allocator(name, manager)) for name in names]
    except KeyError as exc:
        console.print(f"error: {exc.args[0]}")
        return 2
    except (OSError, ValueError, ModuleError) as exc:
        console.print(f"error: {exc}")
        return 2
    reports: list[dict[str, Any]] = []
    runs: dict[str, Simulation] = {}
    for name, allocator in allocators:
        sim = Simulation(
            allocator, workload, args.agents, resources, args.allocation_interval, args.seed
        )
        with console.status(f"simulating {name} ({len(workload)} tasks)"):
            report = sim.run()
        report["allocator"] = name
        reports.append(report)
        runs[name] = sim
        allocator.close()
    table = Table(title=f"simulation: {args.agents} agents, {len(workload)} tasks")
    for column in (
        "allocator",
        "finished",
        "makespan s",
        "utilization",
        "Jain",
        "wait p50 s",
        "wait p90 s",
        "wait p99 s",
        "cycle ms",
        "wall s",
    ):
        table.add_column(column)
    for r in reports:
        table.add_row(
            r["allocator"],
            str(r["finished"]),
            f"{r['makespan_s']:.0f}",
            f"{r['utilization_mean']:.2f}",
            f"{r['jain_mean']:.3f}",
            f"{r['wait_s']['p50']:.1f}",
            f"{r['wait_s']['p90']:.1f}",
            f"{r['wait_s']['p99']:.1f}",
            f"{r['cycle_ms']['median']:.2f}",
            f"{r['wall_s']:.1f}",
        )
    console.print(table)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"runs": reports}, indent=2))
    if args.plot:
        plot(runs, args.plot)
    return 0 if all(r["finished"] == r["tasks"] for r in reports) else 1


def plot(runs: dict[str, Simulation], prefix: str) -> None:
    """Utilization over time (one line per allocator) and dominant share per role over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4))
    for name, sim in runs.items():
        axes.plot([s.time for s in sim.samples], [s.utilization for s in sim.samples], label=name)
    axes.set_xlabel("virtual time (s)")
    axes.set_ylabel("cpu utilization")
    axes.legend()
    figure.tight_layout()
    figure.savefig(f"{prefix}-utilization.png", dpi=110)
    plt.close(figure)
    figure, grid = plt.subplots(len(runs), 1, figsize=(9, 3 * len(runs)), squeeze=False)
    for axes, (name, sim) in zip(grid[:, 0], runs.items(), strict=True):
        roles = sorted(sim.role_use)
        for role in roles:
            axes.plot(
                [s.time for s in sim.samples], [s.shares[role] for s in sim.samples], label=role
            )
        axes.set_title(f"{name}: dominant share per role")
        axes.set_xlabel("virtual time (s)")
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(f"{prefix}-shares.png", dpi=110)
    plt.close(figure)
