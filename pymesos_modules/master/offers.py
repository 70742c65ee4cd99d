"""The offers room: offers from a cycle to the frameworks, and back (Mesos' offer lifecycle).

A cycle's offers are made here (:meth:`OffersRoom._deliver`), declined,
rescinded or expired here, and an ACCEPT's offers are checked and claimed here
(:meth:`OffersRoom._claim_offers`): each operation takes its resources out of
the claimed pieces (:meth:`OffersRoom._take`) and what is left goes back with
the framework's filter (:meth:`OffersRoom._give_back`).  What an ACCEPT
launches is the tasks room's business.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from operator import gt, sub
from typing import Any

from pymesos_modules.kinds.allocator import (
    DEFAULT_REFUSE_SECONDS,
    UNRESERVED,
    OfferBatch,
    OfferFlag,
    offer_starts,
)
from pymesos_modules.master import resources as res
from pymesos_modules.master.base import CallError, MasterBase, _id
from pymesos_modules.master.state import Agent, Framework, Offer, Piece

logger = logging.getLogger(__name__)


class InvalidOffers(Exception):
    """The offers of an ACCEPT are not this framework's to use: its operations are dropped."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = "REASON_INVALID_OFFERS"
        self.message = message


@dataclass
class Claim:
    """What an ACCEPT's offers hold, taken out of the outstanding offers.

    ``pieces`` are mutable ``[pool, revocable, vector]`` lists that operations
    take from; ``ports`` what is still free of the offered ports.
    """

    agent: Agent
    role: str
    pieces: list[list]
    ports: res.Ranges


