"""The cffi and pybind11 paths of the DRF engine, measured in one process.

``python -m pymesos_modules.bench.native_paths --agents 10000 --frameworks 1000``
sets up the steady scenario once per path in the same process and then
alternates their cycles (cffi, pybind11, cffi, ...), so both see the same
machine at the same moments: on a shared, loaded machine that is the only
wall-clock ratio worth quoting.  ``--only PATH`` runs one path, for
``valgrind --tool=callgrind --toggle-collect=...``, whose instruction counts
do not depend on the load at all (see docs/bench-results/README.md).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymesos_modules.allocators import resolve_allocator
from pymesos_modules.bench.scenarios import SCENARIOS, Cluster, options
from pymesos_modules.manager import ModuleManager

PATHS = ("native/drf", "pybind/drf")

#: Toggles callgrind's collection (a no-op outside valgrind): the timed calls only.
_TOGGLE_SOURCE = """
#include <valgrind/callgrind.h>
void pmm_callgrind_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
"""


def callgrind_toggle() -> Callable[[], None]:
    """Compile and load the toggle (needs a C compiler and valgrind's headers)."""
    folder = Path(tempfile.mkdtemp(prefix="pmm-callgrind-"))
    source, library = folder / "toggle.c", folder / "libtoggle.so"
    source.write_text(_TOGGLE_SOURCE)
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return ctypes.CDLL(str(library)).pmm_callgrind_toggle


def _setup(name: str, agents: int, frameworks: int, seed: int) -> tuple[Any, Cluster]:
    allocator = resolve_allocator(name, ModuleManager())
    cluster = Cluster(agents, frameworks, 1, random.Random(seed))
    allocator.initialize(options(seed))
    SCENARIOS["steady"].setup(allocator, cluster)
    return allocator, cluster


def compare(
    agents: int,
    frameworks: int,
    cycles: int,
    warmup: int,
    only: str | None,
    seed: int = 1,
    toggle: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Median cycle time of each path, cycles interleaved; with ``only``, one path.

    ``toggle`` (see :func:`callgrind_toggle`) is called just before and just
    after every timed ``allocate()``, so a callgrind run started with
    ``--collect-atstart=no`` counts exactly the calls that are timed.
    """
    names = [only] if only else list(PATHS)
    setups = {name: _setup(name, agents, frameworks, seed) for name in names}
    steady = SCENARIOS["steady"]
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + cycles):
        for name in names:
            allocator, cluster = setups[name]
            timed = index >= warmup and toggle is not None
            if timed:
                toggle()
            started = time.perf_counter()
            batch = allocator.allocate(cluster.now)
            elapsed = time.perf_counter() - started
            if timed:
                toggle()
            if index >= warmup:
                times[name].append(elapsed * 1000)
            steady.between(allocator, cluster, batch)
            cluster.now += 1.0
    result: dict[str, Any] = {
        "agents": agents,
        "frameworks": frameworks,
        "cycles": cycles,
        "median_ms": {n: statistics.median(t) for n, t in times.items()},
        "min_ms": {n: min(t) for n, t in times.items()},
    }
    if not only:
        ratios = [a / b for a, b in zip(times[PATHS[0]], times[PATHS[1]], strict=True)]
        result["cffi_over_pybind_median_of_pairs"] = statistics.median(ratios)
    return result


def main(argv: list[str]) -> int:
    """Print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--frameworks", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", choices=PATHS)
    parser.add_argument(
        "--callgrind", action="store_true", help="collect only the timed calls (under callgrind)"
    )
    args = parser.parse_args(argv)
    toggle = callgrind_toggle() if args.callgrind else None
    print(
        json.dumps(
            compare(
                args.agents, args.frameworks, args.cycles, args.warmup, args.only, toggle=toggle
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
