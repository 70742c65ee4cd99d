"""HTTP API of the master on aiohttp: the Mesos v1 scheduler API and operator endpoints.

- ``POST /api/v1/scheduler``: SUBSCRIBE opens a RecordIO stream
  (``<length>\\n<json>``) with a ``Mesos-Stream-Id`` header; SUBSCRIBED comes
  first, HEARTBEAT every ``heartbeat_interval`` seconds. Every other call must
  carry that stream id and is answered ``202 Accepted``.
- ``/version``, ``/state`` (also ``/state.json``, ``/master/state[.json]``; built
  once per change of the master's state, see master/views.py), ``/metrics/snapshot``,
  ``/metrics`` (Prometheus text), ``/flags``, ``/health``, ``/modules``;
  ``POST /teardown``.
- Leadership (docs/ha.md): a standby master answers the scheduler and agent
  APIs and ``/teardown`` with ``307 Temporary Redirect`` and the leader's
  ``Location`` (``//host:port/path``, as Mesos), or ``503`` while no master
  leads; ``/master/redirect`` redirects to the leader from any master.

Bad requests get Mesos' status codes (400, 403, 405, 413, 415) and a plain
text message, never a 500, and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from pymesos_modules import __version__, jsonio, redact
from pymesos_modules.http.agent_api import AgentApi
from pymesos_modules.http.common import (
    MAX_BODY,
    StreamSink,
    Unauthenticated,
    error_response,
    heartbeats,
    json_response,
    read_body,
    read_call,
    send_json_bytes,
    write_events,
)
from pymesos_modules.kinds.http_authenticator import HttpAuthenticator
from pymesos_modules.master.leadership import Leadership
from pymesos_modules.master.master import CallError, Master, SubscriptionDenied

logger = logging.getLogger(__name__)

STREAM_HEADER = "Mesos-Stream-Id"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def close_streams(app: web.Application) -> None:
    """End every open subscription stream (before shutting the server down)."""
    for sink in list(app[STREAMS]):
        sink.close()
    app[AGENTS].close()


#: Application key of the set of open subscription streams.
STREAMS: web.AppKey[set] = web.AppKey("streams", set)
#: Application key of the agent protocol handler (docs/agent-protocol.md).
AGENTS: web.AppKey[AgentApi] = web.AppKey("agents", AgentApi)


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner to serve ``app`` with.

    ``handler_cancellation``: a handler is cancelled when its client's connection
    drops, so a stream whose agent or framework died ends at once rather than at
    its next write.  Streams are closed by stop(): do not wait long for stragglers.
    """
    return web.AppRunner(app, shutdown_timeout=2.0, handler_cancellation=True)


