"""Executor tokens (--executor_secret_key, --authenticate_http_executors), as Mesos: the
default executor of a real agent presents the token the agent gave it; nobody else can
speak for it; neither the key nor a token shows in an endpoint or a log line."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jwt
import pytest
from support.agent_tasks import agent_args, follow_all, restarted, until
from support.executor_tasks import environment_of, launch_group, sandbox_of

from pymesos_modules import metrics
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.agent.executor_auth import TOKEN_VARIABLE

CHALLENGE = 'Bearer realm="mesos-agent-executor"'


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "executor.key"
    path.write_text(os.urandom(32).hex() + "\n")
    return path


async def test_only_the_executor_with_its_token_speaks_for_it(
    agent_factory, scheduler, session, key, caplog
):
    caplog.set_level(logging.DEBUG)
    running = await agent_factory(executor_secret_key=str(key), authenticate_http_executors=True)
    await launch_group(scheduler, ("t", "env > env.txt; exec sleep 600"))
    await follow_all(scheduler, {"t"}, "TASK_RUNNING")  # the executor got through with its token
    framework_id = scheduler.framework_id
    executor = running.agent.executor_room.find(framework_id, "group-executor")
    assert executor is not None and executor.container.process is not None
    token = environment_of(executor.container.process.pid)[TOKEN_VARIABLE]
    container_id = executor.container.container_id
    secret = key.read_text().strip().encode()

    def bearer(claims: dict[str, str], signed_with: bytes = secret) -> str:
        return "Bearer " + jwt.encode(claims, signed_with, algorithm="HS256")

    own = {"fid": framework_id, "eid": "group-executor", "cid": container_id}
    ids = {"framework_id": {"value": framework_id}, "executor_id": {"value": "group-executor"}}
    heartbeat = {**ids, "type": "HEARTBEAT"}
    message = {**ids, "type": "MESSAGE", "message": {"data": ""}}
    cases: list[tuple[dict[str, Any], str | None, int]] = [
        (heartbeat, None, 401),
        (heartbeat, "Basic Zm9vOmJhcg==", 401),
        (heartbeat, "Bearer", 401),
        (heartbeat, "Bearer not-a-token", 401),
        (heartbeat, bearer(own, os.urandom(32)), 401),  # signed with another key
        (heartbeat, bearer({"fid": framework_id, "eid": "group-executor"}), 401),  # no cid
        (heartbeat, bearer({**own, "eid": "another-executor"}), 403),
        (heartbeat, bearer({**own, "fid": "another-framework"}), 403),
        (message, bearer({**own, "cid": "an-earlier-container"}), 403),
        (heartbeat, f"Bearer {token}", 202),
    ]
    url = f"{running.url}/api/v1/executor"
    for call, authorization, status in cases:
        headers = {"Authorization": authorization} if authorization is not None else {}
        async with session.post(url, json=call, headers=headers) as response:
            text = await response.text()
            assert response.status == status, (authorization, text)
            if status == 401:
                assert response.headers["WWW-Authenticate"] == CHALLENGE
    # Nothing of that reached the executor, and its task runs on.
    assert executor.state == "RUNNING" and executor.sink is not None
    assert running.agent.find(framework_id, "t").state == "TASK_RUNNING"
    # Neither the key nor a token is shown or logged anywhere.
    shown = []
    for path in ("/state", "/flags", "/monitor/statistics"):
        async with session.get(f"{running.url}{path}") as response:
            shown.append(await response.text())
    assert str(key) in shown[1]  # the path is, so operators see which file is used
    sandbox = sandbox_of(running, framework_id)
    # Its task did not get it: a task cannot speak for its executor.
    env = sandbox / "tasks" / "t" / "env.txt"
    await until(lambda: env.exists() and "MESOS_TASK_ID" in env.read_text(), what="env.txt")
    assert TOKEN_VARIABLE not in env.read_text()
    for text in [*shown, caplog.text, *(p.read_text() for p in sandbox.glob("std*"))]:
        assert token not in text and secret.decode() not in text


async def test_with_a_key_alone_calls_without_a_token_are_still_taken(
    agent_factory, scheduler, session, key
):
    running = await agent_factory(executor_secret_key=str(key))
    await launch_group(scheduler, ("t", "exec sleep 600"))
    await follow_all(scheduler, {"t"}, "TASK_RUNNING")
    ids = {
        "framework_id": {"value": scheduler.framework_id},
        "executor_id": {"value": "group-executor"},
    }
    url = f"{running.url}/api/v1/executor"
    async with session.post(url, json={**ids, "type": "HEARTBEAT"}) as response:
        assert response.status == 202
    bad = {"Authorization": "Bearer not-a-token"}
    async with session.post(url, json={**ids, "type": "HEARTBEAT"}, headers=bad) as response:
        assert response.status == 401  # a token given is a token checked


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ({"authenticate_http_executors": True}, "needs --executor_secret_key"),
        ({"executor_secret_key": "short"}, "holds 5 bytes; an HS256 key needs at least 32"),
        ({"executor_secret_key": "missing"}, "cannot read"),
    ],
    ids=["no-key", "short-key", "missing-key"],
)
async def test_bad_executor_authentication_flags_refuse_to_start(master, tmp_path, flags, words):
    short = tmp_path / "short"
    short.write_text("abcde")
    given = dict(flags)
    if given.get("executor_secret_key") == "short":
        given["executor_secret_key"] = str(short)
    elif given.get("executor_secret_key") == "missing":
        given["executor_secret_key"] = str(tmp_path / "missing")
    with pytest.raises(ValueError, match=words) as error:
        await agent_cli.start_agent(
            agent_args(master.url, str(tmp_path / "work"), **given),
            registry=metrics.MetricsRegistry(),
        )
    assert "abcde" not in str(error.value)


async def test_an_agent_restarted_with_the_same_key_lets_its_executors_back_in(
    agent_factory, scheduler, key, tmp_path
):
    """Tokens are not stored: the key verifies them, so a checkpointed default executor
    re-subscribes to the restarted agent with the token it was started with."""
    flags = {"executor_secret_key": str(key), "authenticate_http_executors": True}
    first = await agent_factory(work_dir=tmp_path / "a", **flags)
    await launch_group(scheduler, ("t", "exec sleep 600"))
    await follow_all(scheduler, {"t"}, "TASK_RUNNING")
    second = await restarted(agent_factory, first, **flags)
    executor = second.agent.executor_room.find(scheduler.framework_id, "group-executor")
    assert executor is not None and executor.recovered
    await until(lambda: executor.state == "RUNNING", what="the executor to subscribe again")
    kill = {"type": "KILL", "kill": {"task_id": {"value": "t"}}}
    assert await scheduler.call(kill) == 202, scheduler.last_text
    await follow_all(scheduler, {"t"}, "TASK_KILLED")
