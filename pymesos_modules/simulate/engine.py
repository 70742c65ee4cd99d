"""The simulator: a virtual clock driving the real master with in-process frameworks.

Nothing here reimplements the master: agents are
:class:`~pymesos_modules.master.simulated.SimulatedAgent` backends, frameworks
are :class:`~pymesos_modules.master.simulated.InProcessFramework` subscribers
making ordinary v1 scheduler calls (ACCEPT with LAUNCH, DECLINE, SUPPRESS,
REVIVE, ACKNOWLEDGE), and every allocation cycle is ``Master.allocate_now()``
with the master's clock bound to the virtual clock.  Time only moves when the
next event is due, so an hour of cluster time costs what its events cost.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymesos_modules import metrics
from pymesos_modules.master.master import Master, MasterFlags
from pymesos_modules.master.resources import Resources
from pymesos_modules.master.simulated import DURATION_LABEL, InProcessFramework, SimulatedAgent
from pymesos_modules.simulate.workload import TaskSpec

logger = logging.getLogger(__name__)

#: refuse_seconds a simulated framework sends with declines and partly used offers.
REFUSE_SECONDS = 1.0
#: how far down its queue a framework looks for a task that fits an offer.
LOOKAHEAD = 64


class Timer:
    """A scheduled callback; ``cancel()`` stops it from running."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback."""
        self.cancelled = True


