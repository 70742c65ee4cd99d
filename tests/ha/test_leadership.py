"""Leadership in the master: elected and standby masters on a real ZooKeeper (in-process
masters, real HTTP), bad --zk flags, and the standby's answers."""

from __future__ import annotations

import argparse
import asyncio
import json

import aiohttp
import pytest
from support.agent_tasks import agent_args, master_args, until
from support.zookeeper import free_port

from pymesos_modules.agent.cli import agent_flags, start_agent
from pymesos_modules.local import register, start_local
from pymesos_modules.master.cli import start_master
from pymesos_modules.zookeeper import ZkUrlError, ZooKeeperError, ZooKeeperUnreachable

SUBSCRIBE = {
    "type": "SUBSCRIBE",
    "subscribe": {"framework_info": {"user": "u", "name": "ha", "roles": ["*"]}},
}


async def ha_master(zk_url: str, **overrides):
    return await start_master(
        master_args(zk=zk_url, zk_session_timeout=4.0, simulated_agents=0, **overrides)
    )


async def test_one_master_leads_the_standby_redirects_and_takes_over(zk_url):
    first = await ha_master(zk_url)
    second = await ha_master(zk_url)
    try:
        await until(lambda: first.leadership.elected)
        await until(lambda: second.leadership.leader is not None)
        assert not second.leadership.elected
        async with aiohttp.ClientSession() as http:
            leader_port = first.master.flags.port
            # The standby: 307 to the leader for scheduler and agent calls.
            async with http.post(
                f"{second.url}/api/v1/scheduler", json=SUBSCRIBE, allow_redirects=False
            ) as answer:
                assert answer.status == 307
                assert answer.headers["Location"] == f"//localhost:{leader_port}/api/v1/scheduler"
            async with http.post(
                f"{second.url}/api/v1/agent", json={"type": "REGISTER"}, allow_redirects=False
            ) as answer:
                assert answer.status == 307
            async with http.get(f"{second.url}/master/redirect", allow_redirects=False) as answer:
                assert (answer.status, answer.headers["Location"]) == (
                    307,
                    f"//localhost:{leader_port}",
                )
            async with http.get(f"{second.url}/state") as answer:
                standby_state = await answer.json()
            assert "elected_time" not in standby_state
            assert standby_state["leader_info"]["id"] == first.master.master_id
            assert standby_state["leader_info"]["port"] == leader_port
            async with http.get(f"{first.url}/state") as answer:
                leader_state = await answer.json()
            assert leader_state["elected_time"] > 0
            assert leader_state["leader_info"]["id"] == first.master.master_id
            for running, elected in ((first, 1.0), (second, 0.0)):
                async with http.get(f"{running.url}/metrics/snapshot") as answer:
                    assert (await answer.json())["master/elected"] == elected
            # The leader takes the call (its stream starts with SUBSCRIBED).
            async with http.post(f"{first.url}/api/v1/scheduler", json=SUBSCRIBE) as answer:
                assert answer.status == 200
                size = int(await answer.content.readline())
                event = json.loads(await answer.content.readexactly(size))
                assert event["type"] == "SUBSCRIBED"

        await first.stop()  # withdraws its znode: the standby leads at once
        await until(lambda: second.leadership.elected)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{second.url}/metrics/snapshot") as answer,
        ):
            assert (await answer.json())["master/elected"] == 1.0
    finally:
        await first.stop()
        await second.stop()


async def test_a_standby_without_a_leader_answers_503(zk_url):
    # A standby whose (standalone) detector names only itself knows of no other leader.
    first = await ha_master(zk_url)
    second = await ha_master(zk_url, master_detector="standalone")
    try:
        await until(lambda: first.leadership.elected)
        assert not second.leadership.elected
        assert second.leadership.is_self(second.leadership.leader)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{second.url}/api/v1/scheduler", json=SUBSCRIBE) as answer:
                assert answer.status == 503
            async with http.get(f"{second.url}/master/redirect", allow_redirects=False) as answer:
                assert answer.status == 503
    finally:
        await second.stop()
        await first.stop()


async def test_a_password_in_zk_never_reaches_flags(zookeeper):
    url = f"zk://jo:s3cret@{zookeeper.hosts}/pmm/secret"
    running = await start_master(master_args(zk=url, zk_session_timeout=4.0, simulated_agents=0))
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{running.url}/flags") as answer:
            text = await answer.text()
        assert "s3cret" not in text and "jo:***@" in text
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("overrides", "error", "says"),
    [
        ({"zk": "zk://nohost"}, ZkUrlError, "--zk: zk://nohost has no znode path"),
        ({"master_contender": "zookeeper"}, ZooKeeperError, "needs --zk"),
    ],
)
async def test_bad_election_flags_are_clear_errors(overrides, error, says):
    with pytest.raises(error, match=says):
        await start_master(master_args(simulated_agents=0, **overrides))


