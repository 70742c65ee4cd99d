"""Short names for the native modules bundled with the package, and resolving a flag's name.

A module name in an agent's or master's flags (``--isolation``,
``--resource_estimator``, ``--qos_controller``, ``--hooks``, ``--authorizers``,
``--http_authenticators``) is, in order: a module loaded through ``--modules``
(native or Python), or a built-in alias (:data:`BUILTIN_MODULES`) whose
bundled library (``pymesos_modules/lib/lib<library>.so``) is loaded on demand,
as ``--allocator=native/drf`` is on the master (``noop`` names the estimator or
the QoS controller that does nothing, by the flag's kind).  Modules that need parameters
(``fixed``, ``service_discovery``, ``bearer`` ...) are configured through
``--modules`` with their full name; the alias then finds them loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymesos_modules.config import LibrarySpec, ModulesConfig, ModuleSpec
from pymesos_modules.errors import UnknownModuleError
from pymesos_modules.manager import ModuleManager

#: flag value -> (bundled library name, module name) of the built-in native modules.
BUILTIN_MODULES: dict[str, tuple[str, str]] = {
    "posix/rlimits": ("pmm_posix", "org_pymesos_PosixRlimits"),
    "posix/usage": ("pmm_posix", "org_pymesos_PosixUsage"),
    "cgroups/mem": ("pmm_cgroups", "org_pymesos_CgroupsMem"),
    "cgroups/cpu": ("pmm_cgroups", "org_pymesos_CgroupsCpu"),
    "fixed": ("pmm_oversubscription", "org_pymesos_FixedEstimator"),
    "load": ("pmm_oversubscription", "org_pymesos_LoadQoSController"),
    "example_hook": ("pmm_hooks", "org_pymesos_ExampleHook"),
    "service_discovery": ("pmm_hooks", "org_pymesos_ServiceDiscovery"),
    "role_authorizer": ("pmm_auth", "org_pymesos_RoleAuthorizer"),
    "bearer": ("pmm_auth", "org_pymesos_BearerAuthenticator"),
}

#: kind -> flag value -> (library, module): names that mean a different module per kind.
KIND_BUILTIN_MODULES: dict[str, dict[str, tuple[str, str]]] = {
    "resource_estimator": {"noop": ("pmm_oversubscription", "org_pymesos_NoopEstimator")},
    "qos_controller": {"noop": ("pmm_oversubscription", "org_pymesos_NoopQoSController")},
}


def builtin_modules(kind: str | None = None) -> dict[str, tuple[str, str]]:
    """Flag value -> (library, module) of the built-ins a flag of ``kind`` accepts
    (every kind's when None: then a per-kind name such as ``noop`` maps to one of them)."""
    table = dict(BUILTIN_MODULES)
    for k, names in KIND_BUILTIN_MODULES.items():
        if kind is None or k == kind:
            table.update(names)
    return table


def names(value: str | None) -> list[str]:
    """A comma-separated flag as a list of names."""
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def resolve(
    manager: ModuleManager,
    name: str,
    kind: str,
    purpose: str,
    parameters: Mapping[str, str] | None = None,
) -> Any:
    """Create the module ``name`` of ``kind`` (see module docstring).

    ``parameters``, when given, override the configured ones.
    """
    loaded = {m.name for m in manager.modules()}
    builtin = builtin_modules(kind)
    if name not in loaded and name in builtin:
        library, module = builtin[name]
        if module not in loaded:
            spec = LibrarySpec((ModuleSpec(module),), name=library, source=purpose)
            manager.load(ModulesConfig((spec,)))
        name = module
    elif name not in loaded:
        raise UnknownModuleError(
            f"{purpose}: unknown module '{name}' (loaded modules: "
            f"{', '.join(sorted(loaded)) or 'none'}; built-in: {', '.join(sorted(builtin))}); "
            f"load it with --modules"
        )
    return manager.create(name, kind=kind, parameters=parameters, purpose=purpose)
