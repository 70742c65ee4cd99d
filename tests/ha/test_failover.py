"""The acceptance test of issue 13: leader failover loses no task.

A real ZooKeeper, three masters and two agents as processes of their own,
and an unmodified pymesos 0.3.15 framework (with kazoo, for the zk:// URL)
running 20 long tasks.  kill -9 the leader: another master is elected, the
agents re-register with it and the framework re-subscribes by itself;
reconciliation answers all 20 RUNNING.  kill -9 that leader too, then let
the tasks end: each gets exactly one terminal update, acknowledged.
"""

from __future__ import annotations

import asyncio
import getpass
import queue
import signal
import uuid
from typing import Any

import aiohttp
import pytest
from support.agent_tasks import start_command

pymesos = pytest.importorskip("pymesos")

SESSION = 5.0  # --zk_session_timeout, seconds
TASKS = 20


class LongTasks(pymesos.Scheduler):
    """Launches ``count`` tasks that run until ``stop_file`` exists; records every update."""

    def __init__(self, count: int, stop_file: str) -> None:
        self.count, self.stop_file = count, stop_file
        self.launched: list[str] = []
        self.updates: queue.Queue[dict[str, Any]] = queue.Queue()
        self.subscriptions = 0

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.subscriptions += 1

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.subscriptions += 1

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            wanted = min(self.count - len(self.launched), 10)
            if wanted <= 0:
                driver.declineOffer(offer["id"])
                continue
            tasks = []
            for _ in range(wanted):
                task_id = f"long-{len(self.launched)}-{uuid.uuid4().hex[:6]}"
                self.launched.append(task_id)
                tasks.append(
                    {
                        "task_id": {"value": task_id},
                        "agent_id": offer["agent_id"],
                        "name": task_id,
                        "command": {
                            "value": f"while [ ! -e {self.stop_file} ]; do sleep 0.2; done"
                        },
                        "resources": [
                            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                            {"name": "mem", "type": "SCALAR", "scalar": {"value": 16}},
                        ],
                    }
                )
            driver.launchTasks(offer["id"], tasks)

    def statusUpdate(self, driver: Any, update: Any) -> None:
        self.updates.put(dict(update))


