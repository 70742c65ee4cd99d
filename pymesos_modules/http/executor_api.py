"""The agent's v1 executor HTTP API, ``POST /api/v1/executor`` (Mesos' src/slave/http.cpp).

Calls SUBSCRIBE, UPDATE, MESSAGE and HEARTBEAT, as JSON.  SUBSCRIBE opens
a RecordIO stream (``<length>\\n<json>``, as the scheduler API) carrying
SUBSCRIBED, LAUNCH, LAUNCH_GROUP, KILL, ACKNOWLEDGED, MESSAGE, SHUTDOWN,
ERROR and HEARTBEAT (every 30 s); the other calls are answered 202.  A bad
call changes nothing and gets Mesos' answer: 400 (unparsable, invalid,
unknown framework or executor), 401 (no valid executor token, with
``--executor_secret_key``: :mod:`pymesos_modules.agent.executor_auth`), 403 (a
call before SUBSCRIBE, or a token of another executor), 405 (not a POST), 406
(SUBSCRIBE that accepts no JSON), 415 (not JSON), 503 (the agent is still
recovering).  What the calls do is :mod:`pymesos_modules.agent.executors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from pymesos_modules.agent.executor_auth import ExecutorAuthenticator, ExecutorAuthError
from pymesos_modules.agent.executors import HEARTBEAT_INTERVAL, ExecutorCallError
from pymesos_modules.http.common import (
    StreamSink,
    Unauthenticated,
    error_response,
    heartbeats,
    read_call,
    write_events,
)
from pymesos_modules.master.master import CallError

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent
    from pymesos_modules.agent.records import Executor

logger = logging.getLogger(__name__)

PATH = "/api/v1/executor"
CALLS = ("SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT")


def _accepts_json(request: web.Request) -> bool:
    """The Accept header allows JSON (no header: anything is acceptable, as Mesos)."""
    accept = request.headers.get("Accept")
    if not accept:
        return True
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {"application/json", "application/*", "*/*"})


def add_routes(app: web.Application, agent: Agent) -> None:
    """Serve the executor API of ``agent`` on ``app``."""

    async def executor_call(request: web.Request) -> web.StreamResponse:
        try:
            if agent.recovering:
                raise CallError(503, "Agent has not finished recovery")
            authenticator = agent.flags.executor_authenticator
            # Before the body is read, as Mesos authenticates before its handler runs.
            claims = (
                authenticator.authenticate(request.headers.get("Authorization"))
                if authenticator is not None
                else None
            )
            call = await read_call(request, "executor")
            kind = call["type"]
            if kind not in CALLS:
                raise CallError(400, f"Failed to validate Executor::Call: unknown type '{kind}'")
            ids = call["framework_id"]["value"], call["executor_id"]["value"]
            ExecutorAuthenticator.authorize(claims, *ids)
            if kind == "HEARTBEAT":
                return web.Response(status=202)
            if kind == "SUBSCRIBE" and not _accepts_json(request):
                raise CallError(406, "Expecting 'Accept' to allow 'application/json'")
            room = agent.executor_room
            executor = room.executor_for_call(call)
            # The token of an executor's earlier container is not this one's.
            ExecutorAuthenticator.authorize(claims, *ids, executor.container.container_id)
            if kind == "SUBSCRIBE":
                return await _subscribe(request, agent, executor, call.get("subscribe"))
            if kind == "UPDATE":
                room.update(executor, call.get("update"))
            else:
                room.message(executor, call.get("message"))
        except ExecutorAuthError as exc:
            return Unauthenticated(exc.status, exc.message, exc.challenge).response()
        except (CallError, ExecutorCallError) as exc:
            return error_response(exc.status, exc.message)
        return web.Response(status=202)

    app.router.add_post(PATH, executor_call)


async def _subscribe(
    request: web.Request, agent: Agent, executor: Executor, body: object
) -> web.StreamResponse:
    sink = StreamSink()
    agent.executor_room.subscribe(executor, body, sink)  # raises before anything is sent
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    heartbeat = asyncio.create_task(heartbeats(sink, HEARTBEAT_INTERVAL))
    try:
        await write_events(response, sink)
    except (ConnectionResetError, asyncio.CancelledError):
        logger.info("executor %s closed its stream", executor)
    finally:
        heartbeat.cancel()
        agent.executor_room.disconnected(executor, sink)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
