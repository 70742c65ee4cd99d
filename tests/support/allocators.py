"""Creating every DRF implementation the same way, for tests and comparisons."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pymesos_modules.allocators import NATIVE_DRF_LIBRARY, NATIVE_DRF_MODULE, create_builtin
from pymesos_modules.config import parse_config
from pymesos_modules.manager import ModuleManager

DRF_IMPLEMENTATIONS = ("python", "native", "pybind")

_manager: ModuleManager | None = None


def native_manager() -> ModuleManager:
    """One process-wide manager with the bundled native DRF module loaded."""
    global _manager
    if _manager is None:
        _manager = ModuleManager()
        _manager.load(
            parse_config(
                json.dumps(
                    {"libraries": [{"name": NATIVE_DRF_LIBRARY, "modules": [NATIVE_DRF_MODULE]}]}
                )
            )
        )
    return _manager


def make_drf(kind: str) -> Any:
    """A fresh, uninitialized DRF allocator of the given implementation."""
    if kind == "python":
        return create_builtin("python/drf")
    if kind == "pybind":
        return create_builtin("pybind/drf")
    if kind == "native":
        return native_manager().create(NATIVE_DRF_MODULE, kind="allocator")
    raise ValueError(kind)


FACTORIES: dict[str, Callable[[], Any]] = {
    k: (lambda k=k: make_drf(k)) for k in DRF_IMPLEMENTATIONS
}
