"""In-process metrics registry: counters and gauges by name.

Modules publish through the host API (counter_add / gauge_set); the runtimes
publish their own; the master's ``/metrics/snapshot`` and ``/metrics`` read
:meth:`MetricsRegistry.snapshot`.  Thread-safe: native code may call the host
API from any thread.
"""

from __future__ import annotations

import threading


class MetricsRegistry:
    """Counters (monotonic sums) and gauges (last value) keyed by Mesos-style names."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, float] = {}
        self._gauges: dict[str, float] = {}

    def counter_add(self, name: str, delta: float = 1.0) -> None:
        """Add ``delta`` to counter ``name`` (created at zero)."""
        with self._lock:
            self._counters[name] = self._counters.get(name, 0.0) + delta

    def gauge_set(self, name: str, value: float) -> None:
        """Set gauge ``name`` to ``value``."""
        with self._lock:
            self._gauges[name] = value

    def snapshot(self) -> dict[str, float]:
        """Every metric by name, counters and gauges together (as Mesos' snapshot)."""
        with self._lock:
            return {**self._counters, **self._gauges}

    def clear(self) -> None:
        """Forget every metric (tests, and a master that restarts in-process)."""
        with self._lock:
            self._counters.clear()
            self._gauges.clear()


#: The process-wide registry modules publish into unless given another.
REGISTRY = MetricsRegistry()
