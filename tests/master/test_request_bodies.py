"""Whole request bodies are read on every POST endpoint, up to a documented maximum (issue 12.1)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from pymesos_modules.http.common import MAX_BODY


def tiny_task(offer, index: int) -> dict:
    return {
        "name": f"t{index}",
        "task_id": {"value": f"task-{index:05d}"},
        "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.0005}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 0.5}},
        ],
        "command": {"shell": True, "value": "true"},
        "labels": {"labels": [{"key": "padding", "value": "x" * 400}]},
    }


async def test_a_multi_megabyte_accept_launches_every_task(master, scheduler, session):
    await scheduler.subscribe()
    offers = await scheduler.next("OFFERS")
    offer = offers["offers"]["offers"][0]
    count = 5000
    call = {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [
                {
                    "type": "LAUNCH",
                    "launch": {"task_infos": [tiny_task(offer, i) for i in range(count)]},
                }
            ],
            "filters": {"refuse_seconds": 0},
        },
    }
    assert len(json.dumps(call)) > 2 * 1024 * 1024
    assert await scheduler.call(call) == 202, scheduler.last_text
    framework = master.master.frameworks[scheduler.framework_id]
    assert len(framework.tasks) == count  # simulated tasks without a duration keep running
    assert master.master.counters["tasks_error"] == 0


async def _raw_post(url: str, path: str, parts: list[bytes], pause: float) -> tuple[int, bytes]:
    """POST ``parts`` as separate TCP writes ``pause`` seconds apart; (status, first bytes)."""
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    body = b"".join(parts)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + parts[0])
    await writer.drain()
    for part in parts[1:]:
        await asyncio.sleep(pause)
        writer.write(part)
        await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    data = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    return int(status_line.split()[1]), data


async def test_a_small_body_sent_in_two_writes_is_read_whole(master):
    call = {
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": {"user": "u", "name": "split", "roles": ["*"]}},
    }
    body = json.dumps(call).encode()
    status, data = await _raw_post(master.url, "/api/v1/scheduler", [body[:20], body[20:]], 0.2)
    assert status == 200, data
    assert b"SUBSCRIBED" in data
    assert [f.name for f in master.master.frameworks.values()] == ["split"]


async def test_an_agent_register_in_two_writes_is_read_whole(bare_master):
    call = {
        "type": "REGISTER",
        "register": {
            "protocol_version": 1,
            "hostname": "split-agent",
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}],
        },
    }
    body = json.dumps(call).encode()
    status, data = await _raw_post(bare_master.url, "/api/v1/agent", [body[:30], body[30:]], 0.2)
    assert status == 200, data
    assert b"REGISTERED" in data


async def test_teardown_in_two_writes_and_garbage_multipart(master, scheduler, session):
    await scheduler.subscribe()
    garbage = (
        b'--b\r\nContent-Disposition: form-data; name="frameworkId"\r\n\r\n\xff\xfe' + b"\r\n--b"
    )
    async with session.post(
        f"{master.url}/teardown",
        data=garbage,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    ) as response:
        assert response.status == 400, await response.text()
    assert scheduler.framework_id in master.master.frameworks
    where = urlsplit(master.url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    body = f"frameworkId={scheduler.framework_id}".encode()
    writer.write(
        (
            f"POST /teardown HTTP/1.1\r\nHost: {where.netloc}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[:5]
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(body[5:])
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.split()[1] == b"200"
    assert scheduler.framework_id not in master.master.frameworks


async def test_bodies_beyond_the_maximum_get_413(master, session):
    url = f"{master.url}/api/v1/scheduler"

    async def chunks():
        piece = b" " * (1024 * 1024)
        for _ in range(MAX_BODY // len(piece) + 1):
            yield piece

    # chunked (no Content-Length): counted as it arrives
    async with session.post(
        url, data=chunks(), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413
    # an announced Content-Length beyond the maximum is refused before it is read
    status, _ = await _raw_post(master.url, "/api/v1/agent", [b"{}"], 0)
    assert status == 400  # a small one is read (and refused as a call)
    where = urlsplit(master.url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    writer.write(
        (
            f"POST /api/v1/agent HTTP/1.1\r\nHost: {where.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n{{"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.split()[1] == b"413"
    assert len(master.master.frameworks) == 0


async def test_a_multi_megabyte_reconcile_answers_every_task_in_order(master):
    """The bench's reconcile-100k once answered 400 ("failed to parse the body into a
    Call") to its 1.4 MB RECONCILE calls: the body was read only as far as it had
    arrived.  The bench's own client sends one here, as big, and reads the answer."""
    from pymesos_modules.bench.master_clients import Scheduler as WireScheduler
    from pymesos_modules.bench.wire import Endpoint

    scheduler = WireScheduler(Endpoint.parse(master.url), "reconciler")
    try:
        await scheduler.subscribe()
        agent = next(iter(master.master.agents))
        ids = [f"gone-{i:05d}" for i in range(20000)]
        tasks = [{"task_id": {"value": t}, "agent_id": {"value": agent}} for t in ids]
        request = scheduler.call_bytes("RECONCILE", {"tasks": tasks})
        assert len(request) > 1024 * 1024
        await scheduler.call(request)  # raises unless answered 202
        assert scheduler.stream is not None
        answered: list[dict] = []
        while len(answered) < len(ids):
            for record in await asyncio.wait_for(scheduler.stream.next_batch(), 30):
                event = json.loads(record)
                if event["type"] == "UPDATE":
                    answered.append(event["update"]["status"])
        # one update per task, in the order asked; the agent is registered without
        # them and the framework is not PARTITION_AWARE: TASK_LOST, as Mesos
        assert [s["task_id"]["value"] for s in answered] == ids
        assert {s["state"] for s in answered} == {"TASK_LOST"}
        assert {s["reason"] for s in answered} == {"REASON_RECONCILIATION"}
    finally:
        scheduler.close()
