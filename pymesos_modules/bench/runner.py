"""One benchmark measurement, run in its own process.

The CLI starts ``python -m pymesos_modules.bench.runner '<json request>'`` for
every (allocator, scenario, size) so that each allocator's memory growth is
its own and a slow allocator can be stopped by a timeout without losing the
rest of the run.  The result is one JSON object on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from pymesos_modules.allocators import resolve_allocator
from pymesos_modules.bench.scenarios import SCENARIOS, Cluster, add_agents, options, return_all
from pymesos_modules.config import load_flags
from pymesos_modules.kinds.allocator import FrameworkInfo, materialize
from pymesos_modules.manager import ModuleManager

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What to measure."""

    allocator: str
    scenario: str
    agents: int
    frameworks: int
    roles: int
    seed: int = 1
    cycles: int = 7
    warmup: int = 2
    modules: str | None = None
    modules_dir: str | None = None


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def make_manager(request: Request) -> ModuleManager:
    """A manager with the request's --modules/--modules_dir loaded."""
    manager = ModuleManager()
    manager.load(load_flags(request.modules, request.modules_dir))
    return manager


def state_change_throughput(request: Request, manager: ModuleManager) -> dict[str, float]:
    """add_framework / add_agent / recover calls per second on a fresh allocator."""
    allocator = resolve_allocator(request.allocator, manager)
    cluster = Cluster(
        request.agents, request.frameworks, request.roles, random.Random(request.seed)
    )
    allocator.initialize(options(request.seed))
    for role in range(cluster.roles):
        allocator.add_role(role, "*" if cluster.roles == 1 else f"role{role:04d}")
    started = time.perf_counter()
    for fw in range(cluster.frameworks):
        allocator.add_framework(fw, FrameworkInfo((cluster.role_of(fw),)))
    frameworks_s = time.perf_counter() - started
    started = time.perf_counter()
    add_agents(allocator, cluster)
    agents_s = time.perf_counter() - started
    batch = allocator.allocate(0.0).copy()
    started = time.perf_counter()
    recovered = return_all(allocator, cluster, batch, 0.0)
    recover_s = time.perf_counter() - started
    allocator.close()
    return {
        "add_framework_per_s": cluster.frameworks / max(frameworks_s, 1e-9),
        "add_agent_per_s": cluster.agents / max(agents_s, 1e-9),
        "recover_per_s": recovered / max(recover_s, 1e-9),
    }


def measure(request: Request) -> dict[str, Any]:
    """Set up the scenario, warm up, time cycles; return one result row."""
    scenario = SCENARIOS[request.scenario]
    manager = make_manager(request)
    rss_before = rss_mb()
    allocator = resolve_allocator(request.allocator, manager)
    cluster = Cluster(
        request.agents, request.frameworks, request.roles, random.Random(request.seed)
    )
    allocator.initialize(options(request.seed))
    started = time.perf_counter()
    scenario.setup(allocator, cluster)
    setup_s = time.perf_counter() - started
    for _ in range(request.warmup):
        batch = allocator.allocate(cluster.now)
        scenario.between(allocator, cluster, batch)
        cluster.now += 1.0
    cycle_ms, materialize_ms, offers = [], [], []
    for _ in range(request.cycles):
        started = time.perf_counter()
        batch = allocator.allocate(cluster.now)
        cycle_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        views = materialize(batch)
        materialize_ms.append((time.perf_counter() - started) * 1000)
        offers.append(len(views))
        scenario.between(allocator, cluster, batch)
        cluster.now += 1.0
    rss_after = rss_mb()
    allocator.close()
    result: dict[str, Any] = {
        "scenario": request.scenario,
        "agents": request.agents,
        "frameworks": request.frameworks,
        "roles": request.roles,
        "allocator": request.allocator,
        "cycle_ms": {
            "min": min(cycle_ms),
            "median": statistics.median(cycle_ms),
            "p95": percentile(cycle_ms, 95),
        },
        "offers_per_cycle": statistics.median(offers),
        "materialize_ms": {"median": statistics.median(materialize_ms)},
        "rss_mb": max(rss_after - rss_before, 0.0),
        "setup_s": setup_s,
    }
    if request.scenario == "steady":
        result["state_changes"] = state_change_throughput(request, manager)
    return result


def main(argv: list[str]) -> int:
    """Measure the request given as JSON in argv[0]; print the result as JSON."""
    logging.basicConfig(level=logging.WARNING)
    request = Request(**json.loads(argv[0]))
    print(json.dumps(measure(request)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
