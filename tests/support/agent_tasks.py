"""Framework-side helpers for the agent tests: launch a command, follow and ack its updates."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pymesos_modules import paths
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.master.cli import FLAGS as MASTER_FLAGS
from support.scheduler import REVOCABLE, Scheduler

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR"}


def task_info(
    offer: dict[str, Any],
    task_id: str,
    command: dict[str, Any] | str,
    cpus: float = 0.5,
    mem: float = 64,
    ports: tuple[int, int] | None = None,
    revocable: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
    ]
    if revocable:
        for r in resources:
            r["revocable"] = {}
    if ports:
        resources.append(
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": ports[0], "end": ports[1]}]},
            }
        )
    if isinstance(command, str):
        command = {"shell": True, "value": command}
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": resources,
        "command": command,
        **extra,
    }


def python_modules(*entries: tuple[str, str, dict[str, str]]) -> str:
    """--modules JSON for (class in support.agent_modules, module name, parameters)."""
    return json.dumps(
        {
            "libraries": [
                {
                    "python": f"support.agent_modules:{cls}",
                    "modules": [
                        {
                            "name": name,
                            "parameters": [{"key": k, "value": v} for k, v in params.items()],
                        }
                    ],
                }
                for cls, name, params in entries
            ]
        }
    )


def holds_revocable_cpus(offer: dict[str, Any]) -> bool:
    """True when the offer has revocable cpus as well as regular ones."""
    kinds = {"revocable" in r for r in offer["resources"] if r["name"] == "cpus"}
    return kinds == {True, False}


def revocable_cpus(event: dict[str, Any]) -> float:
    """How many revocable cpus an OFFERS event holds."""
    return sum(
        r["scalar"]["value"]
        for o in event["offers"]["offers"]
        for r in o["resources"]
        if "revocable" in r and r["name"] == "cpus"
    )


async def launch(
    scheduler: Scheduler,
    *tasks_of_offer,
    timeout: float = 20.0,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Wait for an offer (``where`` it holds), launch ``tasks_of_offer(offer)`` on it."""

    def wanted(event: dict[str, Any]) -> bool:
        return where is None or any(where(o) for o in event["offers"]["offers"])

    event = await scheduler.next("OFFERS", timeout, where=wanted)
    offer = next(o for o in event["offers"]["offers"] if where is None or where(o))
    tasks = [make(offer) for make in tasks_of_offer]
    call = {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
            "filters": {"refuse_seconds": 0},
        },
    }
    assert await scheduler.call(call) == 202, scheduler.last_text
    return offer


@contextlib.asynccontextmanager
async def steady_and_spare(master_url: str, session: Any) -> AsyncIterator[Scheduler]:
    """A REVOCABLE_RESOURCES framework running a regular task "steady" and a revocable "spare".

    The agent must report revocable cpus and mem (a fixed estimator) for the
    offer the two are launched on.
    """
    scheduler = Scheduler(master_url, session)
    await scheduler.subscribe(capabilities=REVOCABLE)
    try:
        await launch(
            scheduler,
            lambda o: task_info(o, "steady", "sleep 600"),
            lambda o: task_info(o, "spare", "sleep 600", revocable=True),
            where=holds_revocable_cpus,
        )
        yield scheduler
    finally:
        await scheduler.close()


async def ack(scheduler: Scheduler, status: dict[str, Any]) -> None:
    if "uuid" not in status:
        return
    call = {
        "type": "ACKNOWLEDGE",
        "acknowledge": {
            "agent_id": status["agent_id"],
            "task_id": status["task_id"],
            "uuid": status["uuid"],
        },
    }
    assert await scheduler.call(call) == 202, scheduler.last_text


async def follow(
    scheduler: Scheduler,
    task_id: str,
    until: str | set[str] = frozenset(TERMINAL),
    acknowledge: bool = True,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """The task's statuses (acked as they come) up to the first in ``until``."""
    wanted = {until} if isinstance(until, str) else set(until)
    seen = []
    while True:
        event = await scheduler.next(
            "UPDATE", timeout, where=lambda e: e["update"]["status"]["task_id"]["value"] == task_id
        )
        status = event["update"]["status"]
        seen.append(status)
        if acknowledge:
            await ack(scheduler, status)
        if status["state"] in wanted:
            return seen


async def follow_all(
    scheduler: Scheduler, task_ids: set[str], until: str, timeout: float = 30.0
) -> dict[str, list[dict[str, Any]]]:
    """Like :func:`follow` for several tasks at once (no task's updates are skipped)."""
    seen: dict[str, list[dict[str, Any]]] = {t: [] for t in task_ids}
    while not all(s and s[-1]["state"] == until for s in seen.values()):
        event = await scheduler.next(
            "UPDATE", timeout, where=lambda e: e["update"]["status"]["task_id"]["value"] in seen
        )
        status = event["update"]["status"]
        seen[status["task_id"]["value"]].append(status)
        await ack(scheduler, status)
    return seen


async def until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll state until ``predicate()`` holds (no timing assertions, just a generous bound)."""

    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def restarted(agent_factory: Any, first: Any, **flags: Any) -> Any:
    """``first`` goes away leaving its tasks and executors running; a new agent with
    ``flags`` on its work_dir and port (executors know the agent by its address) takes over."""
    work_dir, port = first.agent.flags.work_dir, first.agent.flags.port
    await first.stop(kill_tasks=False)
    return await agent_factory(work_dir=work_dir, port=port, **flags)


def master_args(**overrides: Any) -> argparse.Namespace:
    values = {name: default for name, _, default, _ in MASTER_FLAGS}
    values.update(
        port=0,
        allocation_interval=0.05,
        heartbeat_interval=0.5,
        allocator="python/drf",
        agent_reregister_timeout=60.0,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def agent_args(master_url: str, work_dir: str, **overrides: Any) -> argparse.Namespace:
    values = {name: default for name, _, default, _ in agent_cli.FLAGS}
    values.update(
        master=master_url.removeprefix("http://"),
        work_dir=work_dir,
        port=0,
        hostname="agent-host",
        resources="cpus:4;mem:4096;disk:4096;ports:[31000-31009]",
        executor_shutdown_grace_period=3.0,
        registration_backoff_factor=0.1,
        status_update_retry_interval_min=0.5,
        status_update_retry_interval_max=2.0,
        container_watch_interval=0.1,
        allow_insecure_modules=False,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


async def start_command(
    *args: str, banner: str, cwd: Path | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    """``pymesos-modules ARGS`` in a process of its own, and the URL its first line gives.

    The process imports the package under test, wherever this test process
    imports it from (never from ``cwd``).  Its first line must start with
    ``banner``; if it does not, the process is killed before the assertion fails.
    """
    process = await asyncio.create_subprocess_exec(
        *paths.module_command("pymesos_modules", *args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=cwd,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line.startswith(banner), line
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process, line.split()[-1]