def create_app(
    master: Master,
    flags: dict[str, Any] | None = None,
    modules: Callable[[], list[dict[str, Any]]] | None = None,
    leadership: Leadership | None = None,
    agent_authenticator: HttpAuthenticator | None = None,
) -> web.Application:
    """The master's aiohttp application (``leadership`` None: always the leader).

    ``agent_authenticator`` (with --authenticate_agents) must vouch for every agent call.
    """
    app = web.Application(client_max_size=MAX_BODY)

    def not_leading(request: web.Request, path: str | None = None) -> web.Response | None:
        """None on the leader; else 307 to the leader (503 when none), as Mesos' standby."""
        if leadership is None or leadership.elected:
            return None
        leader = leadership.leader
        if leader is None or leadership.is_self(leader):
            return web.Response(status=503, text="No leading master; try again")
        address = leader.get("address") or {}
        host = leader.get("hostname") or address.get("hostname") or address.get("ip")
        location = f"//{host}:{address.get('port', leader.get('port'))}"
        return web.Response(
            status=307, headers={"Location": location + (request.path if path is None else path)}
        )

    def gated(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return not_leading(request) or await handler(request)

        return handle

    streams: set[StreamSink] = set()
    app[STREAMS] = streams

    def flag(name: str) -> bool:
        return bool((flags or {}).get(name, False))

    def principal_of(request: web.Request) -> str:
        """Who the --http_authenticators vouch for; Unauthenticated (401/403) if nobody."""
        result = None
        for authenticator in master.http_authenticators:
            try:
                result = authenticator.authenticate(request.headers)
            except Exception as exc:  # a failing authenticator vouches for nobody
                logger.exception("http authenticator %r failed", authenticator)
                raise Unauthenticated(401, f"Authentication failed: {exc}", None) from None
            if result.principal is not None:
                return result.principal
        if result is None:
            raise CallError(401, "authentication is required but no --http_authenticators is set")
        raise Unauthenticated(result.status, result.message, result.challenge)

    def authenticate(request: web.Request) -> str | None:
        """The principal of a scheduler request; CallError(401) if nobody vouches for it."""
        if not master.flags.authenticate_frameworks:
            return None
        return principal_of(request)

    def operator(realm: str, handler: Handler) -> Handler:
        """``handler`` behind --authenticate_http_<realm> (Mesos' readonly/readwrite realms)."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            if flag(f"authenticate_http_{realm}"):
                try:
                    principal_of(request)
                except Unauthenticated as exc:
                    return exc.response()
                except CallError as exc:
                    return error_response(exc.status, exc.message)
            return await handler(request)

        return guarded

    async def scheduler(request: web.Request) -> web.StreamResponse:
        try:
            principal = authenticate(request)
            call = await read_call(request, "scheduler")
            if call["type"] == "SUBSCRIBE":
                return await subscribe(request, call, principal)
            stream_id = request.headers.get(STREAM_HEADER)
            if stream_id is None:
                raise CallError(
                    400, f"all non-subscribe calls should include the '{STREAM_HEADER}' header"
                )
            framework = master.framework_for_call(call, stream_id)
            owner = framework.info.get("principal")
            if master.flags.authenticate_frameworks and principal != owner:
                # Mesos: a call is only taken from the principal that subscribed.
                raise CallError(
                    403,
                    f"Authenticated principal '{principal}' does not match principal "
                    f"'{owner}' of framework {framework.framework_id}",
                )
            master.call(framework, call)
        except Unauthenticated as exc:
            return exc.response()
        except SubscriptionDenied as exc:
            return await _error_stream(request, exc.message)
        except CallError as exc:
            return error_response(exc.status, exc.message)
        return web.Response(status=202)

    async def subscribe(
        request: web.Request, call: dict[str, Any], principal: str | None
    ) -> web.StreamResponse:
        sink = StreamSink()
        framework = master.subscribe(call, sink, principal)
        streams.add(sink)
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", STREAM_HEADER: framework.stream_id or ""},
        )
        heartbeat = asyncio.create_task(heartbeats(sink, master.flags.heartbeat_interval))
        try:
            # The server cancels this handler when the client's connection drops
            # (handler_cancellation): the framework is disconnected at once.
            await response.prepare(request)
            await write_events(response, sink)
        except (ConnectionResetError, asyncio.CancelledError):
            logger.info("framework %s stream closed by the client", framework.framework_id)
        finally:
            heartbeat.cancel()
            streams.discard(sink)
            master.disconnected(framework, sink)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def teardown(request: web.Request) -> web.Response:
        """Mesos' operator ``/teardown``: remove a framework (``frameworkId=<id>`` form body).

        As Mesos, the body is decoded as a query string whatever its content type
        (a multipart body is not a form this endpoint reads: it lacks frameworkId).
        """
        try:
            # Mesos puts /teardown in the read-write realm; --authenticate_frameworks
            # guarded it here before that flag existed, and still does.
            if flag("authenticate_http_readwrite") or master.flags.authenticate_frameworks:
                principal_of(request)
            body = await read_body(request)
        except Unauthenticated as exc:
            return exc.response()
        except CallError as exc:
            return error_response(exc.status, exc.message)
        try:
            form = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError) as exc:
            return error_response(400, f"Unable to decode query string: {exc}")
        values = form.get("frameworkId", [])
        if len(values) != 1 or not values[0]:
            return error_response(400, "Missing 'frameworkId' query parameter in the request body")
        framework_id = values[0]
        if framework_id not in master.frameworks:
            return error_response(400, "No framework found with specified ID")
        master.remove_framework(framework_id)
        return web.Response(status=200)

    async def version(_: web.Request) -> web.Response:
        return json_response(
            {
                "version": "1.11.0",
                "pymesos_modules_version": __version__,
                "build_user": "pymesos-modules",
            }
        )

    #: the last /state answered: (the master's bytes, leadership's fields, the answer)
    decorated: list[tuple[bytes, bytes, bytes]] = []

    async def state(request: web.Request) -> web.StreamResponse:
        # Built once per change of the master's state and shared by every poller
        # (master/views.py); leadership's fields are spliced in, once per build.
        body = await master.state_json()
        if leadership is not None:
            fields: dict[str, Any] = {}
            leadership.decorate_state(fields)
            extra = jsonio.dumps(fields) if fields else b""
            if decorated and decorated[0][0] is body and decorated[0][1] == extra:
                body = decorated[0][2]
            else:
                answer = body[:-1] + b"," + extra[1:] if extra else body
                decorated[:] = [(body, extra, answer)]
                body = answer
        return await send_json_bytes(request, body)

    def metrics() -> dict[str, float]:
        values = master.snapshot_metrics()
        if leadership is not None:
            values["master/elected"] = 1.0 if leadership.elected else 0.0
        return values

    async def snapshot(_: web.Request) -> web.Response:
        return json_response(metrics())

    async def redirect(request: web.Request) -> web.Response:
        """Mesos' ``/master/redirect``: 307 to the leader (itself when leading)."""
        path = request.match_info.get("rest", "")
        suffix = f"/{path}" if path else ""
        if leadership is None or leadership.elected:
            return web.Response(status=307, headers={"Location": f"//{request.host}{suffix}"})
        return not_leading(request, suffix) or web.Response(status=503)

    async def prometheus(_: web.Request) -> web.Response:
        lines = []
        for name, value in sorted(metrics().items()):
            metric = "mesos_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
            lines.append(f"# TYPE {metric} gauge\n{metric} {value}")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def flags_view(_: web.Request) -> web.Response:
        return json_response({"flags": redact.flags(flags or {})})

    async def health(_: web.Request) -> web.Response:
        return web.Response(status=200)

    async def modules_view(_: web.Request) -> web.Response:
        return json_response({"modules": modules() if modules else []})

    app.router.add_post("/api/v1/scheduler", gated(scheduler))
    app.router.add_post("/teardown", gated(teardown))
    app.router.add_post("/master/teardown", gated(teardown))
    ping = master.flags.agent_ping_timeout * master.flags.max_agent_ping_timeouts
    agents = app[AGENTS] = AgentApi(
        master, master.flags.agent_reregister_timeout, ping or None, agent_authenticator
    )
    app.router.add_post("/api/v1/agent", gated(agents.handle))
    app.router.add_get("/master/redirect", redirect)
    app.router.add_get("/master/redirect/{rest:.*}", redirect)
    app.router.add_get("/redirect", redirect)
    # Mesos: /version and /health answer anyone; the rest is the read-only realm.
    app.router.add_get("/version", version)
    app.router.add_get("/health", health)
    for path, handler in [
        ("/state", state),
        ("/state.json", state),
        ("/master/state", state),
        ("/master/state.json", state),
        ("/metrics/snapshot", snapshot),
        ("/metrics", prometheus),
        ("/flags", flags_view),
        ("/modules", modules_view),
    ]:
        app.router.add_get(path, operator("readonly", handler))
    return app


async def _error_stream(request: web.Request, message: str) -> web.StreamResponse:
    """Mesos answers a refused subscription with a stream holding one ERROR event."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        await response.write(jsonio.record({"type": "ERROR", "error": {"message": message}}))
        await response.write_eof()
    return response
