"""Framework authentication (http_authenticator), authorization (authorizer) and master hooks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from support.scheduler import STREAM, Scheduler, launch

from pymesos_modules.allocators import resolve_allocator
from pymesos_modules.http.server import create_app
from pymesos_modules.kinds.authorizer import (
    AclError,
    Action,
    AuthorizationRequest,
    LocalAuthorizer,
)
from pymesos_modules.kinds.http_authenticator import (
    BasicAuthenticator,
    CredentialsError,
    load_credentials,
)
from pymesos_modules.manager import ModuleManager
from pymesos_modules.master.master import Master, MasterFlags, SubscriptionDenied
from pymesos_modules.master.resources import parse_resources
from pymesos_modules.master.simulated import InProcessFramework, SimulatedAgent

ACLS: dict[str, Any] = {
    "permissive": True,
    "register_frameworks": [{"principals": {"values": ["alice"]}, "roles": {"type": "NONE"}}],
}
ACLS["run_tasks"] = [
    {"principals": {"type": "ANY"}, "users": {"values": ["nobody", "tester"]}},
    {"principals": {"type": "ANY"}, "users": {"type": "NONE"}},
]


def basic(principal: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def subscribe_call(principal: str | None = None, role: str = "*") -> dict[str, Any]:
    info: dict[str, Any] = {"user": "tester", "name": "auth", "roles": [role]}
    if principal is not None:
        info["principal"] = principal
    return {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}


@pytest.fixture
async def secured(tmp_path, master_factory):
    creds = tmp_path / "credentials.json"
    creds.write_text(
        json.dumps(
            {
                "credentials": [
                    {"principal": "bob", "secret": "s3cret"},
                    {"principal": "alice", "secret": "pw"},
                ]
            }
        )
    )
    return await master_factory(
        allocator="python/drf",
        authenticate_frameworks=True,
        credentials=str(creds),
        acls=json.dumps(ACLS),
    )


@pytest.mark.parametrize(
    "headers",
    [{}, basic("bob", "wrong"), basic("eve", "s3cret"), {"Authorization": "Basic %%%"}],
)
async def test_unauthenticated_subscribe_is_401(secured, session, headers):
    url = f"{secured.url}/api/v1/scheduler"
    async with session.post(url, json=subscribe_call(), headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="mesos"'
    assert secured.master.frameworks == {}


async def test_other_calls_need_authentication_too(secured, session):
    call = {"type": "TEARDOWN", "framework_id": {"value": "x"}}
    async with session.post(
        f"{secured.url}/api/v1/scheduler", json=call, headers={STREAM: "x"}
    ) as response:
        assert response.status == 401


async def test_principal_must_match_the_authenticated_one(secured, session):
    url = f"{secured.url}/api/v1/scheduler"
    headers = basic("bob", "s3cret")
    async with session.post(url, json=subscribe_call("alice"), headers=headers) as response:
        assert response.status == 400
        assert "does not match principal 'alice'" in await response.text()
    assert secured.master.frameworks == {}


async def test_calls_of_a_framework_are_taken_only_from_its_principal(secured, session):
    session.headers.update(basic("bob", "s3cret"))
    scheduler = Scheduler(secured.url, session)
    try:
        await scheduler.subscribe()
        framework = secured.master.frameworks[scheduler.framework_id]
        session.headers.update(basic("alice", "pw"))
        assert await scheduler.call({"type": "TEARDOWN"}) == 403
        assert "principal 'alice' does not match principal 'bob'" in scheduler.last_text
        assert secured.master.frameworks[scheduler.framework_id] is framework
        session.headers.update(basic("bob", "s3cret"))
        assert await scheduler.call({"type": "TEARDOWN"}) == 202
        assert scheduler.framework_id not in secured.master.frameworks
    finally:
        await scheduler.close()


def first_event(body: bytes) -> dict[str, Any]:
    length, _, data = body.partition(b"\n")
    return json.loads(data[: int(length)])


async def test_nobody_takes_over_another_principals_framework(secured, session):
    session.headers.update(basic("bob", "s3cret"))
    scheduler = Scheduler(secured.url, session)
    try:
        await scheduler.subscribe(failover_timeout=60.0)
        framework = secured.master.frameworks[scheduler.framework_id]
        call = subscribe_call()
        call["framework_id"] = {"value": scheduler.framework_id}
        url = f"{secured.url}/api/v1/scheduler"
        async with session.post(url, json=call, headers=basic("alice", "pw")) as response:
            assert response.status == 200  # an ERROR event, as Mesos
            event = first_event(await response.read())
        assert event["type"] == "ERROR"
        assert "from 'bob' to 'alice'" in event["error"]["message"]
        assert secured.master.frameworks[scheduler.framework_id] is framework
        assert framework.connected and framework.info["principal"] == "bob"
        assert await scheduler.call({"type": "REVIVE"}) == 202  # bob's stream still works
    finally:
        await scheduler.close()


async def test_teardown_endpoint_needs_authentication(secured, session):
    session.headers.update(basic("bob", "s3cret"))
    scheduler = Scheduler(secured.url, session)
    try:
        await scheduler.subscribe(failover_timeout=60.0)
        form = {"frameworkId": scheduler.framework_id}
        async with session.post(
            f"{secured.url}/master/teardown", data=form, headers={"Authorization": "Basic x"}
        ) as response:
            assert response.status == 401
        assert scheduler.framework_id in secured.master.frameworks
        async with session.post(f"{secured.url}/master/teardown", data=form) as response:
            assert response.status == 200
        assert scheduler.framework_id not in secured.master.frameworks
    finally:
        await scheduler.close()


async def test_authenticated_framework_subscribes_and_unauthorized_user_gets_task_error(
    secured, session
):
    session.headers.update(basic("bob", "s3cret"))  # the test client's every call
    scheduler = Scheduler(secured.url, session)
    try:
        await scheduler.subscribe()
        framework = secured.master.frameworks[scheduler.framework_id]
        assert framework.info["principal"] == "bob"
        offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
        call = launch(offer, "as-root")
        call["accept"]["operations"][0]["launch"]["task_infos"][0]["command"]["user"] = "root"
        assert await scheduler.call(call) == 202
        status = (await scheduler.next("UPDATE"))["update"]["status"]
        assert status["state"] == "TASK_ERROR"
        assert status["reason"] == "REASON_TASK_UNAUTHORIZED"
        assert "root" in status["message"]
        assert framework.tasks == {}
    finally:
        await scheduler.close()


async def test_role_denied_by_acls_is_an_error_event(secured, session):
    url = f"{secured.url}/api/v1/scheduler"
    async with session.post(url, json=subscribe_call(), headers=basic("alice", "pw")) as response:
        assert response.status == 200
        body = await response.read()
    length, _, data = body.partition(b"\n")
    event = json.loads(data[: int(length)])
    assert event["type"] == "ERROR"
    assert "Not authorized to use roles '*'" in event["error"]["message"]
    assert secured.master.frameworks == {}


def test_local_authorizer_rules():
    authorizer = LocalAuthorizer(ACLS)
    ask = authorizer.authorized
    assert not ask(AuthorizationRequest(Action.REGISTER_FRAMEWORK, "alice", "*"))
    assert ask(AuthorizationRequest(Action.REGISTER_FRAMEWORK, "bob", "*"))
    assert ask(AuthorizationRequest(Action.RUN_TASK, None, "nobody"))
    assert not ask(AuthorizationRequest(Action.RUN_TASK, "bob", "root"))
    strict = LocalAuthorizer({"permissive": False})
    assert not strict.authorized(AuthorizationRequest(Action.RUN_TASK, "bob", "x"))


@pytest.mark.parametrize(
    ("acls", "text"),
    [
        ('{"run_tasks": {}}', "'run_tasks' must be a list"),
        ('{"run_tasks": [{"users": {"type": "SOME"}}]}', "run_tasks[0].users.type"),
        ('{"register_frameworks": [{"principals": {"values": [1]}}]}', "principals.values"),
        ("{oops", "not valid JSON"),
        ("/no/such/acls.json", "cannot read /no/such/acls.json"),
    ],
)
def test_bad_acls_are_named(acls, text):
    with pytest.raises(AclError, match=None) as info:
        LocalAuthorizer.from_flag(acls)
    assert text in str(info.value)


def test_credentials_text_format_and_errors(tmp_path):
    good = tmp_path / "creds"
    good.write_text("bob s3cret\n\nalice pw\n")
    assert load_credentials(f"file://{good}") == {"bob": "s3cret", "alice": "pw"}
    bad = tmp_path / "bad"
    bad.write_text("bob\n")
    with pytest.raises(CredentialsError, match="bad:1: expected 'principal secret'"):
        load_credentials(str(bad))
    result = BasicAuthenticator({"bob": "x"}).authenticate(basic("bob", "x"))
    assert result.principal == "bob"


class RecordingHook:
    """A master hook: adds a label at launch and remembers lost agents."""

    def __init__(self) -> None:
        self.lost: list[tuple[str, str]] = []

    def master_launch_task_label_decorator(
        self, task: dict[str, Any], framework_info: dict[str, Any], agent_id: str
    ) -> list[dict[str, str]]:
        labels = list((task.get("labels") or {}).get("labels", []))
        return [*labels, {"key": "decorated-by", "value": f"hook:{framework_info['name']}"}]

    def master_agent_lost(self, agent_id: str, hostname: str) -> None:
        self.lost.append((agent_id, hostname))


class BrokenHook:
    """A hook that fails: the launch must go on."""

    def master_launch_task_label_decorator(self, *args: Any) -> None:
        raise RuntimeError("boom")


def test_in_process_hooks_decorate_labels_and_hear_of_lost_agents():
    hook = RecordingHook()
    master = Master(
        resolve_allocator("python/drf", ModuleManager()),
        MasterFlags(),
        hooks=[BrokenHook(), hook],
    )
    agent = SimulatedAgent(master, call_later=lambda _delay, callback: callback())
    agent.agent_id = master.register_agent(agent, "h1", parse_resources("cpus:2;mem:1024"))
    framework = InProcessFramework(master, {"user": "tester", "name": "fw", "roles": ["*"]})
    framework.subscribe()
    assert master.allocate_now() == 1
    offer = framework.of_type("OFFERS")[0]["offers"]["offers"][0]
    framework.call(launch(offer, "t1"))
    updates = [e["update"]["status"] for e in framework.of_type("UPDATE")]
    assert [u["state"] for u in updates] == ["TASK_STARTING", "TASK_RUNNING"]
    task = master.frameworks[framework.framework.framework_id].tasks["t1"]
    assert task.info["labels"]["labels"] == [{"key": "decorated-by", "value": "hook:fw"}]
    master.remove_agent(agent.agent_id)
    assert hook.lost == [(agent.agent_id, "h1")]
    lost = framework.of_type("UPDATE")[-1]["update"]["status"]
    assert lost["state"] == "TASK_LOST"


def test_in_process_subscription_denied_by_authorizer():
    master = Master(
        resolve_allocator("python/drf", ModuleManager()),
        MasterFlags(),
        authorizer=LocalAuthorizer(
            {"register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}]}
        ),
    )
    framework = InProcessFramework(
        master, {"user": "u", "name": "fw", "roles": ["*"], "principal": "p"}
    )
    with pytest.raises(SubscriptionDenied, match="as principal 'p'"):
        framework.subscribe()
    assert master.frameworks == {}


class Failing:
    """An authorizer and an http_authenticator that always fail (a module in trouble)."""

    def authorized(self, request: AuthorizationRequest) -> bool:
        raise RuntimeError("authorizer down")

    def authenticate(self, headers: Any) -> Any:
        raise RuntimeError("authenticator down")


async def test_failing_auth_modules_deny_and_never_answer_500(session):
    master = Master(
        resolve_allocator("python/drf", ModuleManager()),
        MasterFlags(authenticate_frameworks=True),
        authorizer=Failing(),
        http_authenticators=[Failing()],
    )
    server = TestServer(create_app(master))
    await server.start_server()
    try:
        url = str(server.make_url("/api/v1/scheduler"))
        async with session.post(url, json=subscribe_call()) as response:
            assert response.status == 401
            assert "Authentication failed: authenticator down" in await response.text()
    finally:
        await server.close()
    framework = InProcessFramework(master, {"user": "u", "name": "fw", "roles": ["*"]})
    with pytest.raises(SubscriptionDenied, match="Not authorized to use roles"):
        framework.subscribe()
    assert master.frameworks == {}
