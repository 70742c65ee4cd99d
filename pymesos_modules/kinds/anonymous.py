"""The anonymous kind: modules that only live, created at start and destroyed at stop.

They have no function table; what they do happens in create()/destroy() and
through the host API (logging, metrics).  A Python anonymous module is any
object with a ``close()`` method.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pymesos_modules.kinds.base import NativeModule, register_kind
from pymesos_modules.manager import ModuleManager


@runtime_checkable
class AnonymousModule(Protocol):
    """An anonymous module: it exists, and it can be closed."""

    def close(self) -> None:
        """Release whatever the module holds."""


class NativeAnonymousModule(NativeModule):
    """A native anonymous module instance."""

    kind = "anonymous"


register_kind("anonymous", NativeAnonymousModule, AnonymousModule)


def create_anonymous_modules(manager: ModuleManager) -> list[tuple[str, Any]]:
    """(name, instance) of every anonymous module loaded, as Mesos creates them at start.

    On a failure the ones already created are closed before the error propagates.
    """
    created: list[tuple[str, Any]] = []
    try:
        for module in manager.modules("anonymous"):
            created.append((module.name, manager.create(module.name, kind="anonymous")))
    except BaseException:
        for _, instance in reversed(created):
            instance.close()
        raise
    return created
