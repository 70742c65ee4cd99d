"""The hook kind: modules told about, and decorating, what master and agent do.

Every hook method is optional.  A native hook module exposes exactly the
methods its ``pmm_hook_vtable`` (``include/pymesos_modules/hook.h``) sets, so
the runtimes' ``getattr(hook, name, None)`` test works the same for native and
Python hooks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pymesos_modules.abi import NativeInstance
from pymesos_modules.kinds.base import NativeModule, native_json, register_kind

#: hook method -> (JSON type of its answer, or None for a notification)
HOOK_METHODS: dict[str, type | None] = {
    "master_launch_task_label_decorator": list,
    "master_agent_lost": None,
    "agent_run_task_label_decorator": list,
    "agent_task_environment_decorator": dict,
    "agent_task_status_decorator": dict,
    "agent_resources_decorator": list,
    "agent_attributes_decorator": list,
}


@runtime_checkable
class Hook(Protocol):
    """A hook module: any object; every method of :data:`HOOK_METHODS` is optional."""


def _argument(value: Any) -> Any:
    """Documents travel as JSON text; ids and names as plain strings."""
    return value if isinstance(value, str) else json.dumps(value)


class NativeHook(NativeModule):
    """A native hook module; has an attribute for each hook its table sets."""

    kind = "hook"

    def __init__(self, instance: NativeInstance) -> None:
        super().__init__(instance)
        for method, answer in HOOK_METHODS.items():
            if instance.has(method):
                setattr(self, method, _caller(instance, method, answer))


def _caller(instance: NativeInstance, method: str, answer: type | None) -> Callable[..., Any]:
    """A function calling ``method`` on ``instance`` (not on the wrapper: no reference cycle,
    so a dropped wrapper destroys its instance at once)."""

    def call(*args: Any) -> Any:
        encoded = [_argument(a) for a in args]
        if answer is None:
            instance.call(method, *[a.encode() for a in encoded])
            return None
        text = instance.call_output(method, *encoded)
        return native_json(instance.name, method, text, answer)

    call.__name__ = method
    call.__doc__ = f"pmm_hook_vtable.{method}"
    return call


register_kind("hook", NativeHook, Hook)
