"""JSON in and out of every HTTP path (scheduler, agent, executor and operator APIs), with orjson.

One place for encoding and decoding, so the hot paths (RecordIO events, ``/state``,
request bodies) all use the fast library, and its few differences from the standard
``json`` module are handled once:

- :func:`dumps` returns compact UTF-8 ``bytes`` (not ``str``, no ``ensure_ascii``
  escapes); keys that are not strings (ints, enums) are written as strings, as
  ``json.dumps`` does, and ``str``/``int`` enums (``TaskState``) by value.
- :func:`loads` refuses what orjson refuses: ``NaN``/``Infinity``, invalid UTF-8 and
  lone surrogates (which no protobuf string may hold, and which no encoder could
  write back out).  Checking a call beyond that (integer ranges, nesting) is
  :mod:`pymesos_modules.http.validation`'s job.

This is a leaf (the standard library and orjson only): the master, the agent and the
HTTP layer all import it.
"""

from __future__ import annotations

from typing import Any

import orjson

#: What a decoding failure raises (a ValueError subclass).
DecodeError = orjson.JSONDecodeError
#: What an encoding failure raises (a TypeError subclass).
EncodeError = orjson.JSONEncodeError

_OPTIONS = orjson.OPT_NON_STR_KEYS

#: The media type of every JSON answer.
CONTENT_TYPE = "application/json"


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    return orjson.dumps(value, option=_OPTIONS)


def dumps_text(value: Any) -> str:
    """``value`` as a JSON ``str`` (for APIs that want text, e.g. aiohttp's ``json_serialize``)."""
    return orjson.dumps(value, option=_OPTIONS).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON; :data:`DecodeError` (a ValueError) when it is not valid JSON."""
    return orjson.loads(data)


def record(event: Any) -> bytes:
    """One RecordIO record (Mesos' streaming format): the JSON's length in bytes, ``\\n``,
    the JSON."""
    data = orjson.dumps(event, option=_OPTIONS)
    return b"%d\n%b" % (len(data), data)


def records(events: list[Any]) -> bytes:
    """Several RecordIO records in one buffer, so a stream writes them in one go."""
    return b"".join([record(event) for event in events])
