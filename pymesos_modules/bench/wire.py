"""A lean HTTP/1.1 client for the master benchmarks: many simulated agents and frameworks.

The benchmark drives the master through its real HTTP APIs from one process
sharing two cores with it, so the client must cost little: requests are
written as prepared bytes, responses read with asyncio streams, and RecordIO
streams (``<length>\\n<json>`` records inside chunked transfer encoding)
decoded record by record.  It speaks only what the master answers
(``Content-Length`` or chunked bodies, no compression).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pymesos_modules.jsonio import dumps, loads


class WireError(Exception):
    """The server answered something this client does not expect."""


@dataclass(frozen=True)
class Endpoint:
    """Where the master listens."""

    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``http://HOST:PORT`` -> Endpoint."""
        parts = urlsplit(url if "//" in url else f"http://{url}")
        if parts.hostname is None or parts.port is None:
            raise WireError(f"no host and port in {url!r}")
        return cls(parts.hostname, parts.port)


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """One HTTP/1.1 request, ready to write (keep-alive; JSON body if any)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: bench"]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def post_json(path: str, call: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    """A POST of ``call`` as JSON."""
    return request_bytes("POST", path, dumps(call), headers)


@dataclass
class Response:
    """Status line and headers; the body is read separately."""

    status: int
    headers: dict[str, str]
    chunked: bool


async def read_head(reader: asyncio.StreamReader) -> Response:
    """Status line and headers of one response."""
    line = await reader.readline()
    if not line:
        raise WireError("connection closed before a response")
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise WireError(f"not an HTTP response: {line!r}")
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    return Response(int(parts[1]), headers, chunked)


async def read_body(reader: asyncio.StreamReader, head: Response) -> bytes:
    """The whole body of a response that ends (not a stream)."""
    if head.chunked:
        out = bytearray()
        while True:
            chunk = await _chunk(reader)
            if chunk is None:
                return bytes(out)
            out += chunk
    return await reader.readexactly(int(head.headers.get("content-length", "0")))


async def _chunk(reader: asyncio.StreamReader) -> bytes | None:
    """The next chunk of a chunked body; None at its end."""
    size_line = await reader.readline()
    if not size_line:
        raise WireError("connection closed inside a chunked body")
    size = int(size_line.split(b";")[0].strip(), 16)
    data = await reader.readexactly(size + 2)
    if size == 0:
        return None
    return data[:-2]


@dataclass
class RecordStream:
    """The RecordIO events of a streaming response, one ``next()`` (or a batch) at a time."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    head: Response
    buffer: bytearray = field(default_factory=bytearray)
    #: where the next unread record starts in ``buffer``: records are cut out by
    #: offset and the buffer compacted once per fill, since deleting each record
    #: from the front would move the rest of a large chunk once per record.
    offset: int = 0

    async def _fill(self) -> None:
        chunk = await _chunk(self.reader) if self.head.chunked else await self.reader.read(65536)
        if not chunk:
            raise EOFError("the stream ended")
        if self.offset:
            del self.buffer[: self.offset]
            self.offset = 0
        self.buffer += chunk

    def _cut(self) -> bytes | None:
        """The next complete record in the buffer, or None."""
        newline = self.buffer.find(b"\n", self.offset)
        if newline < 0:
            return None
        end = newline + 1 + int(self.buffer[self.offset : newline])
        if len(self.buffer) < end:
            return None
        record = bytes(self.buffer[newline + 1 : end])
        self.offset = end
        return record

    async def next_raw(self) -> bytes:
        """The next record's JSON bytes (EOFError when the stream ends)."""
        while (record := self._cut()) is None:
            await self._fill()
        return record

    async def next_batch(self) -> list[bytes]:
        """Every complete record received so far, at least one (EOFError when the stream ends)."""
        records = [await self.next_raw()]
        while (record := self._cut()) is not None:
            records.append(record)
        return records

    async def next(self) -> dict[str, Any]:
        """The next record, decoded."""
        return loads(await self.next_raw())

    def close(self) -> None:
        """Drop the connection (the server sees the stream end)."""
        self.writer.close()


def split_records(buffer: bytes | bytearray) -> tuple[list[bytes], int]:
    """The complete RecordIO records at the start of ``buffer``, and how many bytes they use."""
    records: list[bytes] = []
    view = memoryview(buffer)
    at = 0
    try:
        while (newline := buffer.find(b"\n", at)) >= 0:
            end = newline + 1 + int(buffer[at:newline])
            if end > len(buffer):
                break
            records.append(bytes(view[newline + 1 : end]))
            at = end
    finally:
        view.release()
    return records, at


