"""The recovery room: the registry's side of agents, as Mesos' master uses its registrar.

An agent is admitted once its admission is durable in the registry
(:meth:`RecoveryRoom.admit_agent`); an agent that stays away past
``--agent_reregister_timeout`` becomes unreachable, durably first
(:meth:`RecoveryRoom.mark_unreachable`): its tasks become TASK_UNREACHABLE
for PARTITION_AWARE frameworks and TASK_LOST for the others.

A master that starts on a registry a previous master wrote
(:meth:`RecoveryRoom.recover`) expects the admitted agents back: those that
do not re-register within ``--agent_reregister_timeout`` become unreachable,
and an agent that re-registers without ever having been admitted is told to
shut down.  The registry holds no tasks: reconciliation answers for the tasks
of agents that never came back (see the tasks room).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pymesos_modules.master import resources as res
from pymesos_modules.master.agents import AgentsRoom, Listing
from pymesos_modules.master.base import CallError
from pymesos_modules.master.registry import AgentEntry, RegistryError
from pymesos_modules.master.state import AgentBackend

logger = logging.getLogger(__name__)


class RecoveryRoom(AgentsRoom):
    """Durable admission, unreachable agents, and a restarted master's recovery."""

    #: when :meth:`recover` read the registry (time.monotonic())
    _recovered_at = 0.0

    def recover(self) -> None:
        """Read the registry and expect its admitted agents back (blocking; before serving).

        RegistryError if the registry is corrupt or newer than this master reads.
        """
        self.registrar.recover(self.master_info())
        self._recovered_at = time.monotonic()
        if self.registrar.recovered:
            self.recovering = dict(self.registrar.admitted)
            logger.info(
                "recovered the registry %s: %d admitted agent(s) to re-register within "
                "%.0f s, %d unreachable",
                self.registrar.backend.where,
                len(self.recovering),
                self.flags.agent_reregister_timeout,
                len(self.registrar.unreachable),
            )

    async def _recovery_timeout(self) -> None:
        """Admitted agents of the registry that are not back in time become unreachable."""
        await asyncio.sleep(self.flags.agent_reregister_timeout)
        await self.recovered_agents_timeout()

    async def recovered_agents_timeout(self) -> None:
        """The agents still expected back are unreachable now (Mesos' recoveredSlavesTimeout)."""
        missing = sorted(self.recovering)
        if not missing:
            return
        logger.warning(
            "%d agent(s) of the registry did not re-register within %.0f s: unreachable",
            len(missing),
            self.flags.agent_reregister_timeout,
        )
        await self.registrar.mark_unreachable(missing)
        for agent_id in missing:
            self.recovering.pop(agent_id, None)
        self.counters["recovery_slave_removals"] += len(missing)

    def admissible(self, agent_id: str) -> bool:
        """May this agent re-register?  Not when the registry, recovered from a previous
        master, never admitted it (Mesos tells such an agent to shut down)."""
        if not self.registrar.recovered or agent_id in self.agents:
            return True
        return agent_id in self.registrar.admitted or agent_id in self.registrar.unreachable

    async def admit_agent(
        self,
        backend: AgentBackend,
        hostname: str,
        resources: res.Resources,
        attributes: dict[str, Any] | None = None,
        agent_id: str | None = None,
        tasks: list[Any] | tuple[Any, ...] = (),
        frameworks: list[Any] | tuple[Any, ...] = (),
        executors: list[Any] | tuple[Any, ...] = (),
        listing: Listing | None = None,
    ) -> str:
        """:meth:`register_agent` once the agent's admission is durable in the registry.

        CallError 503 when the registry cannot be written (nothing changes).
        """
        # What register_agent checks, before anything is written (once: it is handed on).
        if listing is None:
            listing = self.listing(tasks, frameworks, executors)
        agent_id = agent_id or self.new_agent_id()
        if agent_id in self.agents:
            raise CallError(409, f"agent {agent_id} is already registered")
        entry = _entry(agent_id, hostname, resources, attributes)
        try:
            await self.registrar.admit(entry)
        except RegistryError as exc:
            raise CallError(503, f"agent {agent_id} could not be admitted: {exc}") from None
        expected = self.recovering.pop(agent_id, None) is not None
        try:
            registered = self.register_agent(
                backend, hostname, resources, attributes, agent_id, listing=listing
            )
        except CallError:
            if agent_id not in self.agents:  # nothing of a refused registration stays
                with contextlib.suppress(RegistryError):
                    await self.registrar.remove(agent_id)
            raise
        if expected and not self.recovering:
            # One line for the whole recovery: each agent's own is at DEBUG.
            logger.info(
                "every agent of the recovered registry has re-registered, %.1f s after recovery",
                time.monotonic() - self._recovered_at,
            )
        return registered

    async def mark_unreachable(self, agent_id: str) -> None:
        """A registered agent stayed away too long: unreachable, durably, then its tasks."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        since = time.time()
        try:
            await self.registrar.mark_unreachable([agent_id], since)
        except RegistryError:
            logger.exception("agent %s: could not record it unreachable; removing it", agent_id)
        if self.agents.get(agent_id) is not agent:
            return
        if agent.active:  # it came back while the registry wrote: admitted again
            entry = _entry(agent_id, agent.hostname, agent.resources, agent.attributes)
            with contextlib.suppress(RegistryError):
                await self.registrar.admit(entry)
            return
        self.remove_agent(agent_id, "REASON_AGENT_REMOVED", unreachable_time=since)


def _entry(
    agent_id: str, hostname: str, resources: res.Resources, attributes: dict[str, Any] | None
) -> AgentEntry:
    """The registry's record of an agent admitted now."""
    return AgentEntry(
        agent_id, hostname, res.to_json(resources, "*"), dict(attributes or {}), time.time()
    )
