"""The agent's own HTTP endpoints (aiohttp), with Mesos' paths and JSON shapes.

``/monitor/statistics`` (one entry per running task: executor_id, framework_id,
statistics), ``/metrics/snapshot``, ``/state``, ``/flags``, ``/health``,
``/version``.  The master never calls them: it talks to the agent only over the
stream the agent opens (docs/agent-protocol.md).
"""

from __future__ import annotations

from aiohttp import web

from pymesos_modules import __version__, jsonio, redact
from pymesos_modules.agent.agent import Agent


def _json(value: object) -> web.Response:
    return web.Response(body=jsonio.dumps(value), content_type=jsonio.CONTENT_TYPE)


def create_app(agent: Agent) -> web.Application:
    """The agent's aiohttp application."""
    app = web.Application()

    async def statistics(_: web.Request) -> web.Response:
        return _json(agent.statistics())

    async def snapshot(_: web.Request) -> web.Response:
        return _json(agent.snapshot_metrics())

    async def state(_: web.Request) -> web.Response:
        return _json(agent.state())

    async def flags(_: web.Request) -> web.Response:
        return _json({"flags": redact.flags(agent.flags.raw)})

    async def health(_: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(_: web.Request) -> web.Response:
        return _json({"version": "1.11.0", "pymesos_modules_version": __version__})

    for path, handler in [
        ("/monitor/statistics", statistics),
        ("/monitor/statistics.json", statistics),
        ("/metrics/snapshot", snapshot),
        ("/state", state),
        ("/state.json", state),
        ("/slave(1)/state", state),
        ("/flags", flags),
        ("/health", health),
        ("/version", version),
    ]:
        app.router.add_get(path, handler)
    return app
