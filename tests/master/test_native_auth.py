"""The example native authorizer and http_authenticator, loaded by the master through --modules."""

from __future__ import annotations

import json

import pytest
from support.scheduler import Scheduler

from pymesos_modules.abi import NativeCallError
from pymesos_modules.errors import ModuleCreateError
from pymesos_modules.kinds.authorizer import Action, AuthorizationRequest, NativeAuthorizer
from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.kinds.http_authenticator import AuthenticationResult
from pymesos_modules.manager import ModuleManager

STREAM = "Mesos-Stream-Id"


def config(tokens: str, roles: str) -> str:
    return json.dumps(
        {
            "libraries": [
                {
                    "name": "pmm_auth",
                    "modules": [
                        {
                            "name": "org_pymesos_BearerAuthenticator",
                            "parameters": [{"key": "tokens", "value": tokens}],
                        },
                        {
                            "name": "org_pymesos_RoleAuthorizer",
                            "parameters": [
                                {"key": "roles", "value": roles},
                                {"key": "forbidden_users", "value": "root"},
                            ],
                        },
                    ],
                }
            ]
        }
    )


def subscribe_call(role: str) -> dict:
    info = {"user": "tester", "name": "n", "roles": [role]}
    return {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}


@pytest.fixture
async def secured(master_factory):
    return await master_factory(
        allocator="python/drf",
        modules=config("t-alice:alice;t-bob:bob", "prod=alice"),
        authenticate_frameworks=True,
        http_authenticators="bearer",
        authorizers="role_authorizer",
    )


async def test_bearer_tokens_authenticate_and_the_role_authorizer_decides(secured, session):
    url = f"{secured.url}/api/v1/scheduler"
    async with session.post(url, json=subscribe_call("prod")) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="mesos"'
    bad = {"Authorization": "Bearer nope"}
    async with session.post(url, json=subscribe_call("prod"), headers=bad) as response:
        assert response.status == 401 and "Unknown bearer token" in await response.text()
    bob = {"Authorization": "Bearer t-bob"}
    async with session.post(url, json=subscribe_call("prod"), headers=bob) as response:
        assert response.status == 200  # Mesos answers a denied SUBSCRIBE with an ERROR event
        event = json.loads((await response.content.read()).split(b"\n", 1)[1])
        assert event["type"] == "ERROR"
        assert "Not authorized to use roles 'prod' as principal 'bob'" in event["error"]["message"]
    assert secured.master.frameworks == {}
    session.headers.update({"Authorization": "Bearer t-alice"})
    scheduler = Scheduler(secured.url, session)
    try:
        await scheduler.subscribe(roles=("prod",))
        assert secured.master.frameworks[scheduler.framework_id].info["principal"] == "alice"
    finally:
        await scheduler.close()


def test_native_authorizer_and_authenticator_directly():
    manager = ModuleManager()
    authorizer = resolve(
        manager, "role_authorizer", "authorizer", "test", {"roles": "prod=alice;dev=*"}
    )
    assert isinstance(authorizer, NativeAuthorizer)
    ask = authorizer.authorized
    assert ask(AuthorizationRequest(Action.REGISTER_FRAMEWORK, "alice", "prod"))
    assert not ask(AuthorizationRequest(Action.REGISTER_FRAMEWORK, "bob", "prod"))
    assert not ask(AuthorizationRequest(Action.REGISTER_FRAMEWORK, None, "prod"))
    assert ask(AuthorizationRequest(Action.REGISTER_FRAMEWORK, None, "dev"))
    assert ask(AuthorizationRequest(Action.REGISTER_FRAMEWORK, "bob", "other"))
    with pytest.raises(NativeCallError, match=r"authorized.*not a JSON object"):
        authorizer.instance.call_flag("authorized", "[]")
    bearer = resolve(manager, "bearer", "http_authenticator", "test", {"tokens": "x:carol"})
    assert bearer.authenticate({"authorization": "Bearer x"}) == AuthenticationResult("carol")
    assert bearer.authenticate({}).status == 401
    # a secret is never quoted: the entry is named by its position
    with pytest.raises(ModuleCreateError, match="parameter 'tokens': entry 1 is not key:value"):
        resolve(manager, "bearer", "http_authenticator", "test", {"tokens": "x"})
    with pytest.raises(ModuleCreateError, match="missing parameter 'tokens'"):
        resolve(manager, "bearer", "http_authenticator", "test", {})
    authorizer.close()
    bearer.close()
    manager.unload_all()
