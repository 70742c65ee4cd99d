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
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


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
    return request_bytes("POST", path, json.dumps(call).encode(), headers)


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
    """The RecordIO events of a streaming response, one ``next()`` at a time."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    head: Response
    buffer: bytearray = field(default_factory=bytearray)

    async def _fill(self) -> None:
        chunk = await _chunk(self.reader) if self.head.chunked else await self.reader.read(65536)
        if not chunk:
            raise EOFError("the stream ended")
        self.buffer += chunk

    async def next_raw(self) -> bytes:
        """The next record's JSON bytes (EOFError when the stream ends)."""
        while True:
            newline = self.buffer.find(b"\n")
            if newline >= 0:
                length = int(self.buffer[:newline])
                end = newline + 1 + length
                if len(self.buffer) >= end:
                    record = bytes(self.buffer[newline + 1 : end])
                    del self.buffer[:end]
                    return record
            await self._fill()

    async def next(self) -> dict[str, Any]:
        """The next record, decoded."""
        return json.loads(await self.next_raw())

    def close(self) -> None:
        """Drop the connection (the server sees the stream end)."""
        self.writer.close()


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
