"""Every call is validated before it touches the master: a bad one is a 4xx naming the field
and changes nothing, never a 5xx (issue 12.2)."""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fake_agent import FakeAgent
from support.scheduler import Scheduler

from pymesos_modules.http import validation

DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_INT = b"1" * 5000


def scheduler_cases(framework_id: str, offer_id: str) -> list[tuple[Any, str]]:
    """(call or raw body, a word the 400 must contain) for the scheduler API."""
    fid = {"value": framework_id}
    offers = [{"value": offer_id}]
    return [
        (b'{"type": "DECLINE", "decline": ' + DEEP + b"}", "nested"),
        (b'{"type": "DECLINE", "framework_id": {"value": "x"}, "n": ' + HUGE_INT + b"}", "range"),
        (b'{"type": "DECLINE", "decline": {"filters": {"refuse_seconds": NaN}}}', "NaN"),
        (b'{"type": "DECLINE", "decline": {"filters": {"refuse_seconds": 1e999}}}', "range"),
        ({"type": "DECLINE", "framework_id": fid, "decline": "x"}, "decline"),
        ({"type": "DECLINE", "framework_id": fid, "decline": {"offer_ids": "x"}}, "offer_ids"),
        ({"type": "DECLINE", "framework_id": fid, "decline": {"offer_ids": offers,
          "filters": {"refuse_seconds": 10**30}}}, "range"),
        ({"type": "ACCEPT", "framework_id": fid, "accept": {"offer_ids": offers,
          "operations": [{"type": "LAUNCH", "launch": "x"}]}}, "operations[0].launch"),
        ({"type": "ACCEPT", "framework_id": fid, "accept": {"offer_ids": offers,
          "operations": [{"type": "LAUNCH", "launch": {"task_infos": "x"}}]}}, "task_infos"),
        ({"type": "ACCEPT", "framework_id": fid, "accept": {"offer_ids": offers,
          "operations": ["x"]}}, "operations[0]"),
        ({"type": "ACCEPT", "framework_id": fid, "accept": {"offer_ids": offers,
          "operations": [{"type": "LAUNCH", "launch": {"task_infos": [5]}}]}}, "task_infos[0]"),
        ({"type": "ACCEPT", "framework_id": fid, "accept": {"offer_ids": offers,
          "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{"task_id": {"value": "t"},
          "agent_id": {"value": "a"}, "resources": [{"name": "cpus", "scalar": "x"}]}]}}]}},
         "resources[0].scalar"),
        ({"type": "ACCEPT", "framework_id": fid, "accept": "x"}, "accept"),
        ({"type": "KILL", "framework_id": fid, "kill": "x"}, "kill"),
        ({"type": "KILL", "framework_id": fid, "kill": {"task_id": "x"}}, "kill.task_id"),
        ({"type": "RECONCILE", "framework_id": fid, "reconcile": {"tasks": [5]}}, "tasks[0]"),
        ({"type": "RECONCILE", "framework_id": fid, "reconcile": "x"}, "reconcile"),
        ({"type": "ACKNOWLEDGE", "framework_id": fid, "acknowledge": [1]}, "acknowledge"),
        ({"type": "REVIVE", "framework_id": fid, "revive": {"roles": "x"}}, "revive.roles"),
        ({"type": "SUPPRESS", "framework_id": fid, "suppress": {"roles": [5]}}, "roles[0]"),
        ({"type": "MESSAGE", "framework_id": fid, "message": {"agent_id": 5}}, "message"),
        ({"type": "SHUTDOWN", "framework_id": fid, "shutdown": []}, "shutdown"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",
          "capabilities": 5}}}, "capabilities"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",
          "capabilities": [{"type": 5}]}}}, "capabilities[0].type"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",
          "roles": [".."]}}}, "roles[0]"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",
          "roles": ["a b"]}}}, "roles[0]"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",
          "role": "-x"}}}, "framework_info.role"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",
          "id": {"value": "a/b"}}}}, "framework_info.id.value"),
        ({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": 5, "name": "n"}}}, "user"),
        ({"type": "SUBSCRIBE", "subscribe": "x"}, "subscribe"),
        ({"type": "SUBSCRIBE", "framework_id": "x", "subscribe": {"framework_info": {}}},
         "framework_id"),
        ({"type": 5}, "type"),
        ([1, 2], "object"),
    ]  # fmt: skip


def agent_cases(agent_id: str) -> list[tuple[Any, str]]:
    """(call or raw body, a word the 400 must contain) for the agent protocol."""
    aid = {"value": agent_id}

    def register(**fields: Any) -> dict[str, Any]:
        return {"type": "REGISTER", "register": {"protocol_version": 1, "hostname": "h", **fields}}

    return [
        (b'{"type": "REGISTER", "register": ' + DEEP + b"}", "nested"),
        (b'{"type": "REGISTER", "register": {"protocol_version": ' + HUGE_INT + b"}}", "range"),
        (register(resources=[{"name": "cpus", "type": "SCALAR", "scalar": "x"}]), "scalar"),
        (register(resources=[{"name": "ports", "type": "RANGES", "ranges": [5]}]), "ranges"),
        (register(resources=[{"name": "ports", "type": "RANGES",
                              "ranges": {"range": [5]}}]), "range[0]"),
        (register(resources="x"), "resources"),
        (register(attributes=[{"name": "x"}]), "attributes[0].type"),
        (register(agent_id={"value": "../x"}), "agent_id.value"),
        (register(agent_id={"value": "a\nb"}), "agent_id.value"),
        (register(resources=[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                              "role": ".."}]), "resources[0].role"),
        ({"type": "REREGISTER", "reregister": {"protocol_version": 1, "hostname": "h",
          "agent_id": aid, "tasks": [5]}}, "tasks[0]"),
        ({"type": "REREGISTER", "reregister": {"protocol_version": 1, "hostname": "h",
          "agent_id": aid, "frameworks": [{"id": {"value": "f"}, "roles": ["a b"]}]}},
         "frameworks[0].roles[0]"),
        ({"type": "UPDATE", "agent_id": aid, "update": "x"}, "update"),
        ({"type": "UPDATE", "agent_id": aid, "update": {"framework_id": {"value": "f"},
          "status": {"task_id": {"value": "t"}, "state": "TASK_DONE", "uuid": "u"}}}, "state"),
        ({"type": "UPDATE_OVERSUBSCRIBED", "agent_id": aid,
          "update_oversubscribed": {"resources": [{"name": "cpus", "scalar": {"value": "x"}}]}},
         "scalar.value"),
        ({"type": "HEARTBEAT", "agent_id": "x"}, "agent_id"),
    ]  # fmt: skip


