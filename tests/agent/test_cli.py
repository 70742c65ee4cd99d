"""Agent flags: Mesos resource/attribute syntax, detection, errors, and local mode."""

from __future__ import annotations

import logging
import os

import aiohttp
import pytest
from support.agent_tasks import follow_all, start_command, task_info, until
from support.scheduler import Scheduler

from pymesos_modules import cli
from pymesos_modules.agent import machine
from pymesos_modules.agent.cli import agent_resources, boolean, duration, recover_mode
from pymesos_modules.local import register as local_register
from pymesos_modules.local import start_local
from pymesos_modules.master.resources import (
    ResourceError,
    parse_attributes,
    parse_resource_list,
    parse_resources,
)

GB = 1024**3


def test_mesos_resource_syntax():
    assert parse_resource_list("cpus:4;mem:8192;disk:10000;ports:[31000-32000]") == [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 8192.0}},
        {"name": "disk", "type": "SCALAR", "scalar": {"value": 10000.0}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}},
    ]
    reserved = parse_resource_list("cpus(web):2;cpus(*):1;cpus:1")
    assert reserved == [
        {
            "name": "cpus",
            "type": "SCALAR",
            "scalar": {"value": 2.0},
            "reservations": [{"type": "STATIC", "role": "web"}],
        },
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}},
    ]
    assert parse_resource_list("zones:{a,b}")[0] == {
        "name": "zones",
        "type": "SET",
        "set": {"item": ["a", "b"]},
    }
    as_json = '[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]'
    assert parse_resources(as_json).scalars == {"cpus": 2.0}


def test_mesos_attribute_syntax():
    assert parse_attributes("rack:r1;level:2;ids:[1-3]") == [
        {"name": "rack", "type": "TEXT", "text": {"value": "r1"}},
        {"name": "level", "type": "SCALAR", "scalar": {"value": 2.0}},
        {"name": "ids", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 3}]}},
    ]


@pytest.mark.parametrize(
    ("text", "message", "caret"),
    [
        ("cpus:4;mem:lots", "'mem': 'lots' is not a number", 11),
        ("cpus:4;mem", "'mem': expected name:value", 7),
        ("cpus:4; ports:[1-2", "range list '[1-2' lacks ']'", 14),
        ("ports:[5-2]", "range '5-2' is empty or negative", 6),
        ("cpus:-1", "-1 must be finite and >= 0", 5),
        ("cpus:1;cpus:[1-2]", "'cpus' is given twice with different types", 7),
        ("[{", "invalid JSON", None),
    ],
)
def test_resource_errors_point_at_the_bad_token(text, message, caret):
    with pytest.raises(ResourceError) as error:
        parse_resource_list(text, "--resources")
    lines = str(error.value).splitlines()
    assert lines[0].startswith("--resources: ") and message in lines[0]
    assert lines[1] == f"  {text}"
    if caret is not None:
        assert lines[2] == "  " + " " * caret + "^"


def test_attribute_given_twice_is_refused():
    with pytest.raises(ResourceError, match="attribute 'rack' is given twice"):
        parse_attributes("rack:a;rack:b", "--attributes")


def test_reservations_are_refused_until_the_master_keeps_them(tmp_path):
    with pytest.raises(ResourceError, match=r"cpus\(web\).*not supported by the master"):
        agent_resources("cpus(web):2", str(tmp_path))


def test_missing_resources_are_detected_as_mesos_does(tmp_path):
    filled = {r["name"]: r for r in agent_resources("mem:100", str(tmp_path))}
    assert filled["mem"]["scalar"]["value"] == 100
    assert filled["cpus"]["scalar"]["value"] == os.cpu_count()
    assert filled["disk"]["scalar"]["value"] == machine.disk_mb(
        machine.filesystem_bytes(str(tmp_path))
    )
    assert filled["ports"]["ranges"]["range"] == [{"begin": 31000, "end": 32000}]
    assert machine.memory_mb(8 * GB) == 7 * 1024
    assert machine.memory_mb(GB) == 512
    assert machine.disk_mb(100 * GB) == 95 * 1024
    assert machine.disk_mb(8 * GB) == 4 * 1024
    assert machine.memory_mb(None) == machine.DEFAULT_MEM_MB


def test_durations_take_mesos_units():
    assert duration("2.5") == 2.5
    assert duration("500ms") == 0.5
    assert duration("5secs") == 5.0
    assert duration("2mins") == 120.0
    with pytest.raises(Exception, match="expected a duration"):
        duration("soon")


