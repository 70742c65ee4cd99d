"""What the HTTP APIs share: RecordIO streams, JSON answers and request parsing."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientPayloadError, web

from pymesos_modules import jsonio
from pymesos_modules.http.validation import InvalidCall, parse_json, validate_call
from pymesos_modules.master.master import CallError

#: Largest request body accepted on any POST endpoint (413 beyond it; docs/http-api.md).
#: An ACCEPT launching 5,000 tasks is about 4 MiB, an agent REREGISTER listing 10,000
#: tasks about 10 MiB: 64 MiB leaves room for both while bounding what one request holds.
MAX_BODY = 64 * 1024 * 1024
#: Bodies larger than this are parsed and validated in a worker thread.
OFF_LOOP_BODY = 256 * 1024


def json_response(value: Any, status: int = 200) -> web.Response:
    """``value`` as a JSON answer (encoded by orjson, pymesos_modules/jsonio.py)."""
    return web.Response(status=status, body=jsonio.dumps(value), content_type=jsonio.CONTENT_TYPE)


#: Bodies larger than this are sent in slices of this size (see send_json_bytes).
SEND_SLICE = 256 * 1024


async def send_json_bytes(request: web.Request, body: bytes) -> web.StreamResponse:
    """Answer ``request`` with ``body``, JSON already encoded (``/state``: megabytes, shared
    by every poller).

    A Response would join the headers and the whole body into a new buffer, then the
    transport would copy what the socket did not take at once: two copies of every
    answer, made on the event loop.  Slices of a memoryview are copied only into the
    transport's buffer, a slice at a time, and each write waits for the socket to
    drain, so other requests are served between slices.
    """
    response = web.StreamResponse(headers={"Content-Type": jsonio.CONTENT_TYPE})
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    for start in range(0, len(body), SEND_SLICE):
        await response.write(view[start : start + SEND_SLICE])
    await response.write_eof()
    return response


class StreamSink:
    """Events for one subscribed framework (or agent, or executor), queued for its stream.

    A plain list the writer takes whole (:meth:`next_batch`), woken by one Event:
    a launch sends two updates per task, and an ``asyncio.Queue`` put and get cost
    a few microseconds per event where an append costs a tenth of one.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = False
        self._ready = asyncio.Event()

    def send(self, event: dict[str, Any]) -> None:
        """Queue an event (never blocks)."""
        if not self.closed:
            self.events.append(event)
            self._ready.set()

    def close(self) -> None:
        """End the stream (after the events already queued)."""
        if not self.closed:
            self.closed = True
            self._ready.set()

    async def next_batch(self) -> list[dict[str, Any]] | None:
        """Every event queued since the last call, at least one; None once closed and drained."""
        while not self.events:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        events, self.events = self.events, []
        return events


def error_response(status: int, message: str) -> web.Response:
    """A plain-text error answer."""
    return web.Response(status=status, text=message)


class Unauthenticated(CallError):
    """Nobody vouches for a request: 401 (or 403) with the authenticator's challenge."""

    def __init__(self, status: int, message: str, challenge: str | None) -> None:
        super().__init__(status, message)
        self.challenge = challenge

    def response(self) -> web.Response:
        """The answer: the status, the message, and WWW-Authenticate when there is a challenge."""
        headers = {"WWW-Authenticate": self.challenge} if self.challenge else None
        return web.Response(status=self.status, text=self.message, headers=headers)


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The whole request body, however many TCP segments (or chunks) it came in.

    CallError 413 when it is (or says it is) larger than ``limit``, 400 when the
    client goes away before sending all of it.  ``content.read(n)`` would return
    only what has arrived so far, so this reads until the end of the body.
    """
    too_large = CallError(413, f"request body larger than {limit} bytes (the documented maximum)")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except (OSError, asyncio.IncompleteReadError, ClientPayloadError) as exc:  # client went away
        raise CallError(400, f"could not read the whole request body: {exc}") from None
    return b"".join(chunks)


async def read_call(request: web.Request, api: str) -> dict[str, Any]:
    """The ``api`` ("scheduler", "agent" or "executor") call in a request, parsed and
    validated against its schema (http/schemas.py); CallError with the status Mesos would
    answer otherwise."""
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type != "application/json":
        raise CallError(415, f"expecting 'Content-Type: application/json', got '{content_type}'")
    body = await read_body(request)
    try:
        if len(body) <= OFF_LOOP_BODY:
            return validate_call(api, parse_json(body))
        # Checking a multi-MB call takes a good part of a second of CPU: off the loop,
        # so heartbeats and other requests go on meanwhile (it touches no state).
        return await asyncio.to_thread(lambda: validate_call(api, parse_json(body)))
    except InvalidCall as exc:
        raise CallError(400, f"Failed to validate the {api} call: {exc}") from None


async def write_events(response: web.StreamResponse, sink: StreamSink) -> None:
    """Write the sink's events into a prepared RecordIO response until the sink closes.

    Events queued while the last write drained (a cycle's offers, a burst of status
    updates) go out together: one buffer, one transport write, one drain, not one each.
    """
    while (events := await sink.next_batch()) is not None:
        await response.write(jsonio.records(events))


async def heartbeats(sink: StreamSink, interval: float) -> None:
    """Send HEARTBEAT into a stream every ``interval`` seconds until it closes."""
    while not sink.closed:
        await asyncio.sleep(interval)
        sink.send({"type": "HEARTBEAT"})
