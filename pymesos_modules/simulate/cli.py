"""``pymesos-modules simulate``: one workload, one or more allocators, on a virtual clock.

Each allocator in ``--allocator a,b`` gets its own master and the same
workload (the synthetic generator is seeded; a CSV trace is read once), so the
side-by-side table compares policies and speed on identical input.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pymesos_modules.allocators import resolve_allocator
from pymesos_modules.bench.cli import machine_info
from pymesos_modules.config import load_flags
from pymesos_modules.manager import ModuleManager
from pymesos_modules.simulate.engine import Simulation, SimulationResult
from pymesos_modules.simulate.workload import SyntheticWorkload, TaskSpec, TraceError, read_trace

logger = logging.getLogger(__name__)


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one allocator name")
    return names


def register(parser: argparse.ArgumentParser) -> None:
    """Add the simulate arguments."""
    parser.add_argument(
        "--allocator",
        type=_names,
        default=["native/drf"],
        help="comma-separated allocators to compare (built-in names or --modules names)",
    )
    parser.add_argument("--modules", help="module config (Mesos format) with more allocators")
    parser.add_argument("--modules_dir", help="folder of module configs")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--agent-cpus", type=float, default=24.0)
    parser.add_argument("--agent-mem", type=float, default=65536.0)
    parser.add_argument("--frameworks", type=int, default=10, help="synthetic workload only")
    parser.add_argument("--roles", type=int, default=5, help="synthetic workload only")
    parser.add_argument("--tasks", type=int, default=10000, help="synthetic workload only")
    parser.add_argument(
        "--mean-duration", type=float, default=30.0, help="synthetic: mean task seconds"
    )
    parser.add_argument(
        "--load", type=float, default=0.8, help="synthetic: offered cpus / cluster cpus"
    )
    parser.add_argument("--trace", help="CSV trace instead of the synthetic workload")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--allocation-interval", type=float, default=1.0)
    parser.add_argument("--max-time", type=float, help="stop after this many virtual seconds")
    parser.add_argument("--json", dest="json_path", help="write the summaries here")
    parser.add_argument("--plot", help="PNG with utilization and dominant shares over time")


def workload(args: argparse.Namespace) -> list[TaskSpec]:
    """The tasks to simulate: the trace, or the seeded synthetic generator."""
    if args.trace:
        return read_trace(args.trace)
    return SyntheticWorkload(
        tasks=args.tasks,
        frameworks=args.frameworks,
        roles=args.roles,
        agents=args.agents,
        agent_cpus=args.agent_cpus,
        mean_duration=args.mean_duration,
        load=args.load,
        seed=args.seed,
    ).generate()


def _table(results: list[SimulationResult]) -> Table:
    table = Table(title="simulation (virtual clock, real master)")
    table.add_column("metric")
    summaries = [r.summary() for r in results]
    for s in summaries:
        table.add_column(s["allocator"], justify="right")
    rows: list[tuple[str, Any]] = [
        ("tasks finished", lambda s: f"{s['finished']}/{s['tasks']}"),
        ("makespan (s)", lambda s: f"{s['makespan_s']:.1f}"),
        ("cpu utilization (mean)", lambda s: f"{s['utilization']['cpus_mean']:.1%}"),
        ("mem utilization (mean)", lambda s: f"{s['utilization']['mem_mean']:.1%}"),
        ("Jain fairness (mean)", lambda s: f"{s['jain_fairness_mean']:.3f}"),
        ("wait p50 (s)", lambda s: f"{s['wait_s']['p50']:.2f}"),
        ("wait p90 (s)", lambda s: f"{s['wait_s']['p90']:.2f}"),
        ("wait p99 (s)", lambda s: f"{s['wait_s']['p99']:.2f}"),
        ("allocate median (ms)", lambda s: f"{s['cycle_ms']['median']:.3f}"),
        ("allocate p95 (ms)", lambda s: f"{s['cycle_ms']['p95']:.3f}"),
        ("cycles", lambda s: str(s["cycle_ms"]["count"])),
        ("wall time (s)", lambda s: f"{s['wall_s']:.1f}"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(s) for s in summaries))
    return table


def plot(results: list[SimulationResult], path: str) -> None:
    """Utilization over time (all allocators) and dominant share per role (one panel each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1 + len(results), 1, figsize=(9, 3 + 2.5 * len(results)), squeeze=False
    )
    top = axes[0][0]
    for r in results:
        times = [s.time for s in r.samples]
        top.plot(times, [s.cpus for s in r.samples], label=f"{r.allocator} cpus")
        top.plot(times, [s.mem for s in r.samples], label=f"{r.allocator} mem", linestyle="--")
    top.set_ylabel("utilization")
    top.set_title("cluster utilization over time")
    top.legend(fontsize=7)
    for panel, r in zip(axes[1:], results, strict=True):
        ax = panel[0]
        times = [s.time for s in r.samples]
        for role in r.roles[:20]:  # a legend of hundreds of roles helps no one
            ax.plot(times, [s.shares.get(role, 0.0) for s in r.samples], label=role, linewidth=0.8)
        ax.set_ylabel("dominant share")
        ax.set_title(f"{r.allocator}: dominant share per role")
        if len(r.roles) <= 10:
            ax.legend(fontsize=6, ncol=5)
    axes[-1][0].set_xlabel("virtual time (s)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    """Simulate the workload once per allocator and report side by side."""
    console = Console() if Console().is_terminal else Console(width=150)
    # one INFO line per simulated agent and framework would drown the report
    logging.getLogger("pymesos_modules.master").setLevel(max(logging.WARNING, logger.level))
    try:
        tasks = workload(args)
    except TraceError as exc:
        console.print(f"error: {exc}")
        return 2
    manager = ModuleManager()
    manager.load(load_flags(args.modules, args.modules_dir))
    results = []
    with Progress(console=console, transient=True) as progress:
        for name in args.allocator:
            bar = progress.add_task(f"simulating with {name}", total=1.0)
            try:
                allocator = resolve_allocator(name, manager)
            except KeyError as exc:
                console.print(f"error: {exc.args[0]}")
                return 2
            simulation = Simulation(
                allocator,
                name,
                tasks,
                args.agents,
                args.agent_cpus,
                args.agent_mem,
                allocation_interval=args.allocation_interval,
                seed=args.seed,
                max_time=args.max_time,
            )
            results.append(simulation.run(lambda f, bar=bar: progress.update(bar, completed=f)))
            allocator.close()
    console.print(_table(results))
    if args.json_path:
        document = {
            "machine": machine_info(),
            "workload": {"trace": args.trace, "tasks": len(tasks), "seed": args.seed},
            "results": [r.summary() for r in results],
        }
        Path(args.json_path).write_text(json.dumps(document, indent=2))
        console.print(f"results written to {args.json_path}")
    if args.plot:
        plot(results, args.plot)
        console.print(f"plot written to {args.plot}")
    return 0
