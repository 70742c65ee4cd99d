"""Master side of the agent protocol (docs/agent-protocol.md), ``POST /api/v1/agent``.

REGISTER/REREGISTER open a RecordIO stream that carries the master's commands
(RUN_TASK, KILL_TASK, ACKNOWLEDGED, ...); the agent's other calls are answered
202. The stream object is the agent's :class:`~pymesos_modules.master.state.AgentBackend`,
so the master drives a remote agent exactly as it drives a simulated one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import secrets
from typing import Any

from aiohttp import web

from pymesos_modules import jsonio
from pymesos_modules.http.common import (
    StreamSink,
    Unauthenticated,
    error_response,
    heartbeats,
    read_call,
    write_events,
)
from pymesos_modules.kinds.http_authenticator import HttpAuthenticator
from pymesos_modules.master import resources as res
from pymesos_modules.master.master import CallError, Master, _id

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
AGENT_HEADER = "Pmm-Agent-Id"
#: The token of an agent's current connection (its stream), as Mesos-Stream-Id is a
#: framework's: every other call of the agent carries it, so only the agent that opened
#: the stream can speak for that agent id (docs/agent-protocol.md).
STREAM_HEADER = "Mesos-Stream-Id"


class AgentStream(StreamSink):
    """Commands for one connected agent, queued for its HTTP stream (an AgentBackend)."""

    def __init__(self, master: Master, principal: str | None = None) -> None:
        super().__init__()
        self.master = master
        #: unguessable: whoever presents it speaks on this connection
        self.token = secrets.token_urlsafe(24)
        #: who opened the stream (with --authenticate_agents), else None
        self.principal = principal

    def run_task(self, framework_id: str, task: dict[str, Any]) -> None:
        """Ask the agent to launch ``task``."""
        framework = self.master.frameworks.get(framework_id)
        info = framework.info if framework is not None else {}
        body = {"framework_id": {"value": framework_id}, "framework_info": info, "task": task}
        self.send({"type": "RUN_TASK", "run_task": body})

    def run_task_group(
        self, framework_id: str, executor: dict[str, Any], tasks: list[dict[str, Any]]
    ) -> None:
        """Ask the agent to launch a task group on its executor (Mesos' RunTaskGroupMessage)."""
        framework = self.master.frameworks.get(framework_id)
        body = {
            "framework_id": {"value": framework_id},
            "framework_info": framework.info if framework is not None else {},
            "executor": executor,
            "task_group": {"tasks": tasks},
        }
        self.send({"type": "RUN_TASK_GROUP", "run_task_group": body})

    def shutdown_executor(self, framework_id: str, executor_id: str) -> None:
        """Ask the agent to shut an executor down (the scheduler's SHUTDOWN call)."""
        body = {"framework_id": {"value": framework_id}, "executor_id": {"value": executor_id}}
        self.send({"type": "SHUTDOWN_EXECUTOR", "shutdown_executor": body})

    def kill_task(self, framework_id: str, task_id: str) -> None:
        """Ask the agent to kill a task."""
        body = {"framework_id": {"value": framework_id}, "task_id": {"value": task_id}}
        self.send({"type": "KILL_TASK", "kill_task": body})

    def message(self, framework_id: str, executor_id: str, data: bytes) -> None:
        """Forward a framework message to an executor."""
        body = {
            "framework_id": {"value": framework_id},
            "executor_id": {"value": executor_id},
            "data": base64.b64encode(data).decode(),
        }
        self.send({"type": "FRAMEWORK_MESSAGE", "framework_message": body})

    def shutdown_framework(self, framework_id: str) -> None:
        """The framework is gone from the master: the agent kills all of its tasks."""
        body = {"framework_id": {"value": framework_id}}
        self.send({"type": "SHUTDOWN_FRAMEWORK", "shutdown_framework": body})

    def acknowledge(self, framework_id: str, task_id: str, uuid: str) -> None:
        """The framework acknowledged a status update: the agent may stop resending it."""
        body = {
            "framework_id": {"value": framework_id},
            "task_id": {"value": task_id},
            "uuid": uuid,
        }
        self.send({"type": "ACKNOWLEDGED", "acknowledged": body})


def _attributes(items: Any) -> dict[str, Any]:
    """Mesos Attribute JSON -> {name: text or number}; CallError names the bad entry."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise CallError(400, "attributes must be a list of Attribute objects")
    out: dict[str, Any] = {}
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise CallError(400, f"attributes[{index}] needs a non-empty 'name'")
        if kind == "TEXT" and isinstance((item.get("text") or {}).get("value"), str):
            out[name] = item["text"]["value"]
        elif kind == "SCALAR" and isinstance((item.get("scalar") or {}).get("value"), int | float):
            out[name] = float(item["scalar"]["value"])
        else:
            raise CallError(400, f"attribute '{name}' must be TEXT or SCALAR with a value")
    return out


def _agent_of(master: Master, request: web.Request, call: dict[str, Any]) -> str:
    agent_id = _id(call.get("agent_id"), "agent_id")
    header = request.headers.get(AGENT_HEADER)
    if header is not None and header != agent_id:
        raise CallError(400, f"'{AGENT_HEADER}' header '{header}' does not match agent_id")
    if agent_id not in master.agents:
        raise CallError(404, f"agent '{agent_id}' is not registered; REREGISTER first")
    return agent_id


class _IdInUse(CallError):
    """409: the agent id has a live connection.  Retry-After says when the master will
    have given up on it if it is dead but still open (the ping timeout): an agent that
    restarted may try again then, anyone else gets the same answer."""

    def __init__(self, agent_id: str, ping_timeout: float | None) -> None:
        super().__init__(409, f"agent '{agent_id}' is connected already")
        self.retry_after = str(math.ceil(ping_timeout or 60.0))


class AgentApi:
    """The ``/api/v1/agent`` handler and the liveness timers of connected agents."""

    def __init__(
        self,
        master: Master,
        reregister_timeout: float,
        ping_timeout: float | None = None,
        authenticator: HttpAuthenticator | None = None,
    ) -> None:
        self.master = master
        #: with --authenticate_agents: every agent call must pass it (HTTP Basic against
        #: --credentials), and an agent id stays with the principal that registered it
        self.authenticator = authenticator
        self.principals: dict[str, str] = {}
        self.reregister_timeout = reregister_timeout
        #: seconds without any call from a connected agent before it counts as lost
        #: (Mesos: agent_ping_timeout x max_agent_ping_timeouts); None: never
        self.ping_timeout = ping_timeout
        self.streams: dict[str, AgentStream] = {}
        self.last_seen: dict[str, float] = {}
        self._removals: dict[str, asyncio.TimerHandle] = {}
        self._marking: set[asyncio.Future[None]] = set()

    def close(self) -> None:
        """End every agent stream and cancel pending removals."""
        for stream in list(self.streams.values()):
            stream.close()
        for timer in self._removals.values():
            timer.cancel()
        self._removals.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one agent call; bad calls get Mesos-style statuses and change nothing."""
        try:
            principal = self._authenticate(request)
            call = await read_call(request, "agent")
            kind = call["type"]
            if kind in ("REGISTER", "REREGISTER"):
                return await self._register(request, call, kind, principal)
            agent_id = _agent_of(self.master, request, call)
            stream = self._own_stream(request, agent_id)
            self.last_seen[agent_id] = asyncio.get_running_loop().time()
            if kind == "UPDATE":
                self._update(agent_id, stream, call["update"])
            elif kind == "UPDATE_OVERSUBSCRIBED":
                body = call["update_oversubscribed"]
                try:
                    revocable = res.from_json(body.get("resources", []), "oversubscribed")
                except res.ResourceError as exc:
                    raise CallError(400, str(exc)) from None
                self.master.update_oversubscribed(agent_id, revocable)
            elif kind == "MESSAGE":
                body = call["message"]
                self.master.executor_message(
                    agent_id,
                    _id(body.get("framework_id"), "message.framework_id"),
                    _id(body.get("executor_id"), "message.executor_id"),
                    body["data"],
                )
            elif kind == "EXITED_EXECUTOR":
                body = call["exited_executor"]
                self.master.executor_exited(
                    agent_id,
                    _id(body.get("framework_id"), "exited_executor.framework_id"),
                    _id(body.get("executor_id"), "exited_executor.executor_id"),
                    body.get("status", -1),
                )
        except Unauthenticated as exc:
            return exc.response()
        except _IdInUse as exc:
            return web.Response(
                status=exc.status, text=exc.message, headers={"Retry-After": exc.retry_after}
            )
        except CallError as exc:
            return error_response(exc.status, exc.message)
        return web.Response(status=202)

    def _authenticate(self, request: web.Request) -> str | None:
        """The agent's principal with --authenticate_agents (else None); 401 if it has none."""
        if self.authenticator is None:
            return None
        result = self.authenticator.authenticate(request.headers)
        if result.principal is None:
            raise Unauthenticated(result.status, result.message, result.challenge)
        return result.principal

    def _own_stream(self, request: web.Request, agent_id: str) -> AgentStream:
        """The agent's live stream, if this call came from whoever opened it; else CallError.

        A call for an agent id is only taken with the token of that agent's current
        connection (sent with REGISTERED): nobody else can speak for the agent.
        """
        stream = self.streams.get(agent_id)
        if stream is None or stream.closed:
            raise CallError(409, f"agent '{agent_id}' is not connected; REREGISTER first")
        token = request.headers.get(STREAM_HEADER)
        if token is None:
            raise CallError(400, f"agent calls must carry the '{STREAM_HEADER}' header")
        if not secrets.compare_digest(token, stream.token):
            raise CallError(
                403, f"the '{STREAM_HEADER}' of this call is not agent '{agent_id}' connection's"
            )
        return stream

    def _update(self, agent_id: str, stream: AgentStream, body: dict[str, Any]) -> None:
        framework_id = _id(body.get("framework_id"), "update.framework_id")
        status = body["status"]
        task_id = _id(status.get("task_id"), "update.status.task_id")
        if not self.master.status_update(agent_id, framework_id, status):
            # Nobody to deliver it to: acknowledge it ourselves so the agent stops resending.
            stream.acknowledge(framework_id, task_id, status["uuid"])

    async def _register(
        self, request: web.Request, call: dict[str, Any], kind: str, principal: str | None
    ) -> web.StreamResponse:
        body = call.get(kind.lower())
        if not isinstance(body, dict):
            raise CallError(400, f"{kind} needs '{kind.lower()}'")
        version = body.get("protocol_version")
        if not isinstance(version, int):
            raise CallError(400, f"{kind} needs an integer protocol_version")
        if version != PROTOCOL_VERSION:
            raise CallError(
                409, f"agent protocol version {version}; this master speaks {PROTOCOL_VERSION}"
            )
        hostname = body.get("hostname")
        if not isinstance(hostname, str) or not hostname:
            raise CallError(400, f"{kind}.hostname must be a non-empty string")
        wanted = body.get("agent_id")
        agent_id = (
            _id(wanted, f"{kind}.agent_id") if wanted is not None or kind == "REREGISTER" else None
        )
        try:
            resources = res.from_json(body.get("resources", []), f"{kind}.resources")
        except res.ResourceError as exc:
            raise CallError(400, str(exc)) from None
        attributes = _attributes(body.get("attributes"))
        tasks = body.get("tasks", [])
        if not isinstance(tasks, list):
            raise CallError(400, f"{kind}.tasks must be a list")
        # Checked once here, before the registry is written, and handed on.
        listing = self.master.listing(
            tasks, body.get("frameworks", []), body.get("executor_infos", [])
        )
        stream = AgentStream(self.master, principal)
        if kind == "REREGISTER" and agent_id is not None and not self.master.admissible(agent_id):
            # Mesos: an agent the registry never admitted is told to shut down
            # (ours kills its tasks, forgets its id and registers anew).
            logger.warning("agent %s re-registered but was never admitted: shut down", agent_id)
            return await self._shut_down(request, agent_id)
        if agent_id is not None and agent_id in self.master.agents:
            owner = self.principals.get(agent_id)
            if self.authenticator is not None and owner is not None and owner != principal:
                raise CallError(
                    403, f"agent '{agent_id}' registered as principal '{owner}', not '{principal}'"
                )
            old = self.streams.get(agent_id)
            token = request.headers.get(STREAM_HEADER)
            if (
                old is not None
                and not old.closed
                and (token is None or not secrets.compare_digest(token, old.token))
            ):
                # Only the agent on that connection may replace it (it proves so with the
                # connection's token, e.g. after a half-open connection): anyone else
                # claiming a live agent's id would take over its tasks.
                raise _IdInUse(agent_id, self.ping_timeout)
            if old is not None:
                old.close()
            self.master.reconnect_agent(agent_id, stream)
        else:
            agent_id = await self.master.admit_agent(
                stream,
                hostname,
                resources,
                attributes,
                agent_id=agent_id,
                listing=listing,
            )
        timer = self._removals.pop(agent_id, None)
        if timer is not None:
            timer.cancel()
        self.streams[agent_id] = stream
        if principal is not None:
            self.principals[agent_id] = principal
        return await self._serve(request, agent_id, stream, listing.keys, listing.executor_keys)

    async def _shut_down(self, request: web.Request, agent_id: str) -> web.StreamResponse:
        """Answer with one SHUTDOWN event, then end the stream."""
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        message = f"agent {agent_id} is not admitted by this master's registry"
        with contextlib.suppress(ConnectionResetError):
            shutdown = {"type": "SHUTDOWN", "shutdown": {"message": message}}
            await response.write(jsonio.record(shutdown))
            await response.write_eof()
        return response

    async def _serve(
        self,
        request: web.Request,
        agent_id: str,
        stream: AgentStream,
        listed: frozenset[tuple[str, str]],
        listed_executors: frozenset[tuple[str, str]],
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "application/json",
                AGENT_HEADER: agent_id,
                STREAM_HEADER: stream.token,
            },
        )
        interval = self.master.flags.heartbeat_interval
        if self.ping_timeout is not None and self.master.flags.agent_ping_timeout > 0:
            # Mesos pings every agent_ping_timeout: a live agent must hear a ping
            # (and answer it) well before agent_ping_timeout x max_agent_ping_timeouts.
            interval = min(interval, self.master.flags.agent_ping_timeout)
        stream.send(
            {
                "type": "REGISTERED",
                "registered": {
                    "agent_id": {"value": agent_id},
                    "master_id": self.master.master_id,
                    "protocol_version": PROTOCOL_VERSION,
                    "heartbeat_interval_seconds": interval,
                },
            }
        )
        if self.master.agents.get(agent_id) is not None:  # after REGISTERED, as Mesos
            self.master.reconcile_agent(agent_id, listed, listed_executors)
        self.last_seen[agent_id] = asyncio.get_running_loop().time()
        heartbeat = asyncio.create_task(heartbeats(stream, interval))
        watchdog = asyncio.create_task(self._watchdog(agent_id, stream))
        try:
            # The server cancels this handler as soon as the agent's connection drops
            # (handler_cancellation), so a killed agent is noticed at once, not at the
            # next ping: hence everything that can wait is inside this try.
            await response.prepare(request)
            await write_events(response, stream)
        except (ConnectionResetError, asyncio.CancelledError):
            logger.info("agent %s stream closed by the agent", agent_id)
        finally:
            heartbeat.cancel()
            watchdog.cancel()
            stream.closed = True
            if self.streams.get(agent_id) is stream:
                self._lost(agent_id)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _watchdog(self, agent_id: str, stream: AgentStream) -> None:
        """End the stream of an agent that stopped answering: an open socket is not a live agent."""
        if self.ping_timeout is None:
            return
        loop = asyncio.get_running_loop()
        while not stream.closed:
            await asyncio.sleep(self.ping_timeout / 4)
            silent = loop.time() - self.last_seen.get(agent_id, loop.time())
            if silent > self.ping_timeout and not stream.closed:
                logger.warning("agent %s silent for %.1f s; treating it as lost", agent_id, silent)
                stream.close()

    def _lost(self, agent_id: str) -> None:
        """The agent's stream ended: deactivate it, remove it if it does not come back."""
        del self.streams[agent_id]
        self.master.disconnect_agent(agent_id)
        loop = asyncio.get_running_loop()
        self._removals[agent_id] = loop.call_later(self.reregister_timeout, self._remove, agent_id)

    def _remove(self, agent_id: str) -> None:
        self._removals.pop(agent_id, None)
        if agent_id not in self.streams:
            logger.warning("agent %s did not re-register in time: unreachable", agent_id)
            task = asyncio.ensure_future(self.master.mark_unreachable(agent_id))
            # Held until done: the loop keeps only a weak reference to a task.
            self._marking.add(task)
            task.add_done_callback(self._marking.discard)
