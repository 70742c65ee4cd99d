"""The bench's HTTP client reads RecordIO however the bytes are cut (no timing here)."""

from __future__ import annotations

import json

import pytest

from pymesos_modules.bench.wire import WireError, _first_record, split_records


def record(event: dict) -> bytes:
    data = json.dumps(event).encode()
    return str(len(data)).encode() + b"\n" + data


def test_split_records_keeps_a_partial_record_for_later():
    events = [{"type": "UPDATE", "n": i} for i in range(5)]
    stream = b"".join(record(e) for e in events)
    for cut in range(len(stream) + 1):
        first, used = split_records(stream[:cut])
        rest, used_rest = split_records(stream[used:])
        assert used + used_rest == len(stream)
        assert [json.loads(r) for r in first + rest] == events


def _response(body_chunks: list[bytes], status: bytes = b"200 OK") -> bytes:
    head = b"HTTP/1.1 " + status + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in body_chunks)


def test_first_record_waits_for_the_whole_record_across_chunks():
    wanted = record({"type": "REGISTERED", "registered": {"agent_id": {"value": "a1"}}})
    data = _response([wanted[:7], wanted[7:], record({"type": "HEARTBEAT"})])
    for cut in range(len(data)):
        found = _first_record(bytearray(data[:cut]))
        assert found is None or found == wanted.split(b"\n", 1)[1]
    assert _first_record(bytearray(data)) == wanted.split(b"\n", 1)[1]


def test_first_record_refuses_an_error_answer():
    data = b"HTTP/1.1 409 Conflict\r\nContent-Length: 9\r\n\r\nconnected"
    with pytest.raises(WireError, match="409"):
        _first_record(bytearray(data))