async def post(session, url: str, body: Any, headers: dict[str, str] | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    async with session.post(url, data=data, headers=headers) as response:
        return response.status, await response.text()


async def state_of(session, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/state") as response:
        return await response.json()


async def test_bad_scheduler_calls_are_400s_that_name_the_field(master, scheduler, session):
    await scheduler.subscribe()
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    roles_before = dict(master.master.roles._by_id)
    before = await state_of(session, master.url)
    for body, word in scheduler_cases(scheduler.framework_id, offer["id"]["value"]):
        status, text = await post(
            session,
            f"{master.url}/api/v1/scheduler",
            body,
            {"Mesos-Stream-Id": scheduler.stream_id},
        )
        assert status == 400, (str(body)[:120], text)
        assert word in text, (str(body)[:120], text)
    assert await state_of(session, master.url) == before
    assert dict(master.master.roles._by_id) == roles_before
    # The bad roles did not stay in the role table: a valid SUBSCRIBE still works.
    other = Scheduler(master.url, session)
    await other.subscribe(roles=("good",))
    await other.close()


async def test_bad_agent_calls_are_400s_that_name_the_field(bare_master, session):
    agent = FakeAgent(bare_master.url, session)
    await agent.register()
    before = await state_of(session, bare_master.url)
    for body, word in agent_cases(agent.agent_id):
        status, text = await post(session, f"{bare_master.url}/api/v1/agent", body)
        assert status == 400, (str(body)[:120], text)
        assert word in text, (str(body)[:120], text)
    assert await state_of(session, bare_master.url) == before
    await agent.disconnect()


# --- generated garbage ------------------------------------------------------------------

JSON_KINDS = (type(None), bool, (int, float), str, list, dict)


def kind_of(value: Any) -> int:
    for index, kinds in enumerate(JSON_KINDS):
        if isinstance(value, kinds) and not (index == 2 and isinstance(value, bool)):
            return index
    raise AssertionError(value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
BAD_NAMES = st.sampled_from(["", ".", "..", "a b", "a/b", "x\ny", "\x00", "-r", "*/x", "a//b"])


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (dict keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += paths(item, (*prefix, index))
    return out


def call_at(call: Any, path: tuple) -> Any:
    for part in path:
        call = call[part]
    return call


def replaced(value: Any, path: tuple, new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return out


def templates(fid: str, offer_id: str, agent_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """A valid call of every type (endpoint, call); mutations of them must all be refused."""
    ids = {"value": fid}
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": agent_id},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
            "command": {"shell": True, "value": "true"}}  # fmt: skip
    info = {"user": "u", "name": "n", "roles": ["r"], "failover_timeout": 1.0,
            "capabilities": [{"type": "MULTI_ROLE"}]}  # fmt: skip
    registration = {"protocol_version": 1, "hostname": "h", "agent_id": {"value": agent_id},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                                  {"name": "ports", "type": "RANGES",
                                   "ranges": {"range": [{"begin": 1, "end": 2}]}}],
                    "attributes": [{"name": "a", "type": "TEXT", "text": {"value": "v"}}]}  # fmt: skip
    scheduler = {
        "SUBSCRIBE": {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}},
        "TEARDOWN": {"type": "TEARDOWN", "framework_id": ids, "teardown": {}},
        "ACCEPT": {"type": "ACCEPT", "framework_id": ids, "accept": {
            "offer_ids": [{"value": offer_id}], "filters": {"refuse_seconds": 1},
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}},
        "DECLINE": {"type": "DECLINE", "framework_id": ids, "decline": {
            "offer_ids": [{"value": offer_id}], "filters": {"refuse_seconds": 1}}},
        "REVIVE": {"type": "REVIVE", "framework_id": ids, "revive": {"roles": ["*"]}},
        "SUPPRESS": {"type": "SUPPRESS", "framework_id": ids, "suppress": {"roles": ["*"]}},
        "KILL": {"type": "KILL", "framework_id": ids, "kill": {"task_id": {"value": "t"}}},
        "SHUTDOWN": {"type": "SHUTDOWN", "framework_id": ids, "shutdown": {
            "agent_id": {"value": agent_id}}},
        "ACKNOWLEDGE": {"type": "ACKNOWLEDGE", "framework_id": ids, "acknowledge": {
            "agent_id": {"value": agent_id}, "task_id": {"value": "t"}, "uuid": "AAAA"}},
        "RECONCILE": {"type": "RECONCILE", "framework_id": ids, "reconcile": {
            "tasks": [{"task_id": {"value": "t"}}]}},
        "MESSAGE": {"type": "MESSAGE", "framework_id": ids, "message": {
            "agent_id": {"value": agent_id}, "executor_id": {"value": "e"}, "data": "AAAA"}},
    }  # fmt: skip
    agent = {
        "REGISTER": {"type": "REGISTER", "register": registration},
        "REREGISTER": {"type": "REREGISTER", "reregister": {**registration, "tasks": [
            {"framework_id": ids, "task_info": task, "state": "TASK_RUNNING"}],
            "frameworks": [{**info, "id": ids}]}},
        "UPDATE": {"type": "UPDATE", "agent_id": {"value": agent_id}, "update": {
            "framework_id": ids, "status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                                            "uuid": "AAAA"}}},
        "UPDATE_OVERSUBSCRIBED": {"type": "UPDATE_OVERSUBSCRIBED", "agent_id": {"value": agent_id},
                                  "update_oversubscribed": {"resources": []}},
        "HEARTBEAT": {"type": "HEARTBEAT", "agent_id": {"value": agent_id}},
    }  # fmt: skip
    out = {k: ("/api/v1/scheduler", v) for k, v in scheduler.items()}
    out.update({k: ("/api/v1/agent", v) for k, v in agent.items()})
    return out


#: Fields the schemas let through untyped (free-form as in protobuf): a mutation there
#: may be a valid call, so they are not mutated.
FREE_FORM = {"teardown"}


@st.composite
def garbage(draw, cases: dict[str, tuple[str, dict[str, Any]]]) -> tuple[str, bytes, str]:
    """(path, body, content type): a mutated call, a random JSON value, or raw bytes."""
    how = draw(st.sampled_from(["mutate", "mutate", "mutate", "json", "raw", "teardown"]))
    if how == "teardown":
        body = draw(st.binary(max_size=64) | st.sampled_from([
            b"--b\r\nContent-Disposition: form-data; name=\"frameworkId\"\r\n\r\n\xff\r\n--b--",
            b"frameworkId=&frameworkId=x", b"%%%", b"a=b&&", DEEP[:2000]]))  # fmt: skip
        kind = draw(st.sampled_from(["multipart/form-data; boundary=b", "text/plain", ""]))
        return draw(st.sampled_from(["/teardown", "/master/teardown"])), body, kind
    endpoint, call = cases[draw(st.sampled_from(sorted(cases)))]
    if how == "raw":
        body = draw(st.binary(max_size=64) | st.sampled_from([DEEP, HUGE_INT, b"NaN", b"[1e999]"]))
        return endpoint, body, "application/json"
    if how == "json":
        value = draw(JSON)
        if draw(st.booleans()):
            value = {"type": call["type"], call["type"].lower(): value}
        return endpoint, json.dumps(value).encode(), "application/json"
    targets = [p for p in paths(call) if not FREE_FORM & set(map(str, p))]
    path = draw(st.sampled_from(targets))
    old = call_at(call, path)
    new = draw(JSON.filter(lambda v: kind_of(v) != kind_of(old)))
    names_something = path[-1] in ("value", "role") or path[-2:-1] == ("roles",)
    if isinstance(old, str) and names_something and path[-2:] != ("command", "value"):
        new = draw(st.one_of(st.just(new), BAD_NAMES))  # an id or a role: also a bad name
    body = json.dumps(replaced(call, path, new)).encode()
    return endpoint, body, "application/json"


#: Values a mutation puts anywhere: the edges of each JSON type the schemas check (integral
#: floats, bools for numbers, negatives against minimum 0, empty strings, bad names, enum
#: members in the wrong place).
EDGES = JSON | BAD_NAMES | st.sampled_from(
    [1.0, -1, -0.5, 2**64 - 1, True, False, "", [], {}, "TASK_RUNNING", "LAUNCH", "LAUNCH_GROUP",
     "SCALAR", "MULTI_ROLE", "*", {"value": ""}, {"value": "a b"}, [{"value": "o"}]]
)  # fmt: skip


@st.composite
def variants(draw, cases: dict[str, tuple[str, dict[str, Any]]]) -> tuple[str, Any]:
    """(endpoint, call): a valid call with one to three fields replaced or added."""
    endpoint, call = cases[draw(st.sampled_from(sorted(cases)))]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(call)))
        if draw(st.booleans()) and isinstance(call_at(call, path), dict):
            path = (*path, draw(st.sampled_from(["value", "type", "roles", "role", "x"])))
        call = replaced(call, path, draw(EDGES))
    return endpoint, call


def _accepted(check, call: Any) -> bool:
    try:
        check(call)
    except Exception:
        return False
    return True


@settings(max_examples=1000, deadline=None, database=None)
@given(variants(templates("f1", "o1", "a1")))
def test_the_compiled_validator_accepts_exactly_what_jsonschema_accepts(example):
    """Every call meets the compiled validator first and jsonschema only when it is refused:
    a call the compiled one let through that jsonschema would refuse would reach the master."""
    endpoint, call = example
    api = "scheduler" if endpoint == "/api/v1/scheduler" else "agent"
    full = validation._validator(api).is_valid(call)
    assert _accepted(validation._compiled(api), call) == full, json.dumps(call)[:400]


def request(url: str, method: str, path: str, body: bytes = b"", headers=None) -> tuple[int, bytes]:
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        # A valid SUBSCRIBE/REGISTER would open a stream: read a little, then hang up.
        data = (
            response.read(200) if response.status == 200 and method == "POST" else response.read()
        )
        return response.status, data
    finally:
        connection.close()


def settled_state(url: str) -> bytes:
    """/state once two reads 0.2 s apart agree (a valid call may start a cycle)."""
    last = request(url, "GET", "/state")[1]
    while True:
        time.sleep(0.2)
        now = request(url, "GET", "/state")[1]
        if now == last:
            return now
        last = now


@pytest.mark.slow
async def test_generated_garbage_never_gets_a_5xx_and_changes_nothing(master_factory, session):
    running = await master_factory(allocator="python/drf", allocation_interval=3600.0)
    scheduler = Scheduler(running.url, session)
    await scheduler.subscribe()
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    agent = FakeAgent(running.url, session)
    await agent.register()
    cases = templates(scheduler.framework_id, offer["id"]["value"], agent.agent_id)
    seen: dict[str, int] = {}
    roles = running.master.roles

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(garbage(cases))
    def check(example: tuple[str, bytes, str]) -> None:
        path, body, content_type = example
        before = request(running.url, "GET", "/state")[1]
        roles_before = dict(roles._by_id)
        headers = {"Content-Type": content_type, "Mesos-Stream-Id": scheduler.stream_id or ""}
        status, text = request(running.url, "POST", path, body, headers)
        seen[f"{path} {status}"] = seen.get(f"{path} {status}", 0) + 1
        assert status < 500, (path, body[:200], text)
        if status >= 400:
            assert request(running.url, "GET", "/state")[1] == before, (path, body[:200], text)
            assert dict(roles._by_id) == roles_before, (path, body[:200])
        else:  # a call that happened to be valid: let what it started finish
            settled_state(running.url)

    await asyncio.to_thread(check)
    # The garbage reached every endpoint, and mostly as 4xx.
    assert {key.split()[0] for key in seen} == {
        "/api/v1/scheduler", "/api/v1/agent", "/teardown", "/master/teardown"
    }  # fmt: skip
    refused = sum(n for key, n in seen.items() if key.split()[1].startswith("4"))
    assert refused >= 0.9 * sum(seen.values()), seen
    await agent.disconnect()
    await scheduler.close()
