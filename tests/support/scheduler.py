"""A scheduler written against the master's HTTP API with nothing but aiohttp (tests)."""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import Any

import aiohttp

STREAM = "Mesos-Stream-Id"


#: Capabilities of a framework that takes revocable resources.
REVOCABLE = ("MULTI_ROLE", "REVOCABLE_RESOURCES")


class Scheduler:
    """A framework written against the HTTP API with nothing but aiohttp."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self.response: aiohttp.ClientResponse | None = None
        self.reader: asyncio.Task | None = None

    async def subscribe(
        self,
        name: str = "test",
        roles=("*",),
        failover_timeout: float = 0.0,
        framework_id: str | None = None,
        capabilities: tuple[str, ...] = ("MULTI_ROLE",),
        checkpoint: bool = True,
        user: str | None = None,
    ) -> dict[str, Any]:
        call: dict[str, Any] = {
            "type": "SUBSCRIBE",
            "subscribe": {
                "framework_info": {
                    # As pymesos does: the user running the framework, who exists on the
                    # agents here (which run tasks as their user, --switch_user).
                    "user": user or getpass.getuser(),
                    "name": name,
                    "roles": list(roles),
                    "failover_timeout": failover_timeout,
                    "capabilities": [{"type": c} for c in capabilities],
                    # What a restarted agent may keep running (tests of recovery need it).
                    "checkpoint": checkpoint,
                }
            },
        }
        if framework_id:
            call["framework_id"] = {"value": framework_id}
        self.response = await self.session.post(f"{self.url}/api/v1/scheduler", json=call)
        assert self.response.status == 200, await self.response.text()
        self.stream_id = self.response.headers[STREAM]
        self.reader = asyncio.create_task(self._read())
        subscribed = await self.next("SUBSCRIBED")
        self.framework_id = subscribed["subscribed"]["framework_id"]["value"]
        return subscribed

    async def _read(self) -> None:
        assert self.response is not None
        content = self.response.content
        while True:
            line = await content.readline()
            if not line:
                return
            data = await content.readexactly(int(line))
            await self.events.put(json.loads(data))

    async def next(self, kind: str, timeout: float = 5.0, where=None) -> dict[str, Any]:
        """The next event of a type (others are skipped), within ``timeout`` seconds."""

        async def wait() -> dict[str, Any]:
            while True:
                event = await self.events.get()
                if event["type"] == kind and (where is None or where(event)):
                    return event

        return await asyncio.wait_for(wait(), timeout)

    async def none_of(self, kind: str, within: float) -> None:
        """Assert no event of a type arrives within ``within`` seconds."""
        try:
            event = await self.next(kind, within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {kind}: {event}")

    async def call(self, call: dict[str, Any], stream_id: str | None = "default") -> int:
        headers = {STREAM: self.stream_id if stream_id == "default" else stream_id}
        if headers[STREAM] is None:
            del headers[STREAM]
        body = {"framework_id": {"value": self.framework_id}, **call}
        async with self.session.post(
            f"{self.url}/api/v1/scheduler", json=body, headers=headers
        ) as response:
            self.last_text = await response.text()
            return response.status

    async def close(self) -> None:
        if self.reader:
            self.reader.cancel()
        if self.response:
            self.response.close()


def launch(
    offer: dict[str, Any],
    task_id: str,
    cpus: float = 1.0,
    duration: float | None = None,
    ports: tuple[int, int] | None = None,
) -> dict[str, Any]:
    resources = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 128}},
    ]
    if ports:
        resources.append(
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": ports[0], "end": ports[1]}]},
            }
        )
    task: dict[str, Any] = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": resources,
        "command": {"shell": True, "value": "true"},
    }
    if duration is not None:
        task["labels"] = {"labels": [{"key": "pmm.duration", "value": str(duration)}]}
    return {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            "filters": {"refuse_seconds": 0},
        },
    }
