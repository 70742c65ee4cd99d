"""A fake agent that speaks the agent protocol (docs/agent-protocol.md) with aiohttp (tests)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

RESOURCES = [
    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}},
    {"name": "mem", "type": "SCALAR", "scalar": {"value": 4096}},
    {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31005}]}},
]


class FakeAgent:
    """Speaks the agent protocol with aiohttp; keeps the command stream's events in a queue."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.agent_id: str | None = None
        #: the token of the current connection (Mesos-Stream-Id), sent with every call
        self.stream_id: str | None = None
        #: extra headers on every request (e.g. Authorization)
        self.headers: dict[str, str] = {}
        self.response: aiohttp.ClientResponse | None = None
        self.reader: asyncio.Task | None = None

    async def register(self, kind: str = "REGISTER", **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "protocol_version": 1,
            "hostname": "fake",
            "resources": RESOURCES,
            "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r1"}}],
            **extra,
        }
        if self.agent_id and kind == "REREGISTER":
            body["agent_id"] = {"value": self.agent_id}
        call = {"type": kind, kind.lower(): body}
        headers = dict(self.headers)
        if self.stream_id and kind == "REREGISTER":  # proves it is the same agent
            headers["Mesos-Stream-Id"] = self.stream_id
        self.response = await self.session.post(
            f"{self.url}/api/v1/agent", json=call, headers=headers
        )
        assert self.response.status == 200, await self.response.text()
        self.stream_id = self.response.headers.get("Mesos-Stream-Id")
        self.reader = asyncio.create_task(self._read(self.response))
        registered = await self.next("REGISTERED")
        self.agent_id = registered["registered"]["agent_id"]["value"]
        return registered

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        while True:
            line = await response.content.readline()
            if not line:
                return
            await self.events.put(json.loads(await response.content.readexactly(int(line))))

    async def next(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                event = await self.events.get()
                if event["type"] == kind:
                    return event

        return await asyncio.wait_for(wait(), timeout)

    async def call(self, call: dict[str, Any]) -> tuple[int, str]:
        body = {"agent_id": {"value": self.agent_id}, **call}
        headers = {**self.headers, "Mesos-Stream-Id": self.stream_id or ""}
        async with self.session.post(
            f"{self.url}/api/v1/agent", json=body, headers=headers
        ) as response:
            return response.status, await response.text()

    async def update(self, framework_id: str, task_id: str, state: str, uuid: str) -> int:
        status, _ = await self.call(
            {
                "type": "UPDATE",
                "update": {
                    "framework_id": {"value": framework_id},
                    "status": {"task_id": {"value": task_id}, "state": state, "uuid": uuid},
                },
            }
        )
        return status

    async def disconnect(self) -> None:
        if self.reader:
            self.reader.cancel()
        if self.response:
            self.response.close()
