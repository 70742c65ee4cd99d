"""Executor authentication: Mesos' ``--executor_secret_key`` and ``--authenticate_http_executors``.

With ``--executor_secret_key`` (a file of at least 32 bytes: the HMAC-SHA256
key) the agent gives every executor it launches a token in
``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``: a JWT (HS256, PyJWT) signed with that
key whose claims name the executor, as Mesos' JWT secret generator does
(``fid``, ``eid``, ``cid``: framework, executor and container id).  The
executor presents it on the executor API as ``Authorization: Bearer <token>``.

- A call with a token: the token must verify (401 otherwise), and its claims
  must name the call's framework and executor, and that executor's current
  container (403 otherwise): an executor speaks only for itself.
- A call without one: refused (401, ``WWW-Authenticate: Bearer
  realm="mesos-agent-executor"``) with ``--authenticate_http_executors``,
  taken without it (as Mesos).

``--authenticate_http_executors`` without ``--executor_secret_key`` refuses to
start, as Mesos' agent.  Tokens are not stored anywhere: an agent restarted
with the same key verifies the tokens its recovered executors hold.  Neither
the key nor a token is ever logged or shown (``/flags`` shows the key's path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

#: The realm of the 401's challenge (Mesos' executor realm).
REALM = "mesos-agent-executor"
#: Where an executor finds its token (Mesos' name).
TOKEN_VARIABLE = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
#: RFC 7518 3.2: an HS256 key has at least as many bytes as the hash.
MIN_KEY_BYTES = 32
_ALGORITHM = "HS256"
#: The claims of an executor's token (Mesos' JWTSecretGenerator).
CLAIMS = ("fid", "eid", "cid")


def without_token(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` less the executor's token: what the executor's tasks and checks get, so
    a task cannot speak for its executor (Mesos gives nested containers none either)."""
    return {name: value for name, value in environ.items() if name != TOKEN_VARIABLE}


class ExecutorAuthError(Exception):
    """A call that its token (or the lack of one) does not let through: 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        #: the WWW-Authenticate header of a 401
        self.challenge = f'Bearer realm="{REALM}"' if status == 401 else None


def load_key(path: str) -> bytes:
    """The key in ``--executor_secret_key``'s file (surrounding whitespace taken off);
    ValueError says what is wrong without showing any of it."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"--executor_secret_key: cannot read {path}: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"--executor_secret_key: {path} holds {len(key)} bytes; an HS256 key needs at "
            f"least {MIN_KEY_BYTES}"
        )
    return key


@dataclass(frozen=True)
class ExecutorAuthenticator:
    """Makes executors' tokens and checks the calls that carry them (see the module docstring)."""

    key: bytes = field(repr=False)
    #: --authenticate_http_executors: a call without a token is refused
    required: bool = False

    def token(self, framework_id: str, executor_id: str, container_id: str) -> str:
        """The token of one executor's container."""
        claims = {"fid": framework_id, "eid": executor_id, "cid": container_id}
        return jwt.encode(claims, self.key, algorithm=_ALGORITHM)

    def environment(self, framework_id: str, executor_id: str, container_id: str) -> dict[str, str]:
        """What the executor's environment gets: its token, under Mesos' name."""
        return {TOKEN_VARIABLE: self.token(framework_id, executor_id, container_id)}

    def authenticate(self, header: str | None) -> dict[str, Any] | None:
        """The claims of the call's ``Authorization`` header; None for a call without one
        that may come unauthenticated.  ExecutorAuthError (401) otherwise."""
        if header is None:
            if self.required:
                raise ExecutorAuthError(401, "Executor calls must carry 'Authorization: Bearer'")
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ExecutorAuthError(401, "Executor calls authenticate with 'Authorization: Bearer'")
        try:
            claims = jwt.decode(
                token.strip(),
                self.key,
                algorithms=[_ALGORITHM],
                options={"require": list(CLAIMS)},
            )
        except jwt.InvalidTokenError:
            # Why it failed (signature, format) would help a forger more than an operator.
            raise ExecutorAuthError(401, "The executor's token is not valid") from None
        return claims

    @staticmethod
    def authorize(
        claims: dict[str, Any] | None,
        framework_id: str,
        executor_id: str,
        container_id: str | None = None,
    ) -> None:
        """ExecutorAuthError (403) unless ``claims`` (if any) name this framework, executor
        and, when given, container: an executor speaks only for itself."""
        if claims is None:
            return
        for claim, value, what in (
            ("fid", framework_id, "framework"),
            ("eid", executor_id, "executor"),
            ("cid", container_id, "container"),
        ):
            if value is not None and claims.get(claim) != value:
                raise ExecutorAuthError(
                    403, f"The executor's token is not valid for this call's {what}"
                )
