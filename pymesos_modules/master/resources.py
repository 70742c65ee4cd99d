"""Resources as the master sees them: scalars by name plus port ranges.

Parses the Mesos resource string syntax (``cpus:4;mem:8192;ports:[31000-32000]``)
and attribute syntax (``rack:r1;zone:a``), the one place that knows them (the
master's simulated agents, ``simulate`` and the agent's ``--resources`` and
``--attributes`` all use it), and converts to and from Mesos v1 JSON
(``{"name", "type", "scalar"|"ranges"}``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Ranges = tuple[tuple[int, int], ...]


class ResourceError(ValueError):
    """A resource string or JSON resource is malformed; the message points at it."""


@dataclass(frozen=True)
class Resources:
    """Scalar amounts by name and port ranges (inclusive)."""

    scalars: Mapping[str, float] = field(default_factory=dict)
    ports: Ranges = ()

    def port_count(self) -> int:
        """How many ports the ranges hold."""
        return sum(end - begin + 1 for begin, end in self.ports)


def parse_resources(text: str, where: str = "resources") -> Resources:
    """Parse ``name:value;name:[a-b,c-d]`` (Mesos' agent --resources syntax, or its JSON form).

    The syntax is read by :func:`parse_resource_list`; this view keeps the
    scalars and the ports, which is all the master's bookkeeping holds, so
    static reservations (``cpus(role):2``) are refused rather than silently
    made unreserved.
    """
    items = parse_resource_list(text, where)
    for item in items:
        reserved = [r.get("role") for r in item.get("reservations", [])]
        if reserved:
            raise ResourceError(
                f"{where}: '{item['name']}({reserved[-1]})': static reservations are parsed "
                f"but not supported by the master yet; drop the role"
            )
    return from_json(items, where)


def _syntax_error(where: str, text: str, at: int, message: str) -> ResourceError:
    """An error naming the flag, saying what is wrong, with a caret under the bad token."""
    return ResourceError(f"{where}: {message}\n  {text}\n  {' ' * at}^")


def _tokens(text: str) -> list[tuple[int, str]]:
    """``;``-separated tokens with their offsets; separators inside [] or {} do not count."""
    tokens, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == ";" and depth <= 0:
            tokens.append((start, text[start:index]))
            start = index + 1
    tokens.append((start, text[start:]))
    out = []
    for offset, token in tokens:
        stripped = token.strip()
        if stripped:
            out.append((offset + len(token) - len(token.lstrip()), stripped))
    return out


def _parse_value(
    where: str, text: str, at: int, name: str, value: str, noun: str = "resource"
) -> tuple[str, dict[str, Any]]:
    """One Mesos Value: ``[a-b,...]`` RANGES, ``{a,b}`` SET, a number SCALAR.

    Returns the type name and the JSON body (``{"ranges": ...}`` etc.).
    """
    if value.startswith("["):
        if not value.endswith("]"):
            raise _syntax_error(where, text, at, f"{noun} '{name}': range list '{value}' lacks ']'")
        ranges = []
        for part in (p.strip() for p in value[1:-1].split(",")):
            begin, dash, end = part.partition("-")
            try:
                low, high = int(begin), int(end if dash else begin)
            except ValueError:
                raise _syntax_error(
                    where, text, at, f"{noun} '{name}': bad range '{part}' (expected begin-end)"
                ) from None
            if low > high or low < 0:
                raise _syntax_error(
                    where, text, at, f"{noun} '{name}': range '{part}' is empty or negative"
                )
            ranges.append({"begin": low, "end": high})
        return "RANGES", {"ranges": {"range": ranges}}
    if value.startswith("{"):
        if not value.endswith("}"):
            raise _syntax_error(where, text, at, f"{noun} '{name}': set '{value}' lacks '}}'")
        items = [p.strip() for p in value[1:-1].split(",") if p.strip()]
        return "SET", {"set": {"item": items}}
    try:
        amount = float(value)
    except ValueError:
        raise _syntax_error(
            where, text, at, f"{noun} '{name}': '{value}' is not a number"
        ) from None
    if not math.isfinite(amount) or amount < 0:
        raise _syntax_error(where, text, at, f"{noun} '{name}': {value} must be finite and >= 0")
    return "SCALAR", {"scalar": {"value": amount}}


def parse_resource_list(text: str, where: str = "resources") -> list[dict[str, Any]]:
    """Mesos resource text -> Mesos v1 JSON ``Resource`` list.

    Accepts ``name:value`` tokens separated by ``;`` where a value is a number,
    ``[a-b,c-d]`` ranges or ``{a,b}`` a set, and ``name(role):value`` for a
    static reservation; or the JSON list form (text starting with ``[``).
    Scalars of the same name and role are summed. ResourceError points at the
    bad token.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise _syntax_error(where, stripped, exc.pos, f"invalid JSON: {exc.msg}") from None
        from_json(items, where)  # validates names, types and values
        return list(items)
    out: list[dict[str, Any]] = []
    for at, token in _tokens(text):
        name, sep, value = token.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise _syntax_error(where, text, at, f"'{token}': expected name:value")
        role = None
        if name.endswith(")") and "(" in name:
            name, _, role = name[:-1].partition("(")
            name, role = name.strip(), role.strip()
            if not role:
                raise _syntax_error(where, text, at, f"'{token}': empty role in parentheses")
        if not name or not all(c.isalnum() or c in "_-./" for c in name):
            raise _syntax_error(where, text, at, f"'{token}': bad resource name '{name}'")
        kind, body = _parse_value(where, text, at + token.index(":") + 1, name, value)
        entry: dict[str, Any] = {"name": name, "type": kind, **body}
        if role is not None and role != "*":
            entry["reservations"] = [{"type": "STATIC", "role": role}]
        same = next(
            (
                e
                for e in out
                if e["name"] == name and e.get("reservations") == entry.get("reservations")
            ),
            None,
        )
        if same is None:
            out.append(entry)
        elif kind == "SCALAR" and same["type"] == "SCALAR":
            same["scalar"]["value"] += body["scalar"]["value"]
        elif kind == "RANGES" and same["type"] == "RANGES":
            same["ranges"]["range"] += body["ranges"]["range"]
        else:
            raise _syntax_error(where, text, at, f"'{name}' is given twice with different types")
    return out


def parse_attributes(text: str, where: str = "attributes") -> list[dict[str, Any]]:
    """Mesos attribute text (``rack:r1;zone:a;level:2;ids:[1-3]``) -> ``Attribute`` JSON.

    As Mesos: a number is SCALAR, ``[a-b]`` RANGES, ``{a,b}`` SET, anything else
    TEXT. An attribute may be given once.
    """
    out: list[dict[str, Any]] = []
    for at, token in _tokens(text):
        name, sep, value = token.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise _syntax_error(where, text, at, f"'{token}': expected name:value")
        if any(a["name"] == name for a in out):
            raise _syntax_error(where, text, at, f"attribute '{name}' is given twice")
        value_at = at + token.index(":") + 1
        if value.startswith(("[", "{")):
            kind, body = _parse_value(where, text, value_at, name, value, "attribute")
        else:
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and math.isfinite(number):
                kind, body = "SCALAR", {"scalar": {"value": number}}
            else:
                kind, body = "TEXT", {"text": {"value": value}}
        out.append({"name": name, "type": kind, **body})
    return out


def subtract_ranges(have: Ranges, take: Iterable[tuple[int, int]]) -> Ranges:
    """``have`` minus ``take`` (both inclusive ranges)."""
    result = list(have)
    for low, high in take:
        next_result = []
        for a, b in result:
            if high < a or low > b:
                next_result.append((a, b))
                continue
            if a < low:
                next_result.append((a, low - 1))
            if high < b:
                next_result.append((high + 1, b))
        result = next_result
    return tuple(sorted(result))


def contains_ranges(have: Ranges, want: Iterable[tuple[int, int]]) -> bool:
    """True when every range in ``want`` lies inside ``have``."""
    return all(any(a <= low and high <= b for a, b in have) for low, high in want)


def to_json(
    resources: Resources,
    role: str | None = None,
    reservation: str | None = None,
    revocable: bool = False,
) -> list[dict[str, Any]]:
    """Mesos v1 JSON resources (``allocation_info`` names the role they are offered in)."""
    out: list[dict[str, Any]] = []

    def decorate(entry: dict[str, Any]) -> dict[str, Any]:
        if role is not None:
            entry["allocation_info"] = {"role": role}
        if reservation is not None:
            entry["reservations"] = [{"type": "DYNAMIC", "role": reservation}]
        if revocable:
            entry["revocable"] = {}
        return entry

    for name, amount in resources.scalars.items():
        if amount > 0:
            out.append(decorate({"name": name, "type": "SCALAR", "scalar": {"value": amount}}))
    if resources.ports:
        ranges = [{"begin": a, "end": b} for a, b in resources.ports]
        out.append(decorate({"name": "ports", "type": "RANGES", "ranges": {"range": ranges}}))
    return out


def from_json(items: Sequence[Any], where: str) -> Resources:
    """Parse Mesos v1 JSON resources; ResourceError names the bad entry."""
    if not isinstance(items, list):
        raise ResourceError(f"{where}: resources must be a list")
    scalars: dict[str, float] = {}
    ports: list[tuple[int, int]] = []
    # Every launched task's resources pass here: the names of entries are only
    # made (f-strings) when one is bad.
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise ResourceError(f"{where}[{i}]: needs a name")
        kind = item.get("type", "SCALAR")
        if kind == "SCALAR":
            value = (item.get("scalar") or {}).get("value")
            if value.__class__ is not float and (
                not isinstance(value, (int, float)) or isinstance(value, bool)
            ):
                raise ResourceError(f"{where}[{i}]: scalar.value must be a number")
            if not 0 <= value < math.inf:  # NaN fails this too
                raise ResourceError(f"{where}[{i}]: {name} must be finite and >= 0, got {value}")
            scalars[name] = scalars.get(name, 0.0) + float(value)
        elif kind == "RANGES" and name == "ports":
            for r in (item.get("ranges") or {}).get("range", []):
                begin, end = r.get("begin"), r.get("end")
                if not isinstance(begin, int) or not isinstance(end, int) or begin > end:
                    raise ResourceError(f"{where}[{i}]: bad port range {r}")
                ports.append((begin, end))
        else:
            raise ResourceError(f"{where}[{i}]: unsupported resource type {kind} for {name}")
    return Resources(scalars, tuple(sorted(ports)) if ports else ())