async def test_an_unreachable_zookeeper_fails_the_start_after_a_bounded_wait():
    url = f"zk://127.0.0.1:{free_port()}/mesos"
    with pytest.raises(ZooKeeperUnreachable, match=r"no ZooKeeper server of zk://127\.0\.0\.1"):
        await start_master(master_args(zk=url, zk_session_timeout=1.0, simulated_agents=0))


async def test_local_starts_three_masters_and_the_agents_follow_the_leader(zk_url, tmp_path):
    parser = argparse.ArgumentParser()
    register(parser)
    args = parser.parse_args(
        [
            "--port=0",
            "--num_masters=3",
            "--num_agents=2",
            f"--zk={zk_url}",
            "--zk_session_timeout=4secs",
            f"--work_dir={tmp_path}",
            "--resources=cpus:1;mem:256",
            "--allocator=python/drf",
            "--registration_backoff_factor=0.1",
        ]
    )
    local = await start_local(args)
    try:
        assert len(local.masters) == 3
        await until(lambda: sum(m.leadership.elected for m in local.masters) == 1)
        leader = next(m for m in local.masters if m.leadership.elected)
        await until(lambda: len(leader.master.agents) == 2, 30, "both agents at the leader")
        assert all(not m.master.agents for m in local.masters if m is not leader)
        # The leader leaves: the agents re-register with the next one.
        await leader.stop()
        await until(lambda: sum(m.leadership.elected for m in local.masters) == 1)
        second = next(m for m in local.masters if m.leadership.elected)
        await until(lambda: len(second.master.agents) == 2, 30, "both agents at the new leader")
        assert all(a.agent.url == second.url for a in local.agents)
    finally:
        await local.stop()


async def test_local_with_several_masters_needs_zk():
    parser = argparse.ArgumentParser()
    register(parser)
    with pytest.raises(ValueError, match="--num_masters=3 needs --zk"):
        await start_local(parser.parse_args(["--num_masters=3"]))


def test_an_agent_with_a_bad_zk_master_fails_naming_it(tmp_path):
    with pytest.raises(ValueError, match="--master=zk:/nohost: expected HOST:PORT"):
        agent_flags(agent_args("zk:/nohost", str(tmp_path)))
    with pytest.raises(ZkUrlError, match="--master: zk://h:1 has no znode path"):
        agent_flags(agent_args("zk://h:1", str(tmp_path)))


async def test_an_agent_fails_when_zookeeper_is_unreachable(tmp_path):
    url = f"zk://127.0.0.1:{free_port()}/mesos"
    with pytest.raises(ZooKeeperUnreachable, match="--master_detector=zookeeper: no ZooKeeper"):
        await start_agent(agent_args(url, str(tmp_path), zk_session_timeout=1.0))


async def test_a_leader_whose_session_ends_stops_leading_at_once(zookeeper, zk_url):
    from kazoo.client import KazooClient

    running = await ha_master(zk_url)
    try:
        await until(lambda: running.leadership.elected)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{running.url}/api/v1/scheduler", json=SUBSCRIBE) as answer:
                assert answer.status == 200
                # ZooKeeper ends the contender's session (as when it expires).
                session = running.leadership.contender._client.client_id
                closer = KazooClient(hosts=zookeeper.hosts, client_id=session)
                await asyncio.to_thread(closer.start)
                await asyncio.to_thread(closer.stop)
                await until(lambda: running.leadership.deposed.is_set(), 30, "deposition")
                assert not running.leadership.elected
                # The framework's stream was closed; no new call is taken.
                # read() returns only once the master has ended the stream.
                await asyncio.wait_for(answer.content.read(), 30)
            async with http.post(f"{running.url}/api/v1/scheduler", json=SUBSCRIBE) as again:
                assert again.status in (307, 503)
            async with http.get(f"{running.url}/metrics/snapshot") as metrics:
                assert (await metrics.json())["master/elected"] == 0.0
    finally:
        await running.stop()


def test_a_password_in_the_agents_zk_master_is_not_shown(tmp_path):
    flags = agent_flags(agent_args("zk://jo:s3cret@127.0.0.1:2181/mesos", str(tmp_path)))
    assert flags.raw["master"] == "zk://jo:***@127.0.0.1:2181/mesos"
    assert "s3cret" not in json.dumps({k: str(v) for k, v in flags.raw.items()})
