"""The authorizer kind: may this principal do this action on this object?

The master asks before a framework registers in a role (``REGISTER_FRAMEWORK``,
object = role) and before a task runs as a user (``RUN_TASK``, object = user).
A Python authorizer implements :class:`Authorizer`; :class:`LocalAuthorizer`
is the built-in one (``--authorizers=local``), driven by Mesos' ``--acls`` JSON.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pymesos_modules.kinds.base import NativeModule, register_kind

logger = logging.getLogger(__name__)


class Action(enum.StrEnum):
    """What is being authorized (the subset of Mesos' actions the master asks about)."""

    REGISTER_FRAMEWORK = "REGISTER_FRAMEWORK"
    RUN_TASK = "RUN_TASK"


@dataclass(frozen=True)
class AuthorizationRequest:
    """One question: ``principal`` (None when unauthenticated) wants ``action`` on ``object``."""

    action: Action
    principal: str | None
    object: str


@runtime_checkable
class Authorizer(Protocol):
    """An authorizer module."""

    def authorized(self, request: AuthorizationRequest) -> bool:
        """True to allow the request."""

    def close(self) -> None:
        """Release whatever the module holds."""


class AclError(ValueError):
    """A malformed ``--acls`` document (the message names the bad entry)."""


#: ``--acls`` key and the name of the object field of each action's ACL entries.
_ACL_KEYS = {
    Action.REGISTER_FRAMEWORK: ("register_frameworks", "roles"),
    Action.RUN_TASK: ("run_tasks", "users"),
}


@dataclass(frozen=True)
class _Entity:
    """Mesos ACL entity: ANY, NONE, or SOME values."""

    kind: str
    values: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: Any, where: str) -> _Entity:
        if not isinstance(raw, dict):
            raise AclError(f"--acls: {where} must be an object with 'values' or 'type'")
        if "values" in raw:
            values = raw["values"]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise AclError(f"--acls: {where}.values must be a list of strings")
            return cls("SOME", frozenset(values))
        kind = raw.get("type", "ANY")
        if kind not in ("ANY", "NONE"):
            raise AclError(f"--acls: {where}.type must be ANY or NONE, found {kind!r}")
        return cls(kind)

    def matches(self, value: str | None) -> bool:
        if self.kind == "ANY":
            return True
        if self.kind == "NONE":
            return value is None
        return value is not None and value in self.values


class LocalAuthorizer:
    """Mesos' local authorizer: ordered ACLs per action, then ``permissive``.

    The first ACL whose principal matches and whose object matches decides:
    an object of type NONE denies, anything else allows. Without a match the
    answer is ``permissive`` (default true, as Mesos).
    """

    kind = "authorizer"

    def __init__(self, acls: Mapping[str, Any] | None = None) -> None:
        acls = dict(acls or {})
        self.permissive = bool(acls.get("permissive", True))
        self._rules: dict[Action, list[tuple[_Entity, _Entity]]] = {}
        for action, (key, field) in _ACL_KEYS.items():
            entries = acls.get(key, [])
            if not isinstance(entries, list):
                raise AclError(f"--acls: '{key}' must be a list")
            rules = []
            for index, entry in enumerate(entries):
                where = f"{key}[{index}]"
                if not isinstance(entry, dict):
                    raise AclError(f"--acls: {where} must be an object")
                principals = _Entity.parse(entry.get("principals", {}), f"{where}.principals")
                rules.append((principals, _Entity.parse(entry.get(field, {}), f"{where}.{field}")))
            self._rules[action] = rules

    @classmethod
    def from_flag(cls, value: str | None) -> LocalAuthorizer:
        """Build from ``--acls``: inline JSON, a path, or ``file://path``."""
        if not value:
            return cls()
        text = value
        if not value.lstrip().startswith("{"):
            path = Path(value.removeprefix("file://"))
            try:
                text = path.read_text()
            except OSError as exc:
                raise AclError(f"--acls: cannot read {path}: {exc.strerror}") from None
        try:
            return cls(json.loads(text))
        except json.JSONDecodeError as exc:
            raise AclError(f"--acls: not valid JSON: {exc}") from None

    def authorized(self, request: AuthorizationRequest) -> bool:
        """Apply the ACLs (see the class docstring)."""
        for principals, objects in self._rules.get(request.action, []):
            if not principals.matches(request.principal):
                continue
            if objects.kind == "NONE":
                return False
            if objects.matches(request.object):
                return True
        return self.permissive

    def close(self) -> None:
        """Nothing to release."""


class NativeAuthorizer(NativeModule):
    """A native authorizer (``pmm_authorizer_vtable``) behind the :class:`Authorizer` Protocol."""

    kind = "authorizer"

    def authorized(self, request: AuthorizationRequest) -> bool:
        """pmm_authorizer_vtable.authorized (a failing call denies)."""
        document: dict[str, Any] = {
            "action": str(request.action),
            "object": {"value": request.object},
        }
        if request.principal is not None:
            document["subject"] = {"value": request.principal}
        return self.instance.call_flag("authorized", json.dumps(document))


register_kind("authorizer", NativeAuthorizer, Authorizer)
