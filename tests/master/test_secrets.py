"""Secrets never appear in an endpoint or a log; operator endpoints can be put behind
authentication (issue 12.4, and the bearer scheme in any case, 12.10)."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from support.scheduler import Scheduler

from pymesos_modules.config import parse_config
from pymesos_modules.errors import ConfigSchemaError
from pymesos_modules.redact import REDACTED

TOKEN = "t-alice-0123456789"
MARKED = "not-a-secret-by-name"


def modules(token: str = TOKEN) -> str:
    return json.dumps(
        {
            "libraries": [
                {
                    "name": "pmm_auth",
                    "modules": [
                        {
                            "name": "org_pymesos_BearerAuthenticator",
                            "parameters": [{"key": "tokens", "value": f"{token}:alice"}],
                        },
                        {
                            "name": "org_pymesos_RoleAuthorizer",
                            "parameters": [
                                {"key": "roles", "value": "prod=alice"},
                                {"key": "forbidden_users", "value": MARKED, "secret": True},
                            ],
                        },
                    ],
                }
            ]
        }
    )


@pytest.fixture
async def bearer(master_factory):
    return await master_factory(
        allocator="python/drf",
        modules=modules(),
        authenticate_frameworks=True,
        http_authenticators="bearer",
        authorizers="role_authorizer",
    )


def test_a_parameter_can_be_marked_secret_and_the_mark_is_checked():
    config = parse_config(modules())
    specs = {m.name: m for m in config.libraries[0].modules}
    assert specs["org_pymesos_RoleAuthorizer"].secret_keys == {"forbidden_users"}
    bad = modules().replace('"secret": true', '"secret": "yes"')
    with pytest.raises(ConfigSchemaError, match=r"parameters\[1\]\.secret: must be true or false"):
        parse_config(bad)


async def test_flags_and_modules_do_not_show_the_token(bearer, session, caplog):
    caplog.set_level(logging.DEBUG)
    for path in ("/flags", "/modules", "/state", "/metrics/snapshot"):
        async with session.get(f"{bearer.url}{path}") as response:
            assert response.status == 200
            text = await response.text()
        assert TOKEN not in text, path
        assert MARKED not in text, path
    async with session.get(f"{bearer.url}/modules") as response:
        described = {m["name"]: m for m in (await response.json())["modules"]}
    tokens = described["org_pymesos_BearerAuthenticator"]["parameters"]
    assert tokens == [{"key": "tokens", "value": REDACTED}]
    roles = described["org_pymesos_RoleAuthorizer"]["parameters"]
    assert {"key": "roles", "value": "prod=alice"} in roles  # not secret: shown
    async with session.get(f"{bearer.url}/flags") as response:
        shown = json.loads((await response.json())["flags"]["modules"])
    assert REDACTED in json.dumps(shown) and "prod=alice" in json.dumps(shown)
    # The token works (in any case of the scheme), and is in no log line either.
    for scheme in ("Bearer", "bearer", "BEARER"):
        scheduler = Scheduler(bearer.url, session)
        session.headers["Authorization"] = f"{scheme} {TOKEN}"
        try:
            await scheduler.subscribe(roles=("prod",))
        finally:
            await scheduler.close()
    assert TOKEN not in caplog.text


def basic(principal: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def credentials(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("ops s3cret\n")
    return str(path)


async def test_readonly_endpoints_need_authentication_when_asked(
    master_factory, credentials, session
):
    running = await master_factory(credentials=credentials, authenticate_http_readonly=True)
    for path in ("/state", "/master/state", "/flags", "/modules", "/metrics", "/metrics/snapshot"):
        async with session.get(f"{running.url}{path}") as response:
            assert response.status == 401, path
            assert response.headers["WWW-Authenticate"] == 'Basic realm="mesos"'
        async with session.get(f"{running.url}{path}", headers=basic("ops", "wrong")) as response:
            assert response.status == 401, path
        async with session.get(f"{running.url}{path}", headers=basic("ops", "s3cret")) as response:
            assert response.status == 200, path
    for path in ("/health", "/version"):  # Mesos answers these to anyone
        async with session.get(f"{running.url}{path}") as response:
            assert response.status == 200, path
    # read-only does not guard /teardown: that is the read-write realm
    async with session.post(f"{running.url}/teardown", data={"frameworkId": "x"}) as response:
        assert response.status == 400


async def test_teardown_needs_authentication_with_readwrite(master_factory, credentials, session):
    running = await master_factory(credentials=credentials, authenticate_http_readwrite=True)
    scheduler = Scheduler(running.url, session)
    await scheduler.subscribe()
    form = {"frameworkId": scheduler.framework_id}
    async with session.post(f"{running.url}/teardown", data=form) as response:
        assert response.status == 401
    assert scheduler.framework_id in running.master.frameworks
    async with session.get(f"{running.url}/state") as response:
        assert response.status == 200  # read-only stays open
    headers = basic("ops", "s3cret")
    async with session.post(f"{running.url}/teardown", data=form, headers=headers) as response:
        assert response.status == 200
    assert scheduler.framework_id not in running.master.frameworks
    await scheduler.close()


async def test_authentication_flags_need_credentials(master_factory):
    from pymesos_modules.kinds.http_authenticator import CredentialsError

    for flag in ("authenticate_http_readonly", "authenticate_http_readwrite"):
        with pytest.raises(CredentialsError, match=f"--{flag}"):
            await master_factory(**{flag: True})
