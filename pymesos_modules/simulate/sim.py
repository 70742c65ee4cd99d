"""Discrete-event cluster simulation through the real master code path.

A virtual clock drives everything: the master's allocation cycles, simulated
agents (tasks finish after their duration), and in-process frameworks that
queue tasks from a workload, pack them first-fit into the offers they get,
decline what they cannot use, and suppress when idle.  No sockets, no
sleeping: a simulated hour takes as long as its allocation cycles do.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import logging
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymesos_modules.master.master import Master, MasterFlags
from pymesos_modules.master.resources import Resources
from pymesos_modules.master.simulated import DURATION_LABEL, InProcessFramework, SimulatedAgent

logger = logging.getLogger(__name__)


class VirtualClock:
    """Time that moves only when the next event is taken."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` ``delay`` virtual seconds from now."""
        heapq.heappush(self._queue, (self.now + max(delay, 0.0), next(self._seq), callback))

    def step(self) -> bool:
        """Run the next event; False when there is none."""
        if not self._queue:
            return False
        self.now, _, callback = heapq.heappop(self._queue)
        callback()
        return True


@dataclass(frozen=True)
class TaskSpec:
    """One task of a workload."""

    submit: float
    duration: float
    cpus: float
    mem: float
    framework: int
    role: str


def synthetic_workload(
    tasks: int,
    frameworks: int,
    roles: int,
    agents: int,
    agent_cpus: float,
    seed: int,
    load: float = 0.9,
    mean_duration: float = 60.0,
) -> list[TaskSpec]:
    """Poisson arrivals sized so the cluster runs at about ``load``, seeded."""
    rng = random.Random(seed)
    sizes = [(0.5, 512.0), (1.0, 1024.0), (2.0, 2048.0), (4.0, 4096.0)]
    mean_cpus = statistics.mean(c for c, _ in sizes)
    rate = load * agents * agent_cpus / (mean_cpus * mean_duration)  # tasks per second
    now, out = 0.0, []
    for _ in range(tasks):
        now += rng.expovariate(rate)
        cpus, mem = rng.choice(sizes)
        framework = rng.randrange(frameworks)
        out.append(
            TaskSpec(
                now,
                rng.expovariate(1 / mean_duration),
                cpus,
                mem,
                framework,
                f"role{framework % roles}",
            )
        )
    return out


TRACE_COLUMNS = ("submit_time", "duration", "cpus", "mem", "framework", "role")


def read_trace(path: str | Path) -> list[TaskSpec]:
    """A CSV trace with columns submit_time,duration,cpus,mem,framework,role (see docs)."""
    specs = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(TRACE_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: trace lacks column(s) {sorted(missing)}")
        names: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            try:
                framework = names.setdefault(row["framework"], len(names))
                spec = TaskSpec(
                    float(row["submit_time"]),
                    float(row["duration"]),
                    float(row["cpus"]),
                    float(row["mem"]),
                    framework,
                    row["role"],
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
            if min(spec.submit, spec.duration, spec.cpus, spec.mem) < 0 or not spec.role:
                raise ValueError(f"{path}:{line}: negative value or empty role")
            specs.append(spec)
    return sorted(specs, key=lambda s: s.submit)


@dataclass
class _Pending:
    spec: TaskSpec
    task_id: str


class SimFramework(InProcessFramework):
    """Queues tasks, packs them first-fit into offers, declines the rest, suppresses when idle."""

    def __init__(self, sim: Simulation, index: int, role: str) -> None:
        super().__init__(
            sim.master,
            {"user": "sim", "name": f"sim-{index}", "roles": [role], "failover_timeout": 0},
        )
        self.sim, self.role = sim, role
        self.queue: deque[_Pending] = deque()
        self.suppressed = False
        self.on_event = self._event

    def submit(self, pending: _Pending) -> None:
        """A task arrives."""
        self.queue.append(pending)
        if self.suppressed:
            self.suppressed = False
            self.call({"type": "REVIVE", "revive": {"roles": [self.role]}})

    def _event(self, event: dict[str, Any]) -> None:
        if event["type"] == "OFFERS":
            for offer in event["offers"]["offers"]:
                self._use(offer)
        elif event["type"] == "UPDATE":
            self.sim.on_update(event["update"]["status"])

    def _use(self, offer: dict[str, Any]) -> None:
        free = {"cpus": 0.0, "mem": 0.0}
        for r in offer["resources"]:
            if r["name"] in free:
                free[r["name"]] += r["scalar"]["value"]
        launch = []
        kept: deque[_Pending] = deque()
        while self.queue:
            pending = self.queue.popleft()
            spec = pending.spec
            if spec.cpus <= free["cpus"] + 1e-9 and spec.mem <= free["mem"] + 1e-9:
                free["cpus"] -= spec.cpus
                free["mem"] -= spec.mem
                launch.append(self._task_info(pending, offer))
                self.sim.started(pending)
            else:
                kept.append(pending)
        self.queue = kept
        if launch:
            self.call(
                {
                    "type": "ACCEPT",
                    "accept": {
                        "offer_ids": [offer["id"]],
                        "filters": {"refuse_seconds": 0},
                        "operations": [{"type": "LAUNCH", "launch": {"task_infos": launch}}],
                    },
                }
            )
        else:
            self.call(
                {
                    "type": "DECLINE",
                    "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 1}},
                }
            )
            if not self.queue and not self.suppressed:
                self.suppressed = True
                self.call({"type": "SUPPRESS", "suppress": {"roles": [self.role]}})

    def _task_info(self, pending: _Pending, offer: dict[str, Any]) -> dict[str, Any]:
        spec = pending.spec
        return {
            "name": pending.task_id,
            "task_id": {"value": pending.task_id},
            "agent_id": offer["agent_id"],
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": spec.cpus}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": spec.mem}},
            ],
            "labels": {"labels": [{"key": DURATION_LABEL, "value": repr(spec.duration)}]},
        }