def test_recovery_flags_take_mesos_values():
    assert [boolean(v) for v in ("true", "false", "1", "0", "yes", "no")] == [1, 0, 1, 0, 1, 0]
    with pytest.raises(Exception, match="expected true or false; found 'maybe'"):
        boolean("maybe")
    assert recover_mode("cleanup") == "cleanup"
    with pytest.raises(Exception, match="expected reconnect or cleanup; found 'reset'"):
        recover_mode("reset")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resources", "cpus:4;mem:lots"], "'mem': 'lots' is not a number"),
        (["--attributes", "rack"], "'rack': expected name:value"),
        (["--master", "zk://h:2181/mesos"], "ZooKeeper"),
        (["--master", "justahost"], "expected HOST:PORT"),
        (["--isolation", "nope"], "--isolation: unknown module 'nope'"),
    ],
)
def test_agent_command_refuses_bad_flags(tmp_path, caplog, argv, message):
    base = ["agent", "--master", "127.0.0.1:1", "--work_dir", str(tmp_path), "--port", "0"]
    with caplog.at_level(logging.ERROR):
        assert cli.main([*base, *argv]) == 1
    assert message in caplog.text


def test_agent_command_needs_a_work_dir(caplog):
    with caplog.at_level(logging.ERROR):
        assert cli.main(["agent", "--master", "127.0.0.1:1"]) == 1
    assert "--work_dir is required" in caplog.text


async def test_local_mode_runs_tasks_on_every_agent(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    local_register(parser)
    args = parser.parse_args(
        [
            "--port=0",
            "--num_agents=2",
            f"--work_dir={tmp_path}",
            "--resources=cpus:1;mem:256;ports:[31000-31001]",
            "--allocation_interval=0.05",
            "--allocator=python/drf",
        ]
    )
    local = await start_local(args)
    try:
        assert len(local.agents) == 2
        await until(lambda: all(a.agent.registered for a in local.agents), what="registration")
        ids = {a.agent.agent_id for a in local.agents}
        assert ids == set(local.master.master.agents)
        wait = f"while [ ! -e {tmp_path}/go ]; do sleep 0.05; done"
        async with aiohttp.ClientSession() as session:
            scheduler = Scheduler(local.master.url, session)
            await scheduler.subscribe()
            try:
                offers: dict[str, dict] = {}
                while len(offers) < 2:  # one offer per agent (they may come in one event)
                    for offer in (await scheduler.next("OFFERS", 20))["offers"]["offers"]:
                        offers.setdefault(offer["agent_id"]["value"], offer)
                assert set(offers) == ids
                for index, offer in enumerate(offers.values()):
                    accept = {
                        "type": "ACCEPT",
                        "accept": {
                            "offer_ids": [offer["id"]],
                            "operations": [
                                {
                                    "type": "LAUNCH",
                                    "launch": {
                                        "task_infos": [task_info(offer, f"t{index}", wait, cpus=1)]
                                    },
                                }
                            ],
                        },
                    }
                    assert await scheduler.call(accept) == 202
                await follow_all(scheduler, {"t0", "t1"}, until="TASK_RUNNING")
                (tmp_path / "go").touch()
                await follow_all(scheduler, {"t0", "t1"}, until="TASK_FINISHED")
            finally:
                await scheduler.close()
        for index, agent in enumerate(local.agents):
            assert agent.agent.work_dir == tmp_path / f"agent-{index}"
    finally:
        await local.stop()
    assert tmp_path.exists()  # a given work_dir is kept


async def test_local_command_prints_the_master_and_leaves_no_task_behind(tmp_path):
    """SIGTERM to `pymesos-modules local` kills the tasks it runs and exits 0."""
    import asyncio
    import signal
    from pathlib import Path

    process, url = await start_command(
        "local",
        "--port=0",
        "--num_agents=1",
        "--allocator=python/drf",
        "--allocation_interval=0.05",
        "--resources=cpus:1;mem:256;ports:[31000-31001]",
        banner="master listening on http://127.0.0.1:",
    )
    try:
        async with aiohttp.ClientSession() as session:
            scheduler = Scheduler(url, session)
            await scheduler.subscribe()
            try:
                offer = (await scheduler.next("OFFERS", 30))["offers"]["offers"][0]
                pidfile = tmp_path / "pid"
                task = task_info(offer, "orphan?", f"echo $$ > {pidfile}; exec sleep 600")
                accept = {
                    "type": "ACCEPT",
                    "accept": {
                        "offer_ids": [offer["id"]],
                        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
                    },
                }
                assert await scheduler.call(accept) == 202
                await follow_all(scheduler, {"orphan?"}, until="TASK_RUNNING")
                await until(lambda: pidfile.exists() and pidfile.read_text().strip())
                pid = int(pidfile.read_text())
                assert Path(f"/proc/{pid}").exists()
            finally:
                await scheduler.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
        assert not Path(f"/proc/{pid}").exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
