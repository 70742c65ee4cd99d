"""Resources as the master sees them: scalars by name plus port ranges.

Parses the Mesos resource string syntax (``cpus:4;mem:8192;ports:[31000-32000]``)
and converts to and from Mesos v1 JSON (``{"name", "type", "scalar"|"ranges"}``).
"""

from __future__ import annotations

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


def parse_resources(text: str) -> Resources:
    """Parse ``name:value;name:[a-b,c-d]`` (Mesos' agent --resources syntax)."""
    scalars: dict[str, float] = {}
    ports: list[tuple[int, int]] = []
    for index, token in enumerate(t.strip() for t in text.split(";")):
        if not token:
            continue
        name, sep, value = token.partition(":")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise ResourceError(f"resource {index + 1} ('{token}'): expected name:value")
        value = value.strip()
        if value.startswith("["):
            if not value.endswith("]"):
                raise ResourceError(f"resource '{name}': range list '{value}' lacks ']'")
            if name != "ports":
                raise ResourceError(f"resource '{name}': only ports may be ranges")
            ports.extend(_parse_ranges(name, value[1:-1]))
            continue
        try:
            amount = float(value)
        except ValueError:
            raise ResourceError(f"resource '{name}': '{value}' is not a number") from None
        if not math.isfinite(amount) or amount < 0:
            raise ResourceError(f"resource '{name}': {value} must be finite and >= 0")
        scalars[name] = scalars.get(name, 0.0) + amount
    return Resources(scalars, tuple(sorted(ports)))


def _parse_ranges(name: str, text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        begin, dash, end = part.partition("-")
        try:
            low, high = int(begin), int(end if dash else begin)
        except ValueError:
            raise ResourceError(f"resource '{name}': bad range '{part}'") from None
        if low > high or low < 0:
            raise ResourceError(f"resource '{name}': range '{part}' is empty or negative")
        ranges.append((low, high))
    return ranges


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
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ResourceError(f"{at}: needs a name")
        kind = item.get("type", "SCALAR")
        if kind == "SCALAR":
            value = (item.get("scalar") or {}).get("value")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ResourceError(f"{at}: scalar.value must be a number")
            if not math.isfinite(value) or value < 0:
                raise ResourceError(f"{at}: {item['name']} must be finite and >= 0, got {value}")
            scalars[item["name"]] = scalars.get(item["name"], 0.0) + float(value)
        elif kind == "RANGES" and item["name"] == "ports":
            for r in (item.get("ranges") or {}).get("range", []):
                begin, end = r.get("begin"), r.get("end")
                if not isinstance(begin, int) or not isinstance(end, int) or begin > end:
                    raise ResourceError(f"{at}: bad port range {r}")
                ports.append((begin, end))
        else:
            raise ResourceError(f"{at}: unsupported resource type {kind} for {item['name']}")
    return Resources(scalars, tuple(sorted(ports)))
