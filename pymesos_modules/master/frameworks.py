"""The frameworks room: SUBSCRIBE, failover, teardown, and a framework's REVIVE/SUPPRESS.

A framework subscribes (or re-subscribes with its id, taking over its tasks
and unacknowledged updates), disconnects, and is removed when its failover
timeout runs out, when it tears down, or by an operator; a removed id may not
come back (Mesos' completed frameworks).  Frameworks an agent reports but this
master does not know (after a master restart) are recovered here as
disconnected, waiting for their scheduler, as Mesos recovers them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import Any

from pymesos_modules.kinds.allocator import Capability, FrameworkInfo
from pymesos_modules.kinds.authorizer import Action
from pymesos_modules.master.base import CallError, SubscriptionDenied, _id
from pymesos_modules.master.state import EventSink, Framework
from pymesos_modules.master.tasks import TasksRoom

logger = logging.getLogger(__name__)

CAPABILITY_BITS = {
    "REVOCABLE_RESOURCES": Capability.REVOCABLE_RESOURCES,
    "GPU_RESOURCES": Capability.GPU_RESOURCES,
    "MULTI_ROLE": Capability.MULTI_ROLE,
    "RESERVATION_REFINEMENT": Capability.RESERVATION_REFINEMENT,
}


def _caps(capabilities: set[str]) -> Capability:
    value = Capability(0)
    for name in capabilities:
        value |= CAPABILITY_BITS.get(name, Capability(0))
    return value


class FrameworksRoom(TasksRoom):
    """Subscription, failover and removal of frameworks, and their offer-wide calls."""

    def subscribe(
        self, call: dict[str, Any], sink: EventSink, principal: str | None = None
    ) -> Framework:
        """Handle SUBSCRIBE: register or re-register a framework and send SUBSCRIBED.

        ``principal`` is who the HTTP layer authenticated (None if nobody).
        """
        body = call.get("subscribe")
        if not isinstance(body, dict) or not isinstance(body.get("framework_info"), dict):
            raise CallError(400, "SUBSCRIBE needs subscribe.framework_info")
        info = body["framework_info"]
        if not isinstance(info.get("user", ""), str) or not isinstance(info.get("name", ""), str):
            raise CallError(400, "framework_info.user and name must be strings")
        roles = info.get("roles") or [info.get("role", "*")]
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            raise CallError(400, "framework_info.roles must be a list of role names")
        capabilities = {c.get("type") for c in info.get("capabilities", []) if isinstance(c, dict)}
        if len(roles) > 1 and "MULTI_ROLE" not in capabilities:
            raise CallError(400, "a framework with several roles needs the MULTI_ROLE capability")
        timeout = info.get("failover_timeout", 0.0)
        if not isinstance(timeout, int | float) or timeout < 0 or math.isnan(timeout):
            raise CallError(400, "framework_info.failover_timeout must be >= 0")
        claimed = info.get("principal")
        if claimed is not None and not isinstance(claimed, str):
            raise CallError(400, "framework_info.principal must be a string")
        if principal is not None and claimed is not None and claimed != principal:
            raise CallError(
                400,
                f"Authenticated principal '{principal}' does not match principal "
                f"'{claimed}' set in `FrameworkInfo`",
            )
        principal = principal if principal is not None else claimed
        if principal is not None:
            info = {**info, "principal": principal}
        wanted = call.get("framework_id") or info.get("id")
        framework_id = _id(wanted, "framework_id") if wanted else None
        known = self.frameworks.get(framework_id) if framework_id is not None else None
        owner = known.info.get("principal") if known is not None else None
        if owner is not None and owner != principal:
            # Mesos refuses a principal change: nobody takes over another's framework.
            raise SubscriptionDenied(
                "Updating 'FrameworkInfo.principal' is unsupported; attempted to update "
                f"from '{owner}' to '{principal}'"
            )
        denied = [r for r in roles if not self._authorized(Action.REGISTER_FRAMEWORK, principal, r)]
        if denied:
            raise SubscriptionDenied(
                f"Not authorized to use roles {', '.join(repr(r) for r in denied)}"
                + (f" as principal '{principal}'" if principal else "")
            )
        if framework_id is not None and framework_id in self.frameworks:
            framework = self._resubscribe(
                self.frameworks[framework_id], info, roles, capabilities, float(timeout), sink
            )
        else:
            if framework_id is not None and framework_id in self._completed_ids:
                raise CallError(403, f"framework {framework_id} has been removed")
            framework_id = (
                framework_id
                or f"{self.master_id}-{len(self._completed_ids) + len(self.frameworks):04d}"
            )
            handle = self.framework_handles.add(framework_id)
            role_handles = tuple(self._role(r) for r in roles)
            self._alloc("add_framework", handle, FrameworkInfo(role_handles, _caps(capabilities)))
            framework = Framework(
                framework_id,
                handle,
                {**info, "id": {"value": framework_id}},
                list(roles),
                capabilities,
                float(timeout),
                sink,
            )
            self.frameworks[framework_id] = framework
            logger.debug(
                "framework %s (%s) subscribed in roles %s", framework_id, framework.name, roles
            )
        framework.stream_id = str(uuid.uuid4())
        sink.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "framework_id": {"value": framework.framework_id},
                    "heartbeat_interval_seconds": self.flags.heartbeat_interval,
                    "master_info": self.master_info(),
                },
            }
        )
        for event in framework.unacknowledged.values():
            sink.send(event)
        self._allocate_everywhere()
        return framework

    def _resubscribe(
        self,
        framework: Framework,
        info: dict[str, Any],
        roles: list[str],
        capabilities: set[str],
        timeout: float,
        sink: EventSink,
    ) -> Framework:
        if framework.removal is not None:
            framework.removal()
            framework.removal = None
        if framework.sink is not None and framework.sink is not sink:
            framework.sink.close()
        framework.sink, framework.connected, framework.disconnected_at = sink, True, None
        framework.info = {**info, "id": {"value": framework.framework_id}}
        framework.roles, framework.capabilities, framework.failover_timeout = (
            roles,
            capabilities,
            timeout,
        )
        role_handles = tuple(self._role(r) for r in roles)
        suppressed = frozenset(self.roles.add(r) for r in framework.suppressed if r in roles)
        self._alloc(
            "update_framework",
            framework.handle,
            FrameworkInfo(role_handles, _caps(capabilities), suppressed),
        )
        self._alloc("activate_framework", framework.handle)
        logger.info("framework %s re-subscribed", framework.framework_id)
        return framework

    def disconnected(self, framework: Framework, sink: EventSink) -> None:
        """The framework's stream went away: keep it until its failover timeout runs out."""
        if framework.sink is not sink or framework.framework_id not in self.frameworks:
            return
        framework.connected, framework.sink = False, None
        framework.disconnected_at = self.clock()
        self._alloc("deactivate_framework", framework.handle)
        for offer_id in list(framework.offers):
            self._release_offer(self.offers[offer_id], 0.0)
        logger.info(
            "framework %s disconnected; failover timeout %.1f s",
            framework.framework_id,
            framework.failover_timeout,
        )
        if framework.failover_timeout <= 0:
            self.remove_framework(framework.framework_id)
            return
        self._failover_timer(framework)

    def _failover_timer(self, framework: Framework) -> None:
        """Remove ``framework`` unless it re-subscribes within its failover_timeout."""
        try:
            handle = asyncio.get_running_loop().call_later(
                framework.failover_timeout, self.remove_framework, framework.framework_id
            )
            framework.removal = handle.cancel
        except RuntimeError:  # no loop: in-process use drives time itself
            framework.removal = None

    def remove_framework(self, framework_id: str) -> None:
        """Remove a framework: kill its tasks, rescind its offers, forget it."""
        framework = self.frameworks.pop(framework_id, None)
        if framework is None:
            return
        for offer_id in list(framework.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._release_offer(offer, 0.0)
        # The allocator frees what its tasks and executors hold with the
        # framework: those agents have resources to offer again.
        freed = {t.agent_id for t in framework.tasks.values() if not t.state.terminal}
        freed |= {key[1] for key in self.executors if key[0] == framework_id}
        for task in list(framework.tasks.values()):
            agent = self.agents.get(task.agent_id)
            if agent is not None and not task.state.terminal:
                agent.backend.kill_task(framework_id, task.task_id)
                agent.tasks.pop(task.task_id, None)
                if task.ports:
                    agent.free_ports = tuple(sorted(agent.free_ports + task.ports))
        for agent_id in sorted(freed):
            # As Mesos: the agent shuts the framework's executors down too (a backend
            # without the call has none; the kills above did the rest).
            agent = self.agents.get(agent_id)
            shutdown = getattr(agent.backend, "shutdown_framework", None) if agent else None
            if shutdown is not None:
                shutdown(framework_id)
        for key in [k for k in self.executors if k[0] == framework_id]:
            agent = self.agents.get(key[1])
            if agent is not None:  # the allocator forgets the rest with the framework
                agent.free_ports = tuple(sorted(agent.free_ports + self.executors[key].ports))
            del self.executors[key]
        self._alloc("remove_framework", framework.handle)
        self.framework_handles.remove(framework_id, hold=True)
        self._completed_ids.add(framework_id)
        if framework.sink is not None:
            framework.sink.close()
        logger.info("framework %s removed", framework_id)
        for agent_id in sorted(freed):
            if (agent := self.agents.get(agent_id)) is not None:
                self._allocate_on(agent.handle)

    def framework_for_call(self, call: dict[str, Any], stream_id: str | None) -> Framework:
        """The framework a non-SUBSCRIBE call is from, checking its stream id as Mesos does."""
        framework_id = _id(call.get("framework_id"), "framework_id")
        framework = self.frameworks.get(framework_id)
        if framework is None or not framework.connected:
            raise CallError(403, f"framework {framework_id} is not subscribed")
        if stream_id is not None and stream_id != framework.stream_id:
            raise CallError(
                400,
                "the Mesos-Stream-Id in this request does not match the "
                "framework's subscription stream",
            )
        return framework

    def _roles_of(self, framework: Framework, body: dict[str, Any]) -> list[str]:
        roles = body.get("roles") or framework.roles
        if not isinstance(roles, list) or any(r not in framework.roles for r in roles):
            raise CallError(
                400, f"roles must be a subset of the framework's roles {framework.roles}"
            )
        return roles

    def _call_revive(self, framework: Framework, body: dict[str, Any]) -> None:
        for role in self._roles_of(framework, body):
            framework.suppressed.discard(role)
            self._alloc("revive", framework.handle, self.roles.add(role))
        self._allocate_everywhere()

    def _call_suppress(self, framework: Framework, body: dict[str, Any]) -> None:
        for role in self._roles_of(framework, body):
            framework.suppressed.add(role)
            self._alloc("suppress", framework.handle, self.roles.add(role))

    def _call_teardown(self, framework: Framework, body: dict[str, Any]) -> None:
        self.remove_framework(framework.framework_id)

    def _recover_frameworks(
        self, holders: list[tuple[str, str]], infos: dict[str, dict[str, Any]]
    ) -> list[str]:
        """Frameworks of adopted tasks and executors (``holders``: their framework id and
        role) this master does not know, added as disconnected.

        Like Mesos' recovered frameworks they wait for the framework to
        re-subscribe with its id, or for an operator's ``/teardown``.  When the
        agent sent the framework's FrameworkInfo with a ``failover_timeout`` > 0,
        that is how long they wait, counted from now (Mesos' documented failover
        semantics); then they are removed and their tasks killed.  Without one,
        or with 0, they wait without a timer, as Mesos' recovered frameworks do.
        """
        added: list[str] = []
        for framework_id, _ in holders:
            if framework_id in self.frameworks:
                continue
            info = infos.get(framework_id, {})
            roles = list(info.get("roles") or [info.get("role", "*")])
            roles += sorted({r for f, r in holders if f == framework_id} - set(roles))
            capabilities = {
                c.get("type") for c in info.get("capabilities", []) if isinstance(c, dict)
            }
            handle = self.framework_handles.add(framework_id)
            role_handles = tuple(self._role(r) for r in roles)
            self._alloc(
                "add_framework",
                handle,
                FrameworkInfo(role_handles, _caps(capabilities), active=False),
            )
            self.frameworks[framework_id] = Framework(
                framework_id,
                handle,
                {"name": "", **info, "id": {"value": framework_id}, "roles": roles},
                roles,
                capabilities,
                float(info.get("failover_timeout", 0.0)),
                connected=False,
                disconnected_at=time.time(),
            )
            added.append(framework_id)
        return added