class _FirstRecord(asyncio.Protocol):
    """Send one request on a fresh connection; the first RecordIO record of its
    streaming answer (chunked), then hang up.  What a simulated agent does to
    re-register: a bare protocol, as little client work per connection as can be."""

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self.request = request
        self.done = done
        self.data = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        # Any: uvloop's transports do not derive from asyncio.Transport.
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.data += data
        try:
            record = _first_record(self.data)
        except WireError as exc:
            self._finish(exc)
            return
        if record is not None:
            self._finish(record)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(WireError(f"connection closed before a record: {bytes(self.data[:300])!r}"))

    def _finish(self, outcome: bytes | Exception) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.done.done():
            return
        if isinstance(outcome, Exception):
            self.done.set_exception(outcome)
        else:
            self.done.set_result(outcome)


def _first_record(data: bytearray) -> bytes | None:
    """The first record of a chunked RecordIO response in ``data``, None until it is whole.

    WireError for an answer other than 200 (with the start of its body).
    """
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    status = data[: data.find(b"\r\n")].split(b" ", 2)
    if len(status) < 2 or status[1] != b"200":
        raise WireError(f"stream refused: {bytes(data[: head_end + 300])!r}")
    if b"transfer-encoding: chunked" not in data[:head_end].lower():
        raise WireError("a stream must be chunked")
    payload = bytearray()
    at = head_end + 4
    while (line_end := data.find(b"\r\n", at)) >= 0:
        size = int(data[at:line_end].split(b";")[0], 16)
        if size == 0 or line_end + 2 + size + 2 > len(data):
            break
        payload += data[line_end + 2 : line_end + 2 + size]
        at = line_end + 2 + size + 2
        records, _ = split_records(payload)
        if records:
            return records[0]
    return None


async def first_record(endpoint: Endpoint, request: bytes) -> bytes:
    """Open a stream (REGISTER, REREGISTER, SUBSCRIBE), read its first record, hang up."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    await loop.create_connection(lambda: _FirstRecord(request, done), endpoint.host, endpoint.port)
    return await done


async def open_stream(endpoint: Endpoint, request: bytes) -> RecordStream:
    """Send a request that answers with a RecordIO stream (SUBSCRIBE, REGISTER)."""
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, limit=2**24)
    writer.write(request)
    head = await read_head(reader)
    if head.status != 200:
        body = await read_body(reader, head)
        writer.close()
        raise WireError(f"stream refused: {head.status} {body[:300]!r}")
    return RecordStream(reader, writer, head)


class Connection:
    """One keep-alive connection for request/response calls, one at a time."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(self, request: bytes) -> tuple[int, bytes]:
        """Send one prepared request; its status and body."""
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.endpoint.host, self.endpoint.port, limit=2**24
            )
        self._writer.write(request)
        head = await read_head(self._reader)
        body = await read_body(self._reader, head)
        if head.headers.get("connection", "").lower() == "close":
            self.close()
        return head.status, body

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class Pipeline:
    """Calls sent back to back on one keep-alive connection (HTTP/1.1 pipelining).

    :meth:`send` writes a request without waiting for the answers before it;
    a reader task takes the answers in order and checks each is ``expect``.
    One pipelined connection per client keeps many calls in flight without a
    connection (and a round trip on a loaded machine) per call.
    """

    def __init__(self, endpoint: Endpoint, expect: int = 202) -> None:
        self.endpoint = endpoint
        self.expect = expect
        self.sent = 0
        self.answered = 0
        self.error: BaseException | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._progress = asyncio.Event()

    async def open(self) -> None:
        """Connect, and start reading answers."""
        reader, self._writer = await asyncio.open_connection(
            self.endpoint.host, self.endpoint.port, limit=2**24
        )
        self._reader_task = asyncio.create_task(self._answers(reader))

    async def _answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await read_head(reader)
                body = await read_body(reader, head)
                if head.status != self.expect:
                    raise WireError(f"call answered {head.status}: {body[:300]!r}")
                self.answered += 1
                self._progress.set()
        except BaseException as exc:
            if self.error is None and not isinstance(exc, asyncio.CancelledError):
                self.error = exc
            self._progress.set()
            raise

    def send(self, request: bytes) -> None:
        """Write one prepared request (its answer is checked later); raises an earlier error."""
        if self.error is not None:
            raise self.error
        assert self._writer is not None, "open() first"
        self._writer.write(request)
        self.sent += 1

    async def drain(self) -> None:
        """Wait until every request sent so far is answered; raises the first bad answer."""
        while self.answered < self.sent and self.error is None:
            self._progress.clear()
            await self._progress.wait()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Drop the connection and stop reading answers."""
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