@dataclass
class Sample:
    """The cluster at one allocation cycle."""

    time: float
    utilization: float
    shares: dict[str, float]
    jain: float


@dataclass
class Simulation:
    """One simulated run of a workload against one allocator."""

    allocator: Any
    workload: list[TaskSpec]
    agents: int
    agent_resources: Resources
    allocation_interval: float = 1.0
    seed: int = 0
    clock: VirtualClock = field(default_factory=VirtualClock)

    def __post_init__(self) -> None:
        flags = MasterFlags(allocation_interval=self.allocation_interval, random_seed=self.seed)
        self.master = Master(self.allocator, flags, clock=self.clock)
        for i in range(self.agents):
            agent = SimulatedAgent(self.master, self.clock.call_later)
            agent.agent_id = self.master.register_agent(
                agent, f"sim-agent-{i}", self.agent_resources
            )
        roles = sorted({spec.role for spec in self.workload})
        count = max((s.framework for s in self.workload), default=-1) + 1
        role_of = {s.framework: s.role for s in self.workload}
        self.frameworks = [
            SimFramework(self, i, role_of.get(i, roles[0] if roles else "*")) for i in range(count)
        ]
        for framework in self.frameworks:
            framework.subscribe()
        self.total_cpus = self.agents * self.agent_resources.scalars.get("cpus", 0.0)
        self.total_mem = self.agents * self.agent_resources.scalars.get("mem", 0.0)
        self.submitted: dict[str, float] = {}
        self.specs: dict[str, TaskSpec] = {}
        self.waits: list[float] = []
        self.running: dict[str, TaskSpec] = {}
        self.finished = 0
        self.makespan = 0.0
        self.samples: list[Sample] = []
        self.cycle_ms: list[float] = []
        self.role_use: dict[str, list[float]] = {r: [0.0, 0.0] for r in roles}

    def started(self, pending: _Pending) -> None:
        """A framework launched a task."""
        self.waits.append(self.clock.now - self.submitted[pending.task_id])
        self.running[pending.task_id] = pending.spec
        use = self.role_use[pending.spec.role]
        use[0] += pending.spec.cpus
        use[1] += pending.spec.mem

    def on_update(self, status: dict[str, Any]) -> None:
        """A task status reached its framework."""
        task_id = status["task_id"]["value"]
        if status["state"] in (
            "TASK_FINISHED",
            "TASK_FAILED",
            "TASK_KILLED",
            "TASK_LOST",
            "TASK_ERROR",
            "TASK_DROPPED",
        ):
            spec = self.running.pop(task_id, None)
            if spec is not None:
                use = self.role_use[spec.role]
                use[0] -= spec.cpus
                use[1] -= spec.mem
            self.finished += 1
            self.makespan = self.clock.now
            if status["state"] != "TASK_FINISHED":
                logger.warning(
                    "task %s ended %s: %s", task_id, status["state"], status.get("message", "")
                )

    def _cycle(self) -> None:
        started = time.perf_counter()
        self.master.allocate_now()
        self.cycle_ms.append((time.perf_counter() - started) * 1000)
        used = sum(spec.cpus for spec in self.running.values())
        shares = {
            role: max(
                cpus / self.total_cpus if self.total_cpus else 0.0,
                mem / self.total_mem if self.total_mem else 0.0,
            )
            for role, (cpus, mem) in self.role_use.items()
        }
        values = list(shares.values())
        square = sum(v * v for v in values)
        jain = sum(values) ** 2 / (len(values) * square) if square > 0 else 1.0
        self.samples.append(
            Sample(self.clock.now, used / self.total_cpus if self.total_cpus else 0, shares, jain)
        )
        if self.finished < len(self.workload):
            self.clock.call_later(self.allocation_interval, self._cycle)

    def run(self, max_time: float = math.inf) -> dict[str, Any]:
        """Simulate until every task finished (or ``max_time``); return the report."""
        for n, spec in enumerate(self.workload):
            task_id = f"task-{n}"
            self.specs[task_id] = spec

            def arrive(spec: TaskSpec = spec, task_id: str = task_id) -> None:
                self.submitted[task_id] = self.clock.now
                self.frameworks[spec.framework].submit(_Pending(spec, task_id))

            self.clock.call_later(spec.submit, arrive)
        self.clock.call_later(0.0, self._cycle)
        wall = time.perf_counter()
        while self.clock.now <= max_time and self.clock.step():
            pass
        return self.report(time.perf_counter() - wall)

    def report(self, wall_seconds: float) -> dict[str, Any]:
        """Summary numbers of the run."""

        def pct(values: Iterable[float], q: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0

        return {
            "allocator": getattr(self.allocator, "name", type(self.allocator).__name__),
            "tasks": len(self.workload),
            "finished": self.finished,
            "makespan_s": self.makespan,
            "wall_s": wall_seconds,
            "utilization_mean": statistics.mean(s.utilization for s in self.samples)
            if self.samples
            else 0.0,
            "jain_mean": statistics.mean(s.jain for s in self.samples) if self.samples else 1.0,
            "wait_s": {
                "p50": pct(self.waits, 50),
                "p90": pct(self.waits, 90),
                "p99": pct(self.waits, 99),
            },
            "cycle_ms": {
                "median": statistics.median(self.cycle_ms) if self.cycle_ms else 0.0,
                "p95": pct(self.cycle_ms, 95),
            },
        }
