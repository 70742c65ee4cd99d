"""Workloads for the simulator: a seeded synthetic generator and a CSV trace reader.

CSV trace format (documented in docs/simulate.md): a header line naming the
columns ``submit_time,duration,cpus,mem,framework,role`` (any order, extra
columns ignored), then one task per line.  Times are seconds on the virtual
clock; ``framework`` is any name (tasks of one name share one framework);
``role`` is the role that framework subscribes in (one role per framework).
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

REQUIRED_COLUMNS = ("submit_time", "duration", "cpus", "mem", "framework", "role")


class TraceError(ValueError):
    """A trace file is malformed; the message names the file, line and column."""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task of a workload."""

    submit_time: float
    duration: float
    cpus: float
    mem: float
    framework: str
    role: str


@dataclass(frozen=True)
class SyntheticWorkload:
    """Parameters of the synthetic generator (all draws come from one seeded RNG).

    Tasks arrive as a Poisson process whose rate is chosen so the offered load is
    ``load`` times the cluster's cpus; each task picks a framework uniformly,
    cpus from ``CPU_CHOICES``, mem from ``MEM_CHOICES`` and an exponential
    duration with mean ``mean_duration`` seconds.  Framework ``i`` is in role
    ``i % roles``.
    """

    tasks: int
    frameworks: int
    roles: int
    agents: int
    agent_cpus: float
    mean_duration: float = 30.0
    load: float = 0.8
    seed: int = 1

    CPU_CHOICES = (0.5, 1.0, 2.0, 4.0)
    MEM_CHOICES = (256.0, 512.0, 1024.0, 2048.0)

    def generate(self) -> list[TaskSpec]:
        """The tasks, sorted by submit time."""
        rng = random.Random(self.seed)
        mean_cpus = sum(self.CPU_CHOICES) / len(self.CPU_CHOICES)
        # Little's law: busy cpus = rate * mean_duration * mean_cpus.
        rate = self.load * self.agents * self.agent_cpus / (self.mean_duration * mean_cpus)
        now = 0.0
        out = []
        for _ in range(self.tasks):
            now += rng.expovariate(rate)
            framework = rng.randrange(self.frameworks)
            out.append(
                TaskSpec(
                    submit_time=now,
                    duration=max(rng.expovariate(1.0 / self.mean_duration), 0.1),
                    cpus=rng.choice(self.CPU_CHOICES),
                    mem=rng.choice(self.MEM_CHOICES),
                    framework=f"fw{framework:04d}",
                    role=f"role{framework % self.roles:03d}",
                )
            )
        return out


def _number(text: str, where: str, column: str, minimum: float) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise TraceError(f"{where}: column '{column}' must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise TraceError(f"{where}: column '{column}' must be finite and >= {minimum}, got {value}")
    return value


def read_trace(path: str | Path) -> list[TaskSpec]:
    """Read a CSV trace (format in the module docstring); TraceError names the bad line."""
    path = Path(path)
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(
                f"{path}: header must name the columns {','.join(REQUIRED_COLUMNS)}; "
                f"missing {','.join(missing)}"
            )
        tasks = []
        for row in reader:
            where = f"{path}:{reader.line_num}"
            framework, role = (row.get("framework") or "").strip(), (row.get("role") or "").strip()
            if not framework or not role:
                raise TraceError(f"{where}: columns 'framework' and 'role' must not be empty")
            tasks.append(
                TaskSpec(
                    _number(row["submit_time"], where, "submit_time", 0.0),
                    _number(row["duration"], where, "duration", 0.0),
                    _number(row["cpus"], where, "cpus", 0.0),
                    _number(row["mem"], where, "mem", 0.0),
                    framework,
                    role,
                )
            )
    if not tasks:
        raise TraceError(f"{path}: the trace has no tasks")
    roles: dict[str, str] = {}
    for task in tasks:
        if roles.setdefault(task.framework, task.role) != task.role:
            raise TraceError(
                f"{path}: framework '{task.framework}' appears in roles "
                f"'{roles[task.framework]}' and '{task.role}'; one role per framework"
            )
    return sorted(tasks, key=lambda t: t.submit_time)
