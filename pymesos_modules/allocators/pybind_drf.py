"""The native DRF engine through its pybind11 binding, behind the Allocator Protocol.

Same engine as the ``org_pymesos_DRFAllocator`` module, called without the C
ABI: the benchmark sets the two side by side to show what the cffi bridge costs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from pymesos_modules import paths

try:
    from pymesos_modules import _drf  # type: ignore[attr-defined]
except ImportError as exc:  # built by setup.py, so absent from an unbuilt tree
    if exc.name not in ("pymesos_modules._drf", "pymesos_modules"):
        raise
    raise paths.not_built("_drf (the pybind11 binding of the DRF engine)") from None
from pymesos_modules.kinds.allocator import (
    ALL_ROLES,
    OFFER_ROW_DTYPE,
    UNRESERVED,
    AgentInfo,
    AllocatorCallError,
    AllocatorOptions,
    FrameworkInfo,
    OfferBatch,
    agent_handles,
)


class PybindDRFAllocator:
    """DRF via pybind11 (the GIL is released around allocate())."""

    policy = "drf"

    def __init__(
        self, parameters: Mapping[str, str] | None = None, name: str = "pybind/drf"
    ) -> None:
        self.name = name
        self.parameters = dict(parameters or {})
        self._engine = _drf.Engine()
        self._rcount = 0

    def _call(self, call: str, method: str, *args: Any) -> Any:
        try:
            return getattr(self._engine, method)(*args)
        except _drf.EngineError as exc:
            status, message = exc.args
            raise AllocatorCallError(self.name, call, status, message) from None
        except TypeError as exc:
            raise AllocatorCallError(self.name, call, 2, str(exc)) from None

    def initialize(self, options: AllocatorOptions) -> None:
        """Register resource names and options."""
        excluded = set(options.fairness_excluded)
        self._call(
            "initialize", "initialize",
            list(options.resource_names), options.min_allocatable_matrix().tolist(),
            [n in excluded for n in options.resource_names], options.random_seed & (2**64 - 1),
            options.allocation_interval, options.filter_gpu_resources,
        )  # fmt: skip
        self._rcount = len(options.resource_names)

    def add_role(self, role: int, name: str) -> None:
        """Declare a role."""
        self._call("add_role", "add_role", role, name)

    def _framework(self, call: str, framework: int, info: FrameworkInfo) -> None:
        roles = list(info.roles)
        suppressed = [r for r in roles if r in info.suppressed_roles]
        self._call(call, call, framework, roles, suppressed, int(info.capabilities), info.active)

    def add_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Add a framework."""
        self._framework("add_framework", framework, info)

    def update_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Replace a framework's roles and capabilities."""
        self._framework("update_framework", framework, info)

    def remove_framework(self, framework: int) -> None:
        """Remove a framework."""
        self._call("remove_framework", "remove_framework", framework)

    def activate_framework(self, framework: int) -> None:
        """Offer to a framework again."""
        self._call("activate_framework", "activate_framework", framework, True)

    def deactivate_framework(self, framework: int) -> None:
        """Stop offering to a framework."""
        self._call("deactivate_framework", "activate_framework", framework, False)

    def _agent(self, call: str, agent: int, info: AgentInfo, update: bool) -> None:
        self._call(
            call, "add_agent", agent, list(info.unreserved),
            sorted((role, list(v)) for role, v in info.reservations.items()),
            None if info.revocable is None else list(info.revocable),
            [(a.framework, a.role, a.pool, a.revocable, list(a.resources))
             for a in info.allocations],
            info.active, update,
        )  # fmt: skip

    def add_agent(self, agent: int, info: AgentInfo) -> None:
        """Add an agent."""
        self._agent("add_agent", agent, info, False)

    def update_agent(self, agent: int, info: AgentInfo) -> None:
        """Replace an agent's totals."""
        self._agent("update_agent", agent, info, True)

    def remove_agent(self, agent: int) -> None:
        """Remove an agent."""
        self._call("remove_agent", "remove_agent", agent)

    def activate_agent(self, agent: int) -> None:
        """Offer an agent again."""
        self._call("activate_agent", "activate_agent", agent, True)

    def deactivate_agent(self, agent: int) -> None:
        """Stop offering an agent."""
        self._call("deactivate_agent", "activate_agent", agent, False)

    def recover_resources(
        self,
        framework: int,
        agent: int,
        role: int,
        resources: Sequence[float],
        refuse_seconds: float,
        now: float,
        pool: int = UNRESERVED,
        revocable: bool = False,
    ) -> None:
        """Return resources, optionally with a filter."""
        self._call(
            "recover_resources", "recover", framework, agent, role, pool, revocable,
            list(resources), refuse_seconds, now,
        )  # fmt: skip

    def suppress(self, framework: int, role: int = ALL_ROLES) -> None:
        """Stop offers in a role."""
        self._call("suppress", "suppress", framework, role)

    def revive(self, framework: int, role: int = ALL_ROLES) -> None:
        """Resume offers in a role and clear its filters."""
        self._call("revive", "revive", framework, role)

    def update_weights(self, weights: Mapping[int, float]) -> None:
        """Set role weights."""
        self._call("update_weights", "update_weights", [(r, float(w)) for r, w in weights.items()])

    def update_quota(self, role: int, guarantees: Sequence[float], limits: Sequence[float]) -> None:
        """Set a role's quota."""
        self._call("update_quota", "update_quota", role, list(guarantees), list(limits))

    def pause(self) -> None:
        """Offer nothing until resume()."""
        self._call("pause", "pause", True)

    def resume(self) -> None:
        """Undo pause()."""
        self._call("resume", "pause", False)

    def allocate(self, now: float, agents: Collection[int] | None = None) -> OfferBatch:
        """One cycle (over ``agents`` if given); zero-copy views of the engine's buffers."""
        if agents is None:
            rows, values = self._call("allocate", "allocate", now)
        else:
            handles = agent_handles(self.name, agents)
            rows, values = self._call("allocate", "allocate_agents", now, handles)
        count = len(rows)
        if count == 0:
            return OfferBatch.empty(self._rcount)
        return OfferBatch(rows.view(OFFER_ROW_DTYPE).reshape(count), values)

    def stats(self) -> dict[str, float]:
        """The engine's counters."""
        return dict(self._engine.stats())

    def close(self) -> None:
        """Drop the engine."""
        self._engine = None


__all__ = ["PybindDRFAllocator", "np"]