class VirtualClock:
    """Seconds that pass only when the next scheduled event runs."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` at virtual time ``when`` (events at one time run in order)."""
        timer = Timer(callback)
        heapq.heappush(self._heap, (max(when, self.now), next(self._seq), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` ``delay`` virtual seconds from now."""
        return self.call_at(self.now + delay, callback)

    def step(self) -> bool:
        """Run the next event; False when none is left."""
        while self._heap:
            when, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self.now = when
            timer.callback()
            return True
        return False


@dataclass
class Sample:
    """The cluster at one allocation cycle."""

    time: float
    cpus: float  # fraction of the cluster's cpus in use
    mem: float
    shares: dict[str, float]  # role -> dominant share
    jain: float | None


@dataclass
class SimulationResult:
    """What one allocator did with one workload."""

    allocator: str
    agents: int
    frameworks: int
    roles: list[str]
    tasks: int
    finished: int = 0
    makespan: float = 0.0
    waits: list[float] = field(default_factory=list)
    cycle_ms: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON summary (schema in docs/simulate.md)."""
        waits = sorted(self.waits)
        cycles = sorted(self.cycle_ms)
        jains = [s.jain for s in self.samples if s.jain is not None]
        return {
            "allocator": self.allocator,
            "agents": self.agents,
            "frameworks": self.frameworks,
            "roles": len(self.roles),
            "tasks": self.tasks,
            "finished": self.finished,
            "makespan_s": self.makespan,
            "utilization": {
                "cpus_mean": _mean([s.cpus for s in self.samples]),
                "mem_mean": _mean([s.mem for s in self.samples]),
            },
            "dominant_share_mean": {
                role: _mean([s.shares.get(role, 0.0) for s in self.samples]) for role in self.roles
            },
            "jain_fairness_mean": _mean(jains),
            "wait_s": {q: _pct(waits, p) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))}
            | {"max": waits[-1] if waits else 0.0},
            "cycle_ms": {
                "median": _pct(cycles, 50),
                "p95": _pct(cycles, 95),
                "max": cycles[-1] if cycles else 0.0,
                "count": len(cycles),
            },
            "wall_s": self.wall_s,
        }


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _pct(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def jain_index(values: Sequence[float]) -> float | None:
    """Jain's fairness index (sum x)^2 / (n * sum x^2); None when all are zero."""
    squares = sum(v * v for v in values)
    if not values or squares == 0:
        return None
    return sum(values) ** 2 / (len(values) * squares)


def _scalar(resources: list[dict[str, Any]], name: str) -> float:
    return sum(r["scalar"]["value"] for r in resources if r.get("name") == name and "scalar" in r)


class SimulatedFramework:
    """A framework with a FIFO queue of submitted tasks, packing them into offers."""

    def __init__(self, sim: Simulation, name: str, role: str) -> None:
        self.sim = sim
        self.role = role
        self.pending: deque[int] = deque()
        self.suppressed = False
        self.client = InProcessFramework(sim.master, {"name": name, "user": "sim", "roles": [role]})
        self.client.on_event = self.on_event
        self.client.subscribe()
        self.client.events = _Discard()  # keep no event history: 100k tasks would pile up

    def submit(self, index: int) -> None:
        """A task arrives: queue it, and ask for offers again if suppressed."""
        self.pending.append(index)
        if self.suppressed:
            self.suppressed = False
            self.client.call({"type": "REVIVE", "revive": {"roles": [self.role]}})

    def on_event(self, event: dict[str, Any]) -> None:
        """React to OFFERS and UPDATE events as a scheduler would."""
        kind = event.get("type")
        if kind == "OFFERS":
            for offer in event["offers"]["offers"]:
                self._use(offer)
            if not self.pending and not self.suppressed:
                self.suppressed = True
                self.client.call({"type": "SUPPRESS", "suppress": {"roles": [self.role]}})
        elif kind == "UPDATE":
            status = event["update"]["status"]
            index = int(status["task_id"]["value"][1:])
            self.sim.task_state(index, status["state"])
            if "uuid" in status:
                self.client.call(
                    {
                        "type": "ACKNOWLEDGE",
                        "acknowledge": {
                            "agent_id": status["agent_id"],
                            "task_id": status["task_id"],
                            "uuid": status["uuid"],
                        },
                    }
                )

    def _use(self, offer: dict[str, Any]) -> None:
        cpus = _scalar(offer["resources"], "cpus")
        mem = _scalar(offer["resources"], "mem")
        tasks = self.sim.tasks
        launch: list[dict[str, Any]] = []
        kept: list[int] = []
        looked = 0
        while self.pending and looked < LOOKAHEAD:
            index = self.pending.popleft()
            task = tasks[index]
            looked += 1
            if task.cpus <= cpus + 1e-9 and task.mem <= mem + 1e-9:
                cpus -= task.cpus
                mem -= task.mem
                launch.append(self.sim.task_info(index, offer["agent_id"]))
            else:
                kept.append(index)
        self.pending.extendleft(reversed(kept))
        offer_ids = [offer["id"]]
        filters = {"refuse_seconds": REFUSE_SECONDS}
        if not launch:
            self.client.call(
                {"type": "DECLINE", "decline": {"offer_ids": offer_ids, "filters": filters}}
            )
            return
        self.client.call(
            {
                "type": "ACCEPT",
                "accept": {
                    "offer_ids": offer_ids,
                    "operations": [{"type": "LAUNCH", "launch": {"task_infos": launch}}],
                    "filters": filters,
                },
            }
        )


class _Discard(list):
    """A list that keeps nothing (InProcessFramework's event history, switched off)."""

    def append(self, item: Any) -> None:
        """Drop the item."""


class Simulation:
    """One workload on one allocator (see module docstring)."""

    def __init__(
        self,
        allocator: Any,
        allocator_name: str,
        tasks: list[TaskSpec],
        agents: int,
        agent_cpus: float,
        agent_mem: float,
        allocation_interval: float = 1.0,
        seed: int = 1,
        max_time: float | None = None,
    ) -> None:
        self.clock = VirtualClock()
        self.master = Master(
            allocator,
            MasterFlags(
                allocation_interval=allocation_interval,
                resource_names=("cpus", "mem"),
                random_seed=seed,
            ),
            clock=self.clock,
            registry=metrics.MetricsRegistry(),
        )
        self.tasks = tasks
        self.interval = allocation_interval
        self.max_time = max_time
        self.total = (agents * agent_cpus, agents * agent_mem)
        self.start_time: list[float | None] = [None] * len(tasks)
        self.used_by_role: dict[str, list[float]] = {}
        self.outstanding_by_role: dict[str, int] = {}
        roles: dict[str, str] = {}
        for task in tasks:
            roles.setdefault(task.framework, task.role)
        self.result = SimulationResult(
            allocator_name, agents, len(roles), sorted(set(roles.values())), len(tasks)
        )
        for role in self.result.roles:
            self.used_by_role[role] = [0.0, 0.0]
            self.outstanding_by_role[role] = 0
        for i in range(agents):
            backend = SimulatedAgent(self.master, call_later=self.clock.call_later)
            backend.agent_id = self.master.register_agent(
                backend,
                f"agent{i:05d}",
                Resources({"cpus": agent_cpus, "mem": agent_mem}),
                agent_id=f"S{i}",
            )
        self.frameworks = {
            name: SimulatedFramework(self, name, role) for name, role in sorted(roles.items())
        }
        self._done = 0

    def task_info(self, index: int, agent_id: dict[str, str]) -> dict[str, Any]:
        """The TaskInfo a framework launches for task ``index``."""
        task = self.tasks[index]
        return {
            "name": f"task {index}",
            "task_id": {"value": f"t{index}"},
            "agent_id": agent_id,
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": task.cpus}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": task.mem}},
            ],
            "labels": {"labels": [{"key": DURATION_LABEL, "value": repr(task.duration)}]},
        }

    def task_state(self, index: int, state: str) -> None:
        """Book a task's status update."""
        task = self.tasks[index]
        used = self.used_by_role[task.role]
        if state == "TASK_RUNNING" and self.start_time[index] is None:
            self.start_time[index] = self.clock.now
            self.result.waits.append(self.clock.now - task.submit_time)
            used[0] += task.cpus
            used[1] += task.mem
        elif state in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR"):
            if self.start_time[index] is not None:
                used[0] -= task.cpus
                used[1] -= task.mem
            self.outstanding_by_role[task.role] -= 1
            self._done += 1
            if state == "TASK_FINISHED":
                self.result.finished += 1
                self.result.makespan = self.clock.now - self.tasks[0].submit_time

    def _arrive(self, index: int) -> None:
        task = self.tasks[index]
        self.outstanding_by_role[task.role] += 1
        self.frameworks[task.framework].submit(index)

    def _cycle(self) -> None:
        self.master.allocate_now()
        self.result.cycle_ms.append(self.master.last_allocation_ms)
        self._sample()
        finished = self._done >= len(self.tasks)
        late = self.max_time is not None and self.clock.now >= self.max_time
        if not finished and not late:
            self.clock.call_later(self.interval, self._cycle)

    def _sample(self) -> None:
        cpus_total, mem_total = self.total
        shares = {
            role: max(used[0] / cpus_total, used[1] / mem_total)
            for role, used in self.used_by_role.items()
        }
        busy = sum(u[0] for u in self.used_by_role.values())
        memory = sum(u[1] for u in self.used_by_role.values())
        # fairness among the roles that want something right now
        active = [shares[r] for r, n in self.outstanding_by_role.items() if n > 0]
        self.result.samples.append(
            Sample(
                self.clock.now, busy / cpus_total, memory / mem_total, shares, jain_index(active)
            )
        )

    def run(self, progress: Callable[[float], None] | None = None) -> SimulationResult:
        """Run to the last task's end (or ``max_time``); ``progress(fraction)`` now and then."""
        started = time.perf_counter()
        for index, task in enumerate(self.tasks):
            self.clock.call_at(task.submit_time, lambda i=index: self._arrive(i))
        self.clock.call_at(0.0, self._cycle)
        steps = 0
        while self.clock.step():
            steps += 1
            if progress is not None and steps % 5000 == 0:
                progress(self._done / max(len(self.tasks), 1))
        self.result.wall_s = time.perf_counter() - started
        return self.result
