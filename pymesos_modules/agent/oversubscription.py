"""Oversubscription: the resource estimator and the QoS controller, as Mesos' agent runs them.

Every ``--oversubscribed_resources_interval`` the estimator's answer, plus the
revocable resources tasks hold, goes to the master as UPDATE_OVERSUBSCRIBED
when it changed; every ``--qos_correction_interval_min`` the QoS controller's
corrections kill (preempt) revocable tasks.  Both see the same usage.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from pymesos_modules.agent.modules import Named, call
from pymesos_modules.agent.records import TERMINAL, scalars
from pymesos_modules.kinds.resource_estimator import AgentUsage, ExecutorUsage
from pymesos_modules.master import resources as res

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent

logger = logging.getLogger(__name__)


class Oversubscription:
    """The agent's oversubscription room; all state it changes is the agent's."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def agent_usage(self) -> AgentUsage:
        """What the resource estimator and the QoS controller see."""
        executors = [
            ExecutorUsage(
                container_id=c.container_id,
                task_id=c.task_id,
                framework_id=c.framework_id,
                resources=dict(c.resources),
                revocable=c.revocable,
                statistics=self.agent.containerizer.usage(c),
            )
            for c in self.agent.all_containers()
            if c.running
        ]
        return AgentUsage(total=scalars(self.agent.resources), executors=executors)

    async def estimator_loop(self) -> None:
        """Ask the resource estimator, and tell the master when the total changed."""
        named = self.agent.modules.resource_estimator
        assert named is not None
        while True:
            ok, estimate = call(named, "oversubscribable", self.agent_usage())
            if ok and isinstance(estimate, dict):
                self.agent.oversubscribed = {
                    k: float(v) for k, v in estimate.items() if float(v) > 0
                }
                if self.agent.registered and self.total() != self.agent.oversubscribed_sent:
                    await self.send()
            await asyncio.sleep(self.agent.flags.oversubscribed_resources_interval)

    def total(self) -> dict[str, float]:
        """What UPDATE_OVERSUBSCRIBED reports: the estimator's oversubscribable amount plus
        the revocable resources tasks hold, as Mesos' agent forwards it (a total, of which
        the allocator offers what tasks do not use)."""
        total = dict(self.agent.oversubscribed)
        for container in self.agent.all_containers():
            if container.state not in TERMINAL:
                for name, amount in container.revocable_resources.items():
                    total[name] = total.get(name, 0.0) + amount
        return total

    async def send(self) -> None:
        """UPDATE_OVERSUBSCRIBED with :meth:`total`; logged if the master is away."""
        amounts = self.total()
        items = res.to_json(res.Resources(amounts))
        # Marked sent before the call: the estimator's loop, running meanwhile, must not send
        # the same total again (the registration's send and the loop's raced).
        self.agent.oversubscribed_sent = amounts
        try:
            await self.agent.registration.post(
                {"type": "UPDATE_OVERSUBSCRIBED", "update_oversubscribed": {"resources": items}}
            )
        except (aiohttp.ClientError, ConnectionError, OSError, TimeoutError) as exc:
            logger.info("could not send UPDATE_OVERSUBSCRIBED: %s", exc)
            if self.agent.oversubscribed_sent is amounts:
                self.agent.oversubscribed_sent = None  # to be sent again
            return
        self.agent.counters["oversubscribed_updates"] += 1

    async def qos_loop(self) -> None:
        """Ask the QoS controller for corrections, and carry them out."""
        named = self.agent.modules.qos_controller
        assert named is not None
        while True:
            await asyncio.sleep(self.agent.flags.qos_correction_interval_min)
            ok, corrections = call(named, "corrections", self.agent_usage())
            if ok:
                for correction in corrections or []:
                    self._correct(named, correction)

    def _correct(self, named: Named, correction: Any) -> None:
        container_id = getattr(correction, "container_id", None)
        container = next(
            (c for c in self.agent.all_containers() if c.container_id == container_id), None
        ) or self.agent.find(
            str(getattr(correction, "framework_id", "")), str(getattr(correction, "task_id", ""))
        )
        if container is None or not container.running:
            logger.info("QoS controller '%s' names no running task: %s", named.name, correction)
            return
        if not container.revocable:
            logger.warning(
                "QoS controller '%s' asked to kill task %s, which does not run on revocable "
                "resources; ignored",
                named.name,
                container.task_id,
            )
            return
        self.agent.counters["qos_corrections"] += 1
        message = getattr(correction, "message", "") or f"preempted by QoS controller {named.name}"
        self.agent.containerizer.kill(
            container,
            grace=0.0,
            reason="REASON_EXECUTOR_PREEMPTED",
            message=message,
            source="SOURCE_SLAVE",
        )