async def get_json(http: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as answer:
            return await answer.json()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def leader_of(http: aiohttp.ClientSession, masters: dict[str, Any]) -> str | None:
    """The URL of the one master whose /state says it is elected (None: none is)."""
    elected = []
    for url in masters:
        state = await get_json(http, f"{url}/state")
        if state is not None and "elected_time" in state:
            elected.append(url)
    assert len(elected) <= 1, f"two masters lead at once: {elected}"
    return elected[0] if elected else None


def drain(updates: queue.Queue) -> list[dict[str, Any]]:
    out = []
    while True:
        try:
            out.append(updates.get_nowait())
        except queue.Empty:
            return out


async def test_leader_failover_loses_no_task(zookeeper, zk_url, tmp_path):
    processes: list[asyncio.subprocess.Process] = []
    masters: dict[str, asyncio.subprocess.Process] = {}
    driver = None
    try:
        for _ in range(3):
            process, url = await start_command(
                "master",
                "--port=0",
                "--hostname=127.0.0.1",
                f"--zk={zk_url}",
                f"--zk_session_timeout={SESSION}secs",
                "--allocator=python/drf",
                "--allocation_interval=0.2",
                "--heartbeat_interval=2",
                banner="master listening on",
                cwd=tmp_path,
            )
            processes.append(process)
            masters[url] = process
        for index in range(2):
            process, _ = await start_command(
                "agent",
                f"--master={zk_url}",
                f"--work_dir={tmp_path / f'agent-{index}'}",
                "--port=0",
                "--hostname=127.0.0.1",
                f"--zk_session_timeout={SESSION}secs",
                "--resources=cpus:2;mem:1024;disk:1024",
                "--registration_backoff_factor=0.1",
                banner="agent listening on",
                cwd=tmp_path,
            )
            processes.append(process)
        async with aiohttp.ClientSession() as http:
            leader: str | None = None

            async def find_leader() -> bool:
                nonlocal leader
                leader = await leader_of(http, masters)
                return leader is not None

            async def agents_at_leader() -> int:
                state = await get_json(http, f"{leader}/state") if leader else None
                return len(state["slaves"]) if state else 0

            await until_async(find_leader, SESSION + 30, "a leader")
            await until_async(lambda: _eq(agents_at_leader(), 2), 60, "both agents registered")

            scheduler = LongTasks(TASKS, str(tmp_path / "stop"))
            # A user that exists on the agents, which run tasks as their user (--switch_user).
            user = getpass.getuser()
            framework = {"user": user, "name": "ha-failover", "failover_timeout": 3600.0}
            driver = pymesos.MesosSchedulerDriver(scheduler, framework, zk_url, use_addict=False)
            await asyncio.to_thread(driver.start)

            def running() -> set[str]:
                return {u["task_id"]["value"] for u in seen if u["state"] == "TASK_RUNNING"}

            seen: list[dict[str, Any]] = []

            async def all_running() -> bool:
                seen.extend(drain(scheduler.updates))
                return len(running()) == TASKS

            await until_async(all_running, 120, "20 tasks RUNNING")
            framework_id = driver.framework_id
            assert framework_id

            for round_ in range(2):
                # kill -9 the leader: its session outlives it by the session timeout.
                old = leader
                assert old is not None
                masters.pop(old).send_signal(signal.SIGKILL)
                leader = None
                await until_async(find_leader, SESSION + 30, f"a new leader (round {round_})")
                assert leader != old

                async def adopted(leader: str = leader) -> bool:
                    state = await get_json(http, f"{leader}/state")
                    if state is None:
                        return False
                    frameworks = {f["id"]: f for f in state["frameworks"]}
                    mine = frameworks.get(framework_id)
                    return (
                        len(state["slaves"]) == 2
                        and mine is not None
                        and mine.get("active", True)
                        and len([t for t in mine["tasks"] if t["state"] == "TASK_RUNNING"]) == TASKS
                    )

                await until_async(adopted, 90, "agents and framework back at the new leader")
                assert scheduler.subscriptions >= round_ + 2  # re-subscribed by itself

                seen.extend(drain(scheduler.updates))
                before = len(seen)
                driver.reconcileTasks([])  # implicit: every task the master knows

                async def reconciled(before: int = before) -> bool:
                    seen.extend(drain(scheduler.updates))
                    answers = {
                        u["task_id"]["value"]: u["state"]
                        for u in seen[before:]
                        if u.get("reason") == "REASON_RECONCILIATION"
                    }
                    return len(answers) == TASKS

                await until_async(reconciled, 60, "reconciliation answers")
                answers = {
                    u["task_id"]["value"]: u["state"]
                    for u in seen[before:]
                    if u.get("reason") == "REASON_RECONCILIATION"
                }
                assert set(answers) == set(scheduler.launched)
                assert set(answers.values()) == {"TASK_RUNNING"}

            # Let the tasks end: exactly one terminal update each.
            (tmp_path / "stop").write_text("")

            def terminal() -> dict[str, list[str]]:
                out: dict[str, list[str]] = {}
                for u in seen:
                    if u["state"] not in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"):
                        out.setdefault(u["task_id"]["value"], []).append(u["state"])
                return out

            async def all_ended() -> bool:
                seen.extend(drain(scheduler.updates))
                return len(terminal()) == TASKS

            await until_async(all_ended, 120, "every task's terminal update")
            await asyncio.sleep(3)  # room for a duplicate to show up, if one were coming
            seen.extend(drain(scheduler.updates))
            assert terminal() == {t: ["TASK_FINISHED"] for t in scheduler.launched}

            async def acknowledged() -> bool:
                state = await get_json(http, f"{leader}/state")
                if state is None:
                    return False
                mine = {f["id"]: f for f in state["frameworks"]}.get(framework_id, {})
                done = mine.get("completed_tasks", [])
                return not mine.get("tasks") and len(done) == TASKS

            await until_async(acknowledged, 60, "acknowledged terminal updates")
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.stop)
            await asyncio.to_thread(driver.join)
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _eq(awaitable: Any, value: Any) -> bool:
    return (await awaitable) == value


async def until_async(check: Any, timeout: float, what: str) -> None:
    """Await ``check()`` until it is true, for at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
