"""The hook kind: modules told about, and decorating, what master and agent do.

Every hook method is optional.  A native hook module exposes exactly the
methods its ``pmm_hook_vtable`` (``include/pymesos_modules/hook.h``) sets, so
``getattr(hook, name, None)`` works the same for native and Python hooks.

:class:`HookChain` is the one place that runs ``--hooks`` in order for the
master and the agent: each hook sees the previous hook's result, ``None``
means "no change", and a hook that raises or answers a document of the wrong
shape is logged with its name and skipped (as Mesos' HookManager does: a
failing hook never fails the task).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from pymesos_modules.abi import NativeCallError, NativeInstance
from pymesos_modules.kinds.base import NativeModule, native_json, register_kind

logger = logging.getLogger(__name__)

_V = TypeVar("_V")

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
    """A hook module: any object; every method of :data:`HOOK_METHODS` is optional.

    The methods, when present, have these signatures (``None`` = no change)::

        master_launch_task_label_decorator(task_info, framework_info, agent_id) -> labels
        master_agent_lost(agent_id, hostname) -> None
        agent_run_task_label_decorator(task_info, framework_info, agent_info) -> labels
        agent_task_environment_decorator(task_info, environment) -> environment
        agent_task_status_decorator(framework_id, status)
            -> {"labels": labels, "container_status": {...}}  (either key optional)
        agent_resources_decorator(agent_info) -> [Resource, ...]
        agent_attributes_decorator(agent_info) -> [Attribute, ...]

    where labels are ``[{"key": ..., "value": ...}]`` and documents are Mesos
    v1 JSON.  They are not declared here because a runtime-checkable Protocol
    would then demand all of them.
    """


def _argument(value: Any) -> Any:
    """Documents travel as JSON text; ids and names as plain strings."""
    return value if isinstance(value, str) else json.dumps(value)


class NativeHook(NativeModule):
    """A native hook module; has an attribute for each hook its table sets.

    Calls on one instance are serialized, as hook.h promises modules.
    """

    kind = "hook"

    def __init__(self, instance: NativeInstance) -> None:
        super().__init__(instance)
        lock = threading.Lock()
        for method, answer in HOOK_METHODS.items():
            if instance.has(method):
                setattr(self, method, _caller(instance, lock, method, answer))


def _caller(
    instance: NativeInstance, lock: threading.Lock, method: str, answer: type | None
) -> Callable[..., Any]:
    """A function calling ``method`` on ``instance`` (not on the wrapper: no reference cycle,
    so a dropped wrapper destroys its instance at once)."""

    def call(*args: Any) -> Any:
        encoded = [_argument(a) for a in args]
        if answer is None:
            with lock:
                instance.call(method, *[a.encode() for a in encoded])
            return None
        with lock:
            text = instance.call_output(method, *encoded)
        return native_json(instance.name, method, text, answer)

    call.__name__ = method
    call.__doc__ = f"pmm_hook_vtable.{method}"
    return call


register_kind("hook", NativeHook, Hook)


class BadHookAnswer(ValueError):
    """A hook answered a document of the wrong shape (the chain logs and skips it)."""


def _labels(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise BadHookAnswer(f"labels must be a list, not {type(value).__name__}")
    for index, label in enumerate(value):
        if not isinstance(label, dict) or not isinstance(label.get("key"), str):
            raise BadHookAnswer(f"labels[{index}] must be an object with a string 'key'")
        if not isinstance(label.get("value", ""), str):
            raise BadHookAnswer(f"labels[{index}].value must be a string")
    return value


def _environment(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadHookAnswer(f"the environment must be an object, not {type(value).__name__}")
    for key, item in value.items():
        valid = isinstance(key, str) and isinstance(item, str) and key and "=" not in key
        if not valid or "\0" in key + item:
            raise BadHookAnswer(f"environment variable {key!r}={item!r} is not a valid string pair")
    return value


def _status(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadHookAnswer(f"a status decoration must be an object, not {type(value).__name__}")
    if "labels" in value:
        _labels(value["labels"])
    if "container_status" in value and not isinstance(value["container_status"], dict):
        raise BadHookAnswer("container_status must be an object")
    return value


def _objects(what: str) -> Callable[[Any], list[dict[str, Any]]]:
    def check(value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise BadHookAnswer(f"{what} must be a list of objects")
        return value

    return check


def _nothing(value: Any) -> None:
    return None


#: hook method -> check of its answer (raises BadHookAnswer)
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "master_launch_task_label_decorator": _labels,
    "master_agent_lost": _nothing,
    "agent_run_task_label_decorator": _labels,
    "agent_task_environment_decorator": _environment,
    "agent_task_status_decorator": _status,
    "agent_resources_decorator": _objects("resources"),
    "agent_attributes_decorator": _objects("attributes"),
}


def _with_labels(document: dict[str, Any], labels: list[dict[str, str]]) -> dict[str, Any]:
    return {**document, "labels": {"labels": list(labels)}}


class HookChain:
    """``--hooks`` in flag order, as one object the master and the agent call.

    ``names`` (default: each hook's ``name`` attribute, else its class name)
    are what log messages call the hooks.  Every ``decorate_*`` method returns
    the decorated value (the input, unchanged, when no hook changes it); the
    inputs are never modified in place.
    """

    def __init__(self, hooks: Iterable[Any], names: Sequence[str] | None = None) -> None:
        self.hooks = list(hooks)
        if names is None:
            names = [str(getattr(h, "name", None) or type(h).__name__) for h in self.hooks]
        if len(names) != len(self.hooks):
            raise ValueError(f"HookChain: {len(self.hooks)} hooks but {len(names)} names")
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.hooks)

    def implements(self, method: str) -> bool:
        """True when some hook of the chain has ``method`` (lets a runtime skip building
        documents nobody reads)."""
        return any(getattr(h, method, None) is not None for h in self.hooks)

    def run(
        self,
        method: str,
        arguments: Callable[[_V], tuple[Any, ...]],
        value: _V,
        wrap: Callable[[_V, Any], _V] | None = None,
    ) -> _V:
        """Run ``method`` of every hook that has it, in order.

        ``arguments(value)`` builds a hook's arguments from the current value; a
        hook's checked answer becomes the next value (``wrap(value, answer)``
        when given, e.g. to put labels back into a TaskInfo).
        """
        if method not in _CHECKS:
            raise ValueError(f"HookChain: unknown hook method '{method}'")
        for name, hook in zip(self.names, self.hooks, strict=True):
            function = getattr(hook, method, None)
            if function is None:
                continue
            try:
                answer = function(*arguments(value))
                if answer is not None:
                    checked = _CHECKS[method](answer)
                    value = checked if wrap is None else wrap(value, checked)
            except Exception as exc:  # a failing hook never fails the task (Mesos)
                # A Python hook's traceback helps its author; a native one has none to give.
                python = not isinstance(exc, (NativeCallError, BadHookAnswer))
                logger.warning(
                    "hook '%s' %s() failed, skipped: %s", name, method, exc, exc_info=python
                )
        return value

    def decorate_master_task(
        self, task_info: dict[str, Any], framework_info: dict[str, Any], agent_id: str
    ) -> dict[str, Any]:
        """The TaskInfo with the labels of ``master_launch_task_label_decorator``."""
        return self.run(
            "master_launch_task_label_decorator",
            lambda task: (task, framework_info, agent_id),
            task_info,
            wrap=_with_labels,
        )

    def agent_lost(self, agent_id: str, hostname: str) -> None:
        """Tell every hook with ``master_agent_lost`` that an agent was removed."""
        self.run("master_agent_lost", lambda _: (agent_id, hostname), None)

    def decorate_agent_task(
        self, task_info: dict[str, Any], framework_info: dict[str, Any], agent_info: dict[str, Any]
    ) -> dict[str, Any]:
        """The TaskInfo with the labels of ``agent_run_task_label_decorator``."""
        return self.run(
            "agent_run_task_label_decorator",
            lambda task: (task, framework_info, agent_info),
            task_info,
            wrap=_with_labels,
        )

    def decorate_environment(
        self, task_info: dict[str, Any], environment: dict[str, str]
    ) -> dict[str, str]:
        """The task's environment after ``agent_task_environment_decorator``."""
        return self.run(
            "agent_task_environment_decorator", lambda env: (task_info, dict(env)), environment
        )

    def decorate_status(self, framework_id: str, status: dict[str, Any]) -> dict[str, Any]:
        """The TaskStatus with the labels and container_status hooks answer (each replaces
        the status' own, as Mesos' agent does)."""

        def merge(current: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
            decorated = dict(current)
            if "labels" in answer:
                decorated["labels"] = {"labels": list(answer["labels"])}
            if "container_status" in answer:
                decorated["container_status"] = answer["container_status"]
            return decorated

        return self.run(
            "agent_task_status_decorator", lambda s: (framework_id, s), status, wrap=merge
        )

    def decorate_resources(self, agent_info: dict[str, Any]) -> list[dict[str, Any]]:
        """The agent's Resource list after ``agent_resources_decorator``."""
        return self.run(
            "agent_resources_decorator",
            lambda resources: ({**agent_info, "resources": resources},),
            list(agent_info.get("resources") or []),
        )

    def decorate_attributes(self, agent_info: dict[str, Any]) -> list[dict[str, Any]]:
        """The agent's Attribute list after ``agent_attributes_decorator``."""
        return self.run(
            "agent_attributes_decorator",
            lambda attributes: ({**agent_info, "attributes": attributes},),
            list(agent_info.get("attributes") or []),
        )
