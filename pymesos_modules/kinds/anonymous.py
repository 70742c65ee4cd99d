"""The anonymous kind: modules that only live, created at start and destroyed at stop.

They have no function table; what they do happens in create()/destroy() and
through the host API (logging, metrics).  A Python anonymous module is any
object with a ``close()`` method.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pymesos_modules.kinds.base import NativeModule, register_kind


@runtime_checkable
class AnonymousModule(Protocol):
    """An anonymous module: it exists, and it can be closed."""

    def close(self) -> None:
        """Release whatever the module holds."""


class NativeAnonymousModule(NativeModule):
    """A native anonymous module instance."""

    kind = "anonymous"


register_kind("anonymous", NativeAnonymousModule, AnonymousModule)
