"""What every kind wrapper shares, and the registry kind -> wrapper / Protocol.

:func:`wrap` turns a :class:`~pymesos_modules.abi.NativeInstance` into the
Python object for its kind (``NativeAllocator`` for allocators, ...).  A kind
module (``pymesos_modules.kinds.<kind>``) registers itself with
:func:`register_kind` when imported; :func:`wrap` and :func:`protocol_for`
import it on first use, so the registry needs no central list.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from pymesos_modules.abi import NativeCallError, NativeInstance

_WRAPPERS: dict[str, type[NativeModule]] = {}
_PROTOCOLS: dict[str, type] = {}


class NativeModule:
    """A native module instance as a Python object; owns and destroys the instance.

    Kind wrappers subclass this and add the kind's calls on top of
    :meth:`NativeInstance.call`.
    """

    kind = "anonymous"

    def __init__(self, instance: NativeInstance) -> None:
        self.instance = instance
        self.name = instance.name

    @property
    def parameters(self) -> dict[str, str]:
        """The parameters the instance was created with."""
        return self.instance.parameters

    def close(self) -> None:
        """Destroy the native instance (idempotent)."""
        self.instance.destroy()

    def __enter__(self) -> NativeModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} from {self.instance.library.path}>"


def register_kind(
    kind: str, wrapper: type[NativeModule] | None = None, protocol: type | None = None
) -> None:
    """Register the wrapper class for native modules of ``kind`` and its Protocol."""
    if wrapper is not None:
        _WRAPPERS[kind] = wrapper
    if protocol is not None:
        _PROTOCOLS[kind] = protocol


def _import_kind(kind: str) -> None:
    try:
        importlib.import_module(f"pymesos_modules.kinds.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name != f"pymesos_modules.kinds.{kind}":
            raise


def wrap(instance: NativeInstance) -> Any:
    """The kind's wrapper around ``instance`` (a plain :class:`NativeModule` if none)."""
    kind = instance.info.kind
    if kind not in _WRAPPERS:
        _import_kind(kind)
    return _WRAPPERS.get(kind, NativeModule)(instance)


def protocol_for(kind: str) -> type | None:
    """The runtime-checkable Protocol a Python module of ``kind`` must implement."""
    if kind not in _PROTOCOLS:
        _import_kind(kind)
    return _PROTOCOLS.get(kind)


def native_json(module: str, call: str, text: str, expected: type) -> Any:
    """A module's JSON answer of the ``expected`` type (None when it wrote nothing)."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NativeCallError(module, call, 1, f"answered with invalid JSON: {exc}") from None
    if not isinstance(value, expected):
        raise NativeCallError(
            module, call, 1, f"answered with a JSON {type(value).__name__}, not {expected.__name__}"
        )
    return value
