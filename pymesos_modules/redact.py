"""Which configuration values are secrets, and how they are shown: never (docs/security.md).

A module parameter is secret when its ``--modules`` entry says ``"secret": true``
or when its key names a secret (it contains ``secret``, ``token``, ``password``,
``passwd``, ``credential`` or ``private_key``), so a forgotten mark does not
leak the bearer module's ``tokens``.  Every endpoint and log line that shows
parameters or flags goes through this module: ``/modules``, ``/flags`` (the
master's and the agent's), and ``inspect``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

#: What a secret value is shown as.
REDACTED = "********"

_SECRET_WORDS = ("secret", "token", "password", "passwd", "credential", "private_key")

#: Flags whose value may hold module parameters inline (shown with secrets redacted).
MODULE_FLAGS = frozenset({"modules"})


def secret_key(key: str) -> bool:
    """Whether a parameter or flag named ``key`` holds a secret by its name alone."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def parameters(values: Mapping[str, str], marked: Iterable[str] = ()) -> list[dict[str, str]]:
    """``[{"key", "value"}]`` with the values of secret parameters replaced by REDACTED."""
    marked = set(marked)
    return [
        {"key": k, "value": REDACTED if k in marked or secret_key(k) else v}
        for k, v in values.items()
    ]


def modules_flag(value: str) -> str:
    """A ``--modules`` value for display: a path as it is, inline JSON with secrets redacted.

    Inline JSON that cannot be parsed is not shown at all (it might hold a secret
    the parser could not find).
    """
    if not value.lstrip().startswith("{"):
        return value
    try:
        document = json.loads(value)
        for library in document.get("libraries", []):
            for module in library.get("modules", []):
                if not isinstance(module, dict):
                    continue
                for item in module.get("parameters", []):
                    if item.get("secret") is True or secret_key(str(item.get("key", ""))):
                        item["value"] = REDACTED
        return json.dumps(document)
    except (ValueError, AttributeError, TypeError):
        return REDACTED


def flags(values: Mapping[str, Any]) -> dict[str, str]:
    """Flags as ``/flags`` shows them: strings, secrets redacted."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            out[name] = str(value)
        elif name in MODULE_FLAGS:
            out[name] = modules_flag(str(value))
        elif secret_key(name) and not _is_path_flag(name):
            out[name] = REDACTED
        else:
            out[name] = str(value)
    return out


def _is_path_flag(name: str) -> bool:
    # Mesos' --credentials (master), --credential and --executor_secret_key (agent) name
    # files: the path is not the secret, and operators need to see which file is used.
    return name in ("credentials", "credential", "executor_secret_key")
