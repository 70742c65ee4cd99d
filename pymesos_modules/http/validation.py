"""Parse and validate API calls before they touch the master (the schemas: http/schemas.py).

The schemas are JSON Schema rather than pydantic models: the master works on the
calls as dicts in the protobuf JSON mapping (task infos go on to agents and into
``/state`` as they came), so a validator that checks the dicts in place fits,
where models would mean converting every call and back; the schemas are data
that mirror ``mesos.proto`` and can be read beside it; and a failure carries the
path of the field at fault, which the 400 names.

Two validators are built from the same schemas.  ``fastjsonschema`` compiles each
into Python code once, and checks every call (a 5,000-task ACCEPT in tens of
milliseconds where ``jsonschema`` took most of a second).  It stops at the first
failure, and inside ``allOf``/``if`` it reports the branch rather than the field,
so a call it refuses is checked again by ``jsonschema``, whose best match names
the field at fault (``accept.operations[0].launch: expected object, found
string``): the slow validator only ever runs on bad calls, and it decides.

Before the schema, :func:`parse_json` refuses what a JSON parser lets through
but a protobuf parser would not (and what would crash code further on):
``NaN``/``Infinity``, numbers that overflow a double, integers beyond 64 bits
(Python's own 4,300-digit limit would raise a bare ValueError), and nesting
deeper than protobuf's default recursion limit of 100.  Bodies are decoded by
orjson (:mod:`pymesos_modules.jsonio`); the standard parser, with hooks that check
each number, only reads bodies that orjson refuses (to say exactly why) or that
hold integers too long for orjson to keep exact (it would make them floats).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import cache
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from pymesos_modules import jsonio
from pymesos_modules.http import schemas
from pymesos_modules.ids import id_problem, role_problem

#: Deepest nesting of objects and arrays a call may have (protobuf's default recursion limit).
MAX_DEPTH = 100
#: Integers must fit a protobuf int64/uint64.
_INT_RANGE = (-(2**63), 2**64 - 1)


class InvalidCall(ValueError):
    """A call that is not well-formed; the message names the field at fault."""


def _parse_int(text: str) -> int:
    # Longer than any 64-bit integer: refuse before int() does the (quadratic) work.
    if len(text.lstrip("-")) > 20 or not _INT_RANGE[0] <= (value := int(text)) <= _INT_RANGE[1]:
        raise InvalidCall(f"integer {text[:24]}{'...' if len(text) > 24 else ''} is out of range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidCall(f"number {text[:24]} is out of range")
    return value


def _parse_constant(text: str) -> float:
    raise InvalidCall(f"{text} is not a JSON number")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether objects/arrays in ``value`` nest deeper than ``limit`` (level by level, without
    recursion: a level's children are gathered by list comprehensions, not one by one)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        children: list[Any] = []
        for item in level:
            values = item.values() if type(item) is dict else item
            children += [v for v in values if type(v) is dict or type(v) is list]
        level = children
        depth += 1
    return False


#: An integer literal orjson might not keep exact: 20 digits may exceed uint64 (orjson
#: makes it a float), 19 after a minus sign may be below int64.  Found by mapping every
#: digit to 0 (one C pass, far quicker than a regex); a run inside a string only sends
#: the body to the exact parser, which is slower but agrees.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_INTEGER = b"0" * 19


def _parse_exact(body: bytes) -> Any:
    """The standard parser with a hook on every number: slow, but says exactly what is wrong."""
    try:
        return json.loads(
            body,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError:
        raise InvalidCall(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidCall(f"malformed JSON: {exc}") from None
    except ValueError as exc:  # InvalidCall from a hook, or int() refusing
        raise InvalidCall(str(exc)) from None


def parse_json(body: bytes) -> Any:
    """Decode a request body as JSON; InvalidCall says why it cannot be a call."""
    if _LONG_INTEGER in body.translate(_DIGITS_TO_ZERO):
        value = _parse_exact(body)
    else:
        try:
            value = jsonio.loads(body)
        except jsonio.DecodeError as exc:
            _parse_exact(body)  # raises, with the exact reason, for nearly everything
            # What only orjson refuses (a lone surrogate): no protobuf string holds it.
            raise InvalidCall(f"malformed JSON: {exc}") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise InvalidCall(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _format(problem: Callable[[str], str | None]) -> Callable[[object], bool]:
    """A fastjsonschema format check from one of ids.py's ``*_problem`` functions."""
    return lambda value: not isinstance(value, str) or problem(value) is None


_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("mesos-id", raises=ValueError)
def _is_id(value: object) -> bool:
    if isinstance(value, str) and (problem := id_problem(value)) is not None:
        raise ValueError(problem)
    return True


@_FORMATS.checks("mesos-role", raises=ValueError)
def _is_role(value: object) -> bool:
    if isinstance(value, str) and (problem := role_problem(value)) is not None:
        raise ValueError(problem)
    return True


def _schema(api: str) -> schemas.Schema:
    return {
        "scheduler": schemas.SCHEDULER_CALL,
        "agent": schemas.AGENT_CALL,
        "executor": schemas.EXECUTOR_CALL,
    }[api]


@cache
def _validator(api: str) -> Draft202012Validator:
    """The validator that names the field at fault (only bad calls meet it)."""
    schema = _schema(api)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_FORMATS)


@cache
def _compiled(api: str) -> Callable[[Any], Any]:
    """The schema compiled to Python code (fastjsonschema): what every call meets first."""
    formats = {"mesos-id": _format(id_problem), "mesos-role": _format(role_problem)}
    return fastjsonschema.compile(_schema(api), formats=formats)


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "call"


def _describe(error: ValidationError) -> str:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{_where([*path, missing])}: required field missing"
    if error.validator == "format" and error.cause is not None:
        return f"{_where(path)}: {error.cause}"
    if error.validator == "type":
        found = type(error.instance).__name__
        found = {"dict": "object", "list": "array", "str": "string", "NoneType": "null"}.get(
            found, found
        )
        return f"{_where(path)}: expected {error.validator_value}, found {found}"
    message = error.message
    if len(message) > 200:
        message = message[:200] + "..."
    return f"{_where(path)}: {message}"


def validate_call(api: str, call: Any) -> dict[str, Any]:
    """``call`` if it is a well-formed ``api`` ("scheduler", "agent" or "executor") call,
    else InvalidCall.

    The message names the field at fault (``accept.operations[0].launch: expected
    object, found string``).
    """
    if not isinstance(call, dict):
        raise InvalidCall("a call must be a JSON object")
    try:
        _compiled(api)(call)
        return call
    except fastjsonschema.JsonSchemaValueException:
        pass  # refused: the full validator says where (and has the last word)
    error = best_match(_validator(api).iter_errors(call), key=_relevance)
    if error is not None:
        raise InvalidCall(_describe(error))
    return call


def _relevance(error: ValidationError) -> Any:
    # Prefer the deepest error (it names the actual field) over an if/then wrapper.
    return (len(error.absolute_path), error.validator not in ("if", "allOf", "anyOf"))
