"""The http_authenticator kind: who is making this HTTP request?

Like Mesos' HTTP authenticator modules: given the request headers, answer with
the authenticated principal, or with the 401/403 to send back. The built-in
:class:`BasicAuthenticator` (``--http_authenticators=basic``) checks HTTP Basic
credentials against Mesos' ``--credentials`` file.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pymesos_modules.abi import NativeCallError
from pymesos_modules.kinds.base import NativeModule, native_json, register_kind

logger = logging.getLogger(__name__)

REALM = "mesos"


@dataclass(frozen=True)
class AuthenticationResult:
    """``principal`` when authenticated; otherwise ``status`` (401 or 403) and a message."""

    principal: str | None = None
    status: int = 200
    message: str = ""
    #: The WWW-Authenticate challenge to send with a 401.
    challenge: str | None = None


@runtime_checkable
class HttpAuthenticator(Protocol):
    """An http_authenticator module."""

    def authenticate(self, headers: Mapping[str, str]) -> AuthenticationResult:
        """Authenticate one request from its headers."""

    def close(self) -> None:
        """Release whatever the module holds."""


class CredentialsError(ValueError):
    """A malformed ``--credentials`` file (the message names the file and line)."""


def load_credentials(value: str) -> dict[str, str]:
    """Read Mesos' ``--credentials``: JSON ``{"credentials": [{"principal", "secret"}]}``
    or text lines ``principal secret``; a path or ``file://path``."""
    path = Path(value.removeprefix("file://"))
    try:
        text = path.read_text()
    except OSError as exc:
        raise CredentialsError(f"--credentials: cannot read {path}: {exc.strerror}") from None
    if text.lstrip().startswith("{"):
        try:
            items = json.loads(text)["credentials"]
            return {str(c["principal"]): str(c["secret"]) for c in items}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CredentialsError(
                f'--credentials: {path}: expected {{"credentials": [{{"principal": ..., '
                f'"secret": ...}}]}}: {exc}'
            ) from None
    credentials = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise CredentialsError(
                f"--credentials: {path}:{number}: expected 'principal secret', found {line!r}"
            )
        credentials[parts[0]] = parts[1]
    return credentials


class BasicAuthenticator:
    """HTTP Basic against a principal -> secret table (Mesos' ``basic`` authenticator)."""

    kind = "http_authenticator"

    def __init__(self, credentials: Mapping[str, str]) -> None:
        self.credentials = dict(credentials)

    def authenticate(self, headers: Mapping[str, str]) -> AuthenticationResult:
        """401 with a Basic challenge unless the Authorization header holds known credentials."""
        challenge = f'Basic realm="{REALM}"'
        header = headers.get("Authorization")
        if header is None:
            return AuthenticationResult(None, 401, "Missing 'Authorization' header", challenge)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return AuthenticationResult(None, 401, "Unsupported authentication scheme", challenge)
        try:
            principal, sep, secret = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return AuthenticationResult(None, 401, "Malformed 'Authorization' header", challenge)
        expected = self.credentials.get(principal)
        if not sep or expected is None or not hmac.compare_digest(expected, secret):
            return AuthenticationResult(None, 401, "Authentication failed", challenge)
        return AuthenticationResult(principal)

    def close(self) -> None:
        """Nothing to release."""


class NativeHttpAuthenticator(NativeModule):
    """A native http_authenticator (``pmm_http_authenticator_vtable``)."""

    kind = "http_authenticator"

    def authenticate(self, headers: Mapping[str, str]) -> AuthenticationResult:
        """pmm_http_authenticator_vtable.authenticate."""
        text = self.instance.call_output("authenticate", json.dumps(dict(headers)))
        answer = native_json(self.name, "authenticate", text, dict) or {}
        principal = answer.get("principal")
        if isinstance(principal, str) and principal:
            return AuthenticationResult(principal)
        status = answer.get("status", 401)
        if status not in (401, 403):
            raise NativeCallError(self.name, "authenticate", 1, f"status {status!r} is not 401/403")
        challenge = answer.get("challenge")
        return AuthenticationResult(
            None,
            status,
            str(answer.get("message", "Authentication failed")),
            challenge if isinstance(challenge, str) else None,
        )


register_kind("http_authenticator", NativeHttpAuthenticator, HttpAuthenticator)