class OffersRoom(MasterBase):
    """Making, declining, rescinding and expiring offers; claiming an ACCEPT's offers."""

    def _deliver(self, batch: OfferBatch | None) -> int:
        self._pending_batch = None
        if batch is None:
            return 0
        self.counters["allocation_runs"] += 1
        by_framework: dict[str, list[dict[str, Any]]] = {}
        now = self.clock()
        # Every column read once as Python values: indexing NumPy rows one field at a
        # time costs about a microsecond per field, and a cycle may offer 10k agents.
        starts = offer_starts(batch)
        rows = batch.rows
        fw_col, agent_col, role_col = (rows[n].tolist() for n in ("framework", "agent", "role"))
        pool_col, flag_col = rows["pool"].tolist(), rows["flags"].tolist()
        values = [tuple(v) for v in batch.values.tolist()]
        stops = [*starts[1:], len(batch)] if starts else []
        for start, stop in zip(starts, stops, strict=True):
            fw_handle, agent_handle, role_handle = fw_col[start], agent_col[start], role_col[start]
            framework_id = self.framework_handles.find(fw_handle)
            agent_id = self.agent_handles.find(agent_handle)
            if framework_id is None or agent_id is None:
                # Removed while the cycle ran: the allocator forgot it and what it held.
                continue
            framework = self.frameworks.get(framework_id)
            agent = self.agents.get(agent_id)
            pieces: list[Piece] = [
                (pool_col[i], bool(flag_col[i] & OfferFlag.REVOCABLE), values[i])
                for i in range(start, stop)
            ]
            role = self.roles.ident(role_handle)
            if framework is None or agent is None or not framework.connected:
                self._recover(framework, agent, fw_handle, agent_handle, role_handle, pieces, 0.0)
                continue
            ports: res.Ranges = ()
            if any(pool == UNRESERVED and not revocable for pool, revocable, _ in pieces):
                ports, agent.free_ports = agent.free_ports, ()
            # Mesos' offer ids: the master's id and a serial number.
            self._offer_serial += 1
            offer_id = f"{self.master_id}-O{self._offer_serial}"
            offer = Offer(offer_id, framework_id, agent_id, role, pieces, ports, now)
            self.offers[offer_id] = offer
            framework.offers.add(offer_id)
            by_framework.setdefault(framework.framework_id, []).append(self._offer_json(offer))
        # No offer names a handle removed before or during this cycle any more.
        self.framework_handles.release_held()
        self.agent_handles.release_held()
        for framework_id, offers in by_framework.items():
            self._send(
                self.frameworks[framework_id], {"type": "OFFERS", "offers": {"offers": offers}}
            )
        return sum(len(o) for o in by_framework.values())

    def _offer_json(self, offer: Offer) -> dict[str, Any]:
        agent = self.agents[offer.agent_id]
        resources: list[dict[str, Any]] = []
        for pool, revocable, vector in offer.pieces:
            reservation = None if pool == UNRESERVED else self.roles.ident(pool)
            resources += res.to_json(
                res.Resources(self._scalars(vector)), offer.role, reservation, revocable
            )
        if offer.ports:
            resources += res.to_json(res.Resources({}, offer.ports), offer.role)
        return {
            "id": {"value": offer.offer_id},
            "framework_id": {"value": offer.framework_id},
            "agent_id": {"value": offer.agent_id},
            "hostname": agent.hostname,
            "resources": resources,
            "attributes": [_attribute_json(k, v) for k, v in agent.attributes.items()],
            "allocation_info": {"role": offer.role},
        }

    def _release_offer(self, offer: Offer, refuse: float, ports_back: bool = True) -> None:
        self.offers.pop(offer.offer_id, None)
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.discard(offer.offer_id)
        agent = self.agents.get(offer.agent_id)
        if agent is not None and ports_back and offer.ports:
            agent.free_ports = tuple(sorted(agent.free_ports + offer.ports))
        fw_handle = self.framework_handles.get(offer.framework_id)
        agent_handle = self.agent_handles.get(offer.agent_id)
        if fw_handle is not None and agent_handle is not None:
            self._recover(
                framework,
                agent,
                fw_handle,
                agent_handle,
                self.roles.add(offer.role),
                offer.pieces,
                refuse,
            )

    def _rescind(self, offer: Offer) -> None:
        framework = self.frameworks.get(offer.framework_id)
        self._release_offer(offer, 0.0)
        if framework is not None:
            self._send(
                framework, {"type": "RESCIND", "rescind": {"offer_id": {"value": offer.offer_id}}}
            )

    def _expire_offers(self) -> None:
        if self.flags.offer_timeout is None:
            return
        deadline = self.clock() - self.flags.offer_timeout
        for offer in [o for o in self.offers.values() if o.created <= deadline]:
            self._rescind(offer)

    def _filters(self, body: dict[str, Any]) -> float:
        refuse = (body.get("filters") or {}).get("refuse_seconds", DEFAULT_REFUSE_SECONDS)
        if not isinstance(refuse, int | float) or math.isnan(refuse) or refuse < 0:
            raise CallError(400, "filters.refuse_seconds must be a number >= 0")
        return float(refuse)

    def _offer_ids(self, body: dict[str, Any]) -> list[str]:
        ids = body.get("offer_ids")
        if not isinstance(ids, list) or not ids:
            raise CallError(400, "offer_ids must be a non-empty list")
        return [_id(o, "offer_ids[]") for o in ids]

    def _call_decline(self, framework: Framework, body: dict[str, Any]) -> None:
        refuse = self._filters(body)
        for offer_id in self._offer_ids(body):
            offer = self.offers.get(offer_id)
            if offer is not None and offer.framework_id == framework.framework_id:
                self._release_offer(offer, refuse)

    def _take(self, pieces: list[list], wanted: res.Resources, items: Any, who: str) -> list[Piece]:
        """Take ``wanted`` (scalars, given as the JSON ``items``) out of the offered ``pieces``.

        Returns what was taken per piece; CallError (naming ``who``) if it does not fit,
        and then nothing is taken.
        """
        # Each kind comes only from offered resources of the same kind, as in
        # Mesos: regular ones never from revocable ones (those may vanish with
        # the next estimate), and ones marked "revocable": {} never from regular
        # ones (a framework would otherwise hold guaranteed resources that the
        # QoS controller may preempt, and the allocator would count them twice).
        marked = [r for r in items if isinstance(r, dict) and "revocable" in r]
        needs: list[tuple[list[float], bool]]
        if not marked:  # the common case: regular resources only
            need = self._vector(wanted)
            if len(pieces) == 1 and not pieces[0][1]:
                # One regular piece that holds it all (a plain offer): take it at once.
                rest = tuple(map(sub, pieces[0][2], need))
                if min(rest) >= 0.0:
                    pieces[0][2] = rest
                    return [(pieces[0][0], False, need)] if any(need) else []
            needs = [(list(need), False)]
        else:
            revocable = res.from_json(marked, f"{who} resources")
            mixed = sorted(n for n, v in revocable.scalars.items() if wanted.scalars[n] > v + 1e-12)
            if mixed:
                raise CallError(400, f"{who} mixes revocable and non-revocable {', '.join(mixed)}")
            marked_need = self._vector(revocable)
            regular_need = [
                max(0.0, n - r) for n, r in zip(self._vector(wanted), marked_need, strict=True)
            ]
            needs = [(regular_need, False), (list(marked_need), True)]
        # map() over builtins rather than generators: every launched task passes here,
        # and a generator expression costs about a microsecond to start and finish.
        plan: list[tuple[list[float], list[list]]] = []
        for need, kind in needs:
            if not any(need):  # amounts are >= 0
                continue
            own = [piece for piece in pieces if bool(piece[1]) == kind]
            if len(own) == 1:
                available = own[0][2]
            else:
                columns = zip(*[p[2] for p in own], strict=True)
                available = tuple(map(sum, columns)) or (0.0,) * len(need)
            if any(map(gt, need, [a + 1e-9 for a in available])):
                raise CallError(400, f"{who} uses more resources than its offers hold")
            plan.append((need, own))
        # Every kind fits: only now is anything taken, so a failure changes nothing.
        taken: list[Piece] = []
        for need, own in plan:
            for piece in own:  # unreserved first, then reservations
                take = tuple(map(min, need, piece[2]))
                if any(take):
                    piece[2] = tuple(map(sub, piece[2], take))
                    need = list(map(sub, need, take))
                    taken.append((piece[0], piece[1], take))
        return taken

    def _claim_offers(self, framework: Framework, offer_ids: list[str]) -> Claim:
        """Check an ACCEPT's offers and take them out of the outstanding offers, as one.

        InvalidOffers if any is gone, another framework's, or on another agent
        than the rest: then the valid ones go back (without a filter) as well.
        """
        offers = [self.offers.get(i) for i in offer_ids]
        problem = None
        if any(o is None or o.framework_id != framework.framework_id for o in offers):
            problem = "offer is no longer valid or belongs to another framework"
        elif len({o.agent_id for o in offers if o}) != 1:
            problem = "offers of one ACCEPT must all be on one agent"
        valid = [o for o in offers if o is not None and o.framework_id == framework.framework_id]
        if problem is not None:
            for offer in valid:
                self._release_offer(offer, 0.0)
            raise InvalidOffers(problem)
        for offer in valid:
            self.offers.pop(offer.offer_id, None)
            framework.offers.discard(offer.offer_id)
        return Claim(
            self.agents[valid[0].agent_id],
            valid[0].role,
            [list(p) for o in valid for p in o.pieces],
            tuple(sorted(p for o in valid for p in o.ports)),
        )

    def _give_back(self, framework: Framework, claim: Claim, refuse: float) -> None:
        """What an ACCEPT's operations left of its offers goes back with the framework's filter."""
        agent = claim.agent
        leftover: list[Piece] = [
            (p[0], p[1], tuple(p[2])) for p in claim.pieces if any(v > 1e-12 for v in p[2])
        ]
        if leftover:
            self._recover(
                framework,
                agent,
                framework.handle,
                agent.handle,
                self.roles.add(claim.role),
                leftover,
                refuse,
            )
        agent.free_ports = tuple(sorted(agent.free_ports + claim.ports))
        self._allocate_on(agent.handle)


def _attribute_json(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"name": name, "type": "SCALAR", "scalar": {"value": value}}
    return {"name": name, "type": "TEXT", "text": {"value": str(value)}}
