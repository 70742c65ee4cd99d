"""A master with --registry=local killed -9 and restarted on its --work_dir (real processes).

The agent that comes back is re-admitted with its tasks; the one that never
comes back becomes unreachable after --agent_reregister_timeout, and its tasks
reconcile as TASK_UNREACHABLE for a PARTITION_AWARE framework and TASK_LOST for
another; an agent the registry never admitted is told to shut down.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
from support.agent_tasks import follow, start_command, task_info
from support.scheduler import Scheduler

from pymesos_modules.agent.launcher import ProcessId, is_alive

PARTITION_AWARE = ("MULTI_ROLE", "PARTITION_AWARE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_master(port: int, work_dir: Path) -> asyncio.subprocess.Process:
    process, _ = await start_command(
        "master",
        f"--port={port}",
        f"--work_dir={work_dir}",
        "--registry=local",
        "--allocator=python/drf",
        "--allocation_interval=0.05",
        "--heartbeat_interval=0.5",
        "--agent_reregister_timeout=3",
        banner="master listening on http://",
    )
    return process


async def start_agent(port: int, work_dir: Path, hostname: str) -> asyncio.subprocess.Process:
    process, _ = await start_command(
        "agent",
        f"--master=127.0.0.1:{port}",
        f"--work_dir={work_dir}",
        "--port=0",
        f"--hostname={hostname}",
        "--resources=cpus:4;mem:4096;disk:4096;ports:[31000-31009]",
        "--registration_backoff_factor=0.1",
        "--status_update_retry_interval_min=0.5",
        "--status_update_retry_interval_max=2",
        banner="agent listening on http://",
    )
    return process


async def state(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with session.get(f"{url}/state") as response:
            return await response.json()
    except aiohttp.ClientError:
        return {}


async def poll(session: aiohttp.ClientSession, url: str, check, what: str) -> dict[str, Any]:
    """/state once ``check(state)`` holds (a generous bound, no timing assertion)."""
    for _ in range(1500):
        current = await state(session, url)
        if current and check(current):
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def launch_on_each(scheduler: Scheduler, name: str, hosts: tuple[str, ...]) -> None:
    """Launch ``{name}-on-{host}`` (a long task) on an offer of each host."""
    offers: dict[str, dict[str, Any]] = {}
    while set(offers) != set(hosts):
        event = await scheduler.next("OFFERS", 20)
        for offer in event["offers"]["offers"]:
            offers.setdefault(offer["hostname"], offer)
    for host in hosts:
        task = task_info(offers[host], f"{name}-on-{host}", "exec sleep 600", cpus=0.5)
        call = {
            "type": "ACCEPT",
            "accept": {
                "offer_ids": [offers[host]["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
                # The rest is for the next framework.
                "filters": {"refuse_seconds": 3600},
            },
        }
        assert await scheduler.call(call) == 202, scheduler.last_text


async def reconcile(scheduler: Scheduler, task_id: str, agent_id: str) -> dict[str, Any]:
    call = {
        "type": "RECONCILE",
        "reconcile": {"tasks": [{"task_id": {"value": task_id}, "agent_id": {"value": agent_id}}]},
    }
    assert await scheduler.call(call) == 202, scheduler.last_text
    event = await scheduler.next(
        "UPDATE", 10, where=lambda e: e["update"]["status"]["task_id"]["value"] == task_id
    )
    return event["update"]["status"]


async def unknown_agent_reregisters(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """REREGISTER as an agent no master admitted; the first event of the answer."""
    call = {
        "type": "REREGISTER",
        "reregister": {
            "protocol_version": 1,
            "agent_id": {"value": "never-admitted-S9"},
            "hostname": "stranger",
            "resources": [],
        },
    }
    async with session.post(f"{url}/api/v1/agent", json=call) as response:
        assert response.status == 200, await response.text()
        length = int(await response.content.readline())
        return json.loads(await response.content.readexactly(length))


async def test_a_killed_master_recovers_its_registry_and_finds_the_missing_agent_unreachable(
    tmp_path,
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    master = await start_master(port, tmp_path / "master")
    agents: dict[str, asyncio.subprocess.Process] = {}
    schedulers: list[Scheduler] = []
    try:
        async with aiohttp.ClientSession() as session:
            agents["stays"] = await start_agent(port, tmp_path / "stays", "stays")
            agents["dies"] = await start_agent(port, tmp_path / "dies", "dies")
            first = await poll(
                session, url, lambda s: len(s["slaves"]) == 2, "both agents to register"
            )
            ids = {a["hostname"]: a["id"] for a in first["slaves"]}
            aware, plain = Scheduler(url, session), Scheduler(url, session)
            schedulers += [aware, plain]
            # One framework after the other, so that each is offered both agents.
            for scheduler, name in ((aware, "aware"), (plain, "plain")):
                capabilities = PARTITION_AWARE if scheduler is aware else ("MULTI_ROLE",)
                await scheduler.subscribe(name, failover_timeout=3600, capabilities=capabilities)
                await launch_on_each(scheduler, name, ("stays", "dies"))
                for host in ("stays", "dies"):
                    await follow(scheduler, f"{name}-on-{host}", until="TASK_RUNNING")

            # kill -9 the master, and the agent that will never come back.
            for process in (master, agents.pop("dies")):
                process.kill()
                await process.wait()
            for scheduler in schedulers:
                await scheduler.close()
            master = await start_master(port, tmp_path / "master")

            # The admitted agent comes back with its tasks; the other is expected
            # back until --agent_reregister_timeout, then it is unreachable.
            await poll(
                session,
                url,
                lambda s: [a["id"] for a in s["slaves"]] == [ids["stays"]],
                "the surviving agent to re-register",
            )
            gone = await poll(
                session,
                url,
                lambda s: [a["id"] for a in s["unreachable_slaves"]] == [ids["dies"]],
                "the missing agent to become unreachable",
            )
            assert gone["recovered_slaves"] == []

            # The frameworks come back to the new master with their ids.
            aware2, plain2 = Scheduler(url, session), Scheduler(url, session)
            schedulers[:] = [aware2, plain2]
            await aware2.subscribe(
                "aware",
                failover_timeout=3600,
                capabilities=PARTITION_AWARE,
                framework_id=aware.framework_id,
            )
            await plain2.subscribe("plain", failover_timeout=3600, framework_id=plain.framework_id)
            lost_aware = await reconcile(aware2, "aware-on-dies", ids["dies"])
            assert lost_aware["state"] == "TASK_UNREACHABLE"
            assert lost_aware["reason"] == "REASON_RECONCILIATION"
            assert "unreachable_time" in lost_aware
            lost_plain = await reconcile(plain2, "plain-on-dies", ids["dies"])
            assert lost_plain["state"] == "TASK_LOST"
            # The tasks on the agent that came back are still running.
            for scheduler, name in ((aware2, "aware"), (plain2, "plain")):
                status = await reconcile(scheduler, f"{name}-on-stays", ids["stays"])
                assert status["state"] == "TASK_RUNNING"

            shutdown = await unknown_agent_reregisters(session, url)
            assert shutdown["type"] == "SHUTDOWN"
            assert "never-admitted-S9" in shutdown["shutdown"]["message"]
            after = await state(session, url)
            assert "never-admitted-S9" not in {a["id"] for a in after["slaves"]}
    finally:
        for scheduler in schedulers:
            await scheduler.close()
        for process in (master, *agents.values()):
            if process.returncode is None:
                process.kill()
                await process.wait()
        kill_tasks_left(tmp_path)


def kill_tasks_left(root: Path) -> None:
    """Kill the task processes that the killed agents left running (their pid files say which)."""
    for path in root.glob("**/pids/*.pid"):
        document = json.loads(path.read_text())
        process = ProcessId(document["pid"], document.get("start_time"))
        if is_alive(process):
            os.kill(process.pid, signal.SIGKILL)


async def test_a_master_refuses_a_registry_of_a_newer_format_naming_it(tmp_path):
    from pymesos_modules.master.registry import REGISTRY_FORMAT, Change, LocalBackend

    backend = LocalBackend(tmp_path)
    backend.store([Change("meta", "format", {"version": REGISTRY_FORMAT + 1, "writer": "9.0"})])
    backend.close()
    process = await asyncio.create_subprocess_exec(
        *__import__("pymesos_modules.paths", fromlist=["x"]).module_command(
            "pymesos_modules", "master", "--port=0", f"--work_dir={tmp_path}"
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert str(tmp_path / "registry.sqlite") in err.decode()
    assert "master listening" not in out.decode()
