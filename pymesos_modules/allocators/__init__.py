"""Pure-Python allocators and the names ``--allocator`` knows them by.

``--allocator`` takes either a module name loaded through ``--modules`` (a
native or Python module of kind allocator) or one of the built-in names in
:data:`BUILTIN_ALLOCATORS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from pymesos_modules.config import LibrarySpec, ModulesConfig, ModuleSpec

#: Built-in allocator name -> "module:attribute" of a factory(parameters) -> Allocator.
BUILTIN_ALLOCATORS: dict[str, str] = {
    "python/drf": "pymesos_modules.allocators.drf:DRFAllocator",
    "python/first_fit": "pymesos_modules.allocators.first_fit:FirstFitAllocator",
    "pybind/drf": "pymesos_modules.allocators.pybind_drf:PybindDRFAllocator",
}

#: The module name of the native DRF allocator shipped in the package.
NATIVE_DRF_MODULE = "org_pymesos_DRFAllocator"
#: The library (``lib<name>.so`` in the bundled modules folder) that holds it.
NATIVE_DRF_LIBRARY = "pmm_drf"


def builtin_factory(name: str) -> Callable[..., Any]:
    """The factory behind a built-in allocator name; KeyError lists the known names."""
    try:
        target = BUILTIN_ALLOCATORS[name]
    except KeyError:
        raise KeyError(
            f"unknown allocator '{name}'; built-in: {', '.join(BUILTIN_ALLOCATORS)}"
        ) from None
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def create_builtin(name: str, parameters: Mapping[str, str] | None = None) -> Any:
    """Create a built-in allocator by name."""
    return builtin_factory(name)(dict(parameters or {}), name=name)


#: Names that mean "the bundled native DRF module", for --allocator and the benchmark.
NATIVE_DRF_ALIASES = ("native/drf", NATIVE_DRF_MODULE)


def resolve_allocator(name: str, manager: Any) -> Any:
    """Create the allocator ``--allocator NAME`` asks for.

    ``name`` is a built-in Python allocator (:data:`BUILTIN_ALLOCATORS`), the
    bundled native DRF module (``native/drf``, loaded from the package's own
    modules folder if the configuration did not load it), or any allocator
    module loaded into ``manager`` through --modules.
    """
    if name in BUILTIN_ALLOCATORS:
        return create_builtin(name)
    if name in NATIVE_DRF_ALIASES:
        if NATIVE_DRF_MODULE not in {m.name for m in manager.modules()}:
            spec = LibrarySpec((ModuleSpec(NATIVE_DRF_MODULE),), name=NATIVE_DRF_LIBRARY)
            manager.load(ModulesConfig((spec,)))
        allocator = manager.create(NATIVE_DRF_MODULE, kind="allocator", purpose="--allocator")
        allocator.policy = "drf"
        return allocator
    return manager.create(name, kind="allocator", purpose="--allocator")
