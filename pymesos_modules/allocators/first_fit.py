"""First fit: how short an allocation policy can be.

Every cycle, each active agent's free unreserved resources go to the
lowest-numbered active framework (in its first unsuppressed role) that has not
refused them.  No fairness, no reservations, no quota: a baseline and a
template for writing your own policy in Python before porting it to C.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from pymesos_modules.kinds.allocator import (
    ALL_ROLES,
    UNRESERVED,
    AgentInfo,
    AllocatorCallError,
    AllocatorOptions,
    FrameworkInfo,
    OfferBatch,
    check_vector,
)


class FirstFitAllocator:
    """Offer each agent whole to the first framework that will take it."""

    policy = "first_fit"

    def __init__(
        self, parameters: Mapping[str, str] | None = None, name: str = "python/first_fit"
    ) -> None:
        self.name = name
        self.parameters = dict(parameters or {})
        self.rcount = 0
        self.interval = 1.0
        self.paused = False
        self.frameworks: dict[int, FrameworkInfo] = {}
        self.free: dict[int, list[float]] = {}
        self.active_agents: set[int] = set()
        self.allocated: dict[tuple[int, int, int], list[float]] = {}
        self.filters: dict[tuple[int, int, int], float] = {}
        self.runs = 0

    def _error(self, call: str, status: int, message: str) -> AllocatorCallError:
        return AllocatorCallError(self.name, call, status, message)

    def _known(self, call: str, table: Mapping[int, object], what: str, handle: int) -> None:
        if handle not in table:
            raise self._error(call, 3, f"unknown {what} {handle}")

    def initialize(self, options: AllocatorOptions) -> None:
        """Remember how many resources a vector has."""
        self.rcount = len(options.resource_names)
        self.interval = options.allocation_interval

    def add_role(self, role: int, name: str) -> None:
        """Roles do not matter to first fit."""

    def add_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Track the framework."""
        if framework in self.frameworks:
            raise self._error("add_framework", 4, f"framework {framework} already exists")
        self.frameworks[framework] = info

    def update_framework(self, framework: int, info: FrameworkInfo) -> None:
        """Replace what is known of the framework."""
        self._known("update_framework", self.frameworks, "framework", framework)
        self.frameworks[framework] = info

    def remove_framework(self, framework: int) -> None:
        """Give back everything it holds."""
        self._known("remove_framework", self.frameworks, "framework", framework)
        for key in [k for k in self.allocated if k[0] == framework]:
            vector = self.allocated.pop(key)
            if key[1] in self.free:
                self.free[key[1]] = [a + b for a, b in zip(self.free[key[1]], vector, strict=True)]
        del self.frameworks[framework]

    def _set_active(self, framework: int, active: bool) -> None:
        self._known("activate_framework", self.frameworks, "framework", framework)
        info = self.frameworks[framework]
        self.frameworks[framework] = FrameworkInfo(
            info.roles, info.capabilities, info.suppressed_roles, active
        )

    def activate_framework(self, framework: int) -> None:
        """Offer to it again."""
        self._set_active(framework, True)

    def deactivate_framework(self, framework: int) -> None:
        """Stop offering to it."""
        self._set_active(framework, False)

    def add_agent(self, agent: int, info: AgentInfo) -> None:
        """Track the agent's free unreserved resources."""
        if agent in self.free:
            raise self._error("add_agent", 4, f"agent {agent} already exists")
        free = list(
            check_vector(self.name, "add_agent", "unreserved", info.unreserved, self.rcount)
        )
        for allocation in info.allocations:
            if allocation.pool == UNRESERVED and not allocation.revocable:
                free = [a - b for a, b in zip(free, allocation.resources, strict=True)]
                key = (allocation.framework, agent, allocation.role)
                self.allocated[key] = list(allocation.resources)
        self.free[agent] = free
        if info.active:
            self.active_agents.add(agent)

    def update_agent(self, agent: int, info: AgentInfo) -> None:
        """Re-derive the free resources from new totals."""
        self._known("update_agent", self.free, "agent", agent)
        used = [0.0] * self.rcount
        for (_, a, _), vector in self.allocated.items():
            if a == agent:
                used = [x + y for x, y in zip(used, vector, strict=True)]
        self.free[agent] = [t - u for t, u in zip(info.unreserved, used, strict=True)]

    def remove_agent(self, agent: int) -> None:
        """Forget the agent and what was allocated on it."""
        self._known("remove_agent", self.free, "agent", agent)
        del self.free[agent]
        self.active_agents.discard(agent)
        for key in [k for k in self.allocated if k[1] == agent]:
            del self.allocated[key]

    def activate_agent(self, agent: int) -> None:
        """Offer the agent again."""
        self._known("activate_agent", self.free, "agent", agent)
        self.active_agents.add(agent)

    def deactivate_agent(self, agent: int) -> None:
        """Stop offering the agent."""
        self._known("deactivate_agent", self.free, "agent", agent)
        self.active_agents.discard(agent)

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
        """Return resources; a refusal filters the agent for that framework."""
        vector = check_vector(self.name, "recover_resources", "resources", resources, self.rcount)
        key = (framework, agent, role)
        held = self.allocated.get(key)
        if held is None or any(v > h + 1e-9 for v, h in zip(vector, held, strict=True)):
            raise self._error("recover_resources", 2, f"framework {framework} does not hold that")
        left = [h - v for h, v in zip(held, vector, strict=True)]
        if any(x > 1e-9 for x in left):
            self.allocated[key] = left
        else:
            del self.allocated[key]
        self.free[agent] = [f + v for f, v in zip(self.free[agent], vector, strict=True)]
        if refuse_seconds > 0:
            self.filters[(framework, agent, role)] = now + max(refuse_seconds, self.interval)

    def _roles_changed(self, framework: int, role: int, suppressed: bool) -> None:
        self._known("suppress", self.frameworks, "framework", framework)
        info = self.frameworks[framework]
        roles = set(info.roles) if role == ALL_ROLES else {role}
        now = (
            set(info.suppressed_roles) | roles if suppressed else set(info.suppressed_roles) - roles
        )
        self.frameworks[framework] = FrameworkInfo(
            info.roles, info.capabilities, frozenset(now), info.active
        )
        if not suppressed:
            for key in [k for k in self.filters if k[0] == framework and k[2] in roles]:
                del self.filters[key]

    def suppress(self, framework: int, role: int = ALL_ROLES) -> None:
        """Stop offers in a role."""
        self._roles_changed(framework, role, True)

    def revive(self, framework: int, role: int = ALL_ROLES) -> None:
        """Resume offers in a role and clear its filters."""
        self._roles_changed(framework, role, False)

    def update_weights(self, weights: Mapping[int, float]) -> None:
        """First fit has no weights."""

    def update_quota(self, role: int, guarantees: Sequence[float], limits: Sequence[float]) -> None:
        """First fit has no quota."""

    def pause(self) -> None:
        """Offer nothing until resume()."""
        self.paused = True

    def resume(self) -> None:
        """Undo pause()."""
        self.paused = False

    def allocate(self, now: float, agents: Collection[int] | None = None) -> OfferBatch:
        """Each active agent (of ``agents``, if given), whole, to the first framework taking it."""
        if agents is not None:
            for handle in agents:
                self._known("allocate", self.free, "agent", handle)
        rows, values = [], []
        if self.paused:
            return OfferBatch.empty(self.rcount)
        self.runs += 1
        visit = self.active_agents if agents is None else self.active_agents & set(agents)
        for agent in sorted(visit):
            free = self.free[agent]
            if not any(x > 0 for x in free):
                continue
            for framework in sorted(self.frameworks):
                info = self.frameworks[framework]
                role = next((r for r in info.roles if r not in info.suppressed_roles), None)
                if not info.active or role is None:
                    continue
                if self.filters.get((framework, agent, role), -math.inf) > now:
                    continue
                rows.append((framework, agent, role, UNRESERVED, 0))
                values.append(list(free))
                key = (framework, agent, role)
                held = self.allocated.get(key, [0.0] * self.rcount)
                self.allocated[key] = [h + f for h, f in zip(held, free, strict=True)]
                self.free[agent] = [0.0] * self.rcount
                break
        return OfferBatch.from_rows(rows, values, self.rcount)

    def stats(self) -> dict[str, float]:
        """Counters for metrics."""
        return {"allocation_runs": float(self.runs), "frameworks": float(len(self.frameworks))}

    def close(self) -> None:
        """Nothing to release."""
