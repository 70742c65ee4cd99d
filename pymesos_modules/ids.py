"""The rules for names that become paths, log lines and table keys: ids and roles.

One place for both, as Mesos has one (``common::validation::validateID`` and
``roles::validate``): the HTTP schemas use them to refuse a bad call, the
master to refuse a bad task with TASK_ERROR, and the agent may use them before
it makes a sandbox path out of an id.  Each function returns the problem as a
sentence, or None when the name is fine.
"""

from __future__ import annotations

import re

#: Mesos' limit on an id (NAME_MAX: an id becomes a path component on the agent).
MAX_ID_LENGTH = 255

#: Characters Mesos refuses anywhere in a role name component (tab, newline, vertical
#: tab, form feed, carriage return, space, DEL).
_ROLE_SPACE = frozenset("\t\n\v\f\r \x7f")


#: A control character (C0 or DEL): one regex search is a C loop, where a generator
#: over the characters costs about 0.1 us each, and every launched task's ids pass here.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: What an id may not hold: a control character or a path separator.
_ID_BAD = re.compile("[\x00-\x1f\x7f/\\\\]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid framework, task, executor or agent id (Mesos' validateID).

    An id must not be empty, longer than 255 characters, ``.`` or ``..``, nor hold a
    control character (NUL, newline, ...) or a path separator (``/``, ``\\``).
    """
    if not value:
        return "ID must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"ID must not be longer than {MAX_ID_LENGTH} characters"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if _ID_BAD.search(value) is not None:
        return f"{value!r} contains invalid characters (control characters, '/' or '\\')"
    return None


def role_problem(role: str) -> str | None:
    """Why ``role`` is not a valid role name (Mesos' roles::validate), or None.

    ``*`` is the default role.  Otherwise a role is a ``/``-separated path whose
    components are not empty, not ``.``, ``..`` or ``*``, do not start with ``-``
    and hold no whitespace or control character.
    """
    if role == "*":
        return None
    if not role:
        return "role name must not be empty"
    if role.startswith("/") or role.endswith("/"):
        return f"role {role!r} cannot start or end with a slash"
    for component in role.split("/"):
        if not component:
            return f"role {role!r} cannot contain two adjacent slashes"
        if component in (".", "..", "*"):
            return f"role {role!r} cannot contain {component!r} as a component"
        if component.startswith("-"):
            return f"role component {component!r} of {role!r} cannot start with a dash"
        if any(c in _ROLE_SPACE for c in component) or _has_control(component):
            return f"role {role!r} cannot contain whitespace or control characters"
    return None
