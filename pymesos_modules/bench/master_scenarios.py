"""Master benchmark scenarios, shaped like Apache Mesos' ``src/tests/master_benchmarks.cpp``.

Every scenario starts a real master process (``python -P -m pymesos_modules
master``) and drives it through its HTTP APIs from this process: simulated
agents speak the agent protocol (docs/agent-protocol.md), frameworks the v1
scheduler API, operators ``GET /state``.  Only what Mesos' benchmark times is
inside the stopwatch; the master's CPU seconds are read from ``/proc`` over
the same window, and its RSS at the end.

Simulated agents here are what Mesos' ``TestSlave`` is: a REREGISTER with
tasks and frameworks, then nothing.  The machine allows 20,000 open files per
process, fewer than 40k agents need streams, so a simulated agent closes its
stream once REGISTERED arrives; the master keeps it, disconnected, until
``--agent_reregister_timeout`` (an hour here).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from pymesos_modules.bench.master_clients import (
    AgentShape,
    MasterProcess,
    Scheduler,
    Window,
    metrics,
    populate,
    post_json,
    reregister_all,
    reregister_call,
    scalar,
    start_master,
    start_process,
)
from pymesos_modules.bench.runner import percentile
from pymesos_modules.bench.wire import Connection, Endpoint, Pipeline, WireError, request_bytes
from pymesos_modules.jsonio import loads

logger = logging.getLogger(__name__)

AGENT_API = "/api/v1/agent"
TERMINAL = {
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
}


# --- the scenarios ------------------------------------------------------------------------


@dataclass
class Context:
    """What every scenario gets: a folder and the master's extra flags."""

    work: Path
    master_flags: list[str] = field(default_factory=list)


async def failover(ctx: Context, agents: int, shape: AgentShape) -> dict[str, Any]:
    """MasterFailover AgentReregistrationDelay: every agent re-registers to a fresh master."""
    master = await start_master(ctx.work, *ctx.master_flags)
    try:
        requests = [post_json(AGENT_API, reregister_call(i, shape)[1]) for i in range(agents)]
        with Window(master) as window:
            await reregister_all(master.endpoint, requests)
        snapshot = await metrics(master)
        return {
            "seconds": window.seconds,
            "master_cpu_s": window.cpu_seconds,
            "client_cpu_s": window.client_cpu_seconds,
            **master.rss_mb(),
            "agents": agents,
            "running_tasks": agents * shape.running,
            "master_agents": snapshot["master/slaves_active"],
            "master_tasks_running": snapshot["master/tasks_running"],
        }
    finally:
        await master.stop()


async def _get_state(connection: Connection) -> tuple[float, int, dict[str, Any] | None]:
    started = time.perf_counter()
    status, body = await connection.call(request_bytes("GET", "/state"))
    seconds = time.perf_counter() - started
    if status != 200:
        raise WireError(f"/state answered {status}")
    return seconds, len(body), None


async def state(ctx: Context, agents: int, shape: AgentShape, requests: int = 3) -> dict[str, Any]:
    """MasterStateQuery GetState: one ``/state`` at a time on a populated master."""
    master = await start_master(ctx.work, *ctx.master_flags)
    try:
        setup = await populate(master, agents, shape)
        connection = Connection(master.endpoint)
        times, size = [], 0
        with Window(master) as window:
            for _ in range(requests):
                seconds, size, _ = await _get_state(connection)
                times.append(seconds)
        _status, body = await connection.call(request_bytes("GET", "/state"))
        connection.close()
        document = json.loads(body)
        tasks = sum(len(f["tasks"]) for f in document["frameworks"])
        completed = sum(len(f["completed_tasks"]) for f in document["frameworks"])
        return {
            "seconds": statistics.median(times),
            "min_s": min(times),
            "master_cpu_s": window.cpu_seconds / requests,
            **master.rss_mb(),
            "agents": agents,
            "running_tasks": agents * shape.running,
            "completed_tasks": agents * shape.completed,
            "state_bytes": size,
            "state_agents": len(document["slaves"]),
            "state_tasks": tasks,
            "state_completed_tasks": completed,
            **setup,
        }
    finally:
        await master.stop()


def _probe_health(endpoint: Endpoint, done: threading.Event, every: float) -> list[float]:
    """Seconds of each ``GET /health`` until ``done``, over one keep-alive connection with a
    blocking socket (run in a thread of its own)."""
    times: list[float] = []
    request = request_bytes("GET", "/health")
    with socket.create_connection((endpoint.host, endpoint.port), timeout=60) as sock:
        reader = sock.makefile("rb")
        while not done.is_set():
            started = time.perf_counter()
            sock.sendall(request)
            status = reader.readline().split()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            reader.read(length)
            times.append(time.perf_counter() - started)
            if status[1:2] != [b"200"]:
                raise WireError(f"/health answered {status[1:2]}")
            time.sleep(every)
    return times


async def state_poll(
    ctx: Context,
    agents: int,
    shape: AgentShape,
    clients: int,
    requests_per_client: int,
    health_every: float = 0.01,
) -> dict[str, Any]:
    """MasterActorResponsiveness WithV0StateLoad: ``/state`` polled, ``/health`` probed."""
    master = await start_master(ctx.work, *ctx.master_flags)
    try:
        setup = await populate(master, agents, shape)
        times: list[float] = []
        done = threading.Event()

        async def client() -> None:
            connection = Connection(master.endpoint)
            try:
                for _ in range(requests_per_client):
                    seconds, _, _ = await _get_state(connection)
                    times.append(seconds)
            finally:
                connection.close()

        # In a thread of its own: this loop, busy reading 20 large answers, is not the
        # master, and its lag must not count as the master's.
        prober = asyncio.ensure_future(
            asyncio.to_thread(_probe_health, master.endpoint, done, health_every)
        )
        try:
            with Window(master) as window:
                await asyncio.gather(*(client() for _ in range(clients)))
        finally:
            done.set()  # the thread ends, even when a client failed
        health = await prober
        return {
            "seconds": statistics.median(times),
            "p95_s": percentile(times, 95),
            "health_p50_ms": 1000 * statistics.median(health),
            "health_p99_ms": 1000 * percentile(health, 99),
            "health_max_ms": 1000 * max(health),
            "health_probes": len(health),
            "window_s": window.seconds,
            "master_cpu_s": window.cpu_seconds,
            **master.rss_mb(),
            "agents": agents,
            "clients": clients,
            "state_requests": len(times),
            "running_tasks": agents * shape.running,
            "completed_tasks": agents * shape.completed,
            **setup,
        }
    finally:
        await master.stop()


async def reconcile(
    ctx: Context, tasks: int, per_agent: int = 100, per_call: int = 20000
) -> dict[str, Any]:
    """Explicit reconciliation of ``tasks`` tasks: RECONCILE calls to the last UPDATE event."""
    master = await start_master(ctx.work, *ctx.master_flags)
    agents = max(1, tasks // per_agent)
    shape = AgentShape(frameworks=1, tasks_per_framework=per_agent)
    scheduler = Scheduler(master.endpoint, "reconciler", "framework0")
    try:
        setup = await populate(master, agents, shape)
        await scheduler.subscribe()
        ids = [(f"agent{a}", f"agent{a}-0-{k}") for a in range(agents) for k in range(per_agent)]
        calls = [
            scheduler.call_bytes(
                "RECONCILE",
                {
                    "tasks": [
                        {"task_id": {"value": t}, "agent_id": {"value": a}}
                        for a, t in ids[i : i + per_call]
                    ]
                },
            )
            for i in range(0, len(ids), per_call)
        ]
        assert scheduler.stream is not None
        stream = scheduler.stream
        answered = 0
        with Window(master) as window:
            for request in calls:
                await scheduler.call(request)
            while answered < len(ids):
                for record in await stream.next_batch():
                    if loads(record).get("type") == "UPDATE":
                        answered += 1
        return {
            "seconds": window.seconds,
            "master_cpu_s": window.cpu_seconds,
            "client_cpu_s": window.client_cpu_seconds,
            **master.rss_mb(),
            "tasks": len(ids),
            "reconcile_calls": len(calls),
            "updates_received": answered,
            **setup,
        }
    finally:
        scheduler.close()
        await master.stop()


def _launch(
    agent_id: str, task_id: str, command: dict[str, Any], cpus: float, mem: float
) -> dict[str, Any]:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": [scalar("cpus", cpus), scalar("mem", mem)],
        "command": command,
    }


def fits(offer: dict[str, Any], plan: LaunchPlan) -> int:
    """How many of the plan's tasks the offer's scalar resources hold."""
    have: dict[str, float] = {}
    for resource in offer.get("resources", []):
        if resource.get("type") == "SCALAR":
            name = resource["name"]
            have[name] = have.get(name, 0.0) + resource["scalar"]["value"]
    # A little slack: offers are sums of floats.
    return int(min(have.get("cpus", 0.0) / plan.cpus, have.get("mem", 0.0) / plan.mem) + 1e-9)


@dataclass
class LaunchPlan:
    """How a framework turns offers into tasks, and what it counts as done."""

    tasks: int
    per_offer: int
    cpus: float
    mem: float
    command: dict[str, Any]
    done_state: str
    acknowledge: bool


@dataclass
class Progress:
    """What the frameworks of one run have seen, together."""

    plan: LaunchPlan
    counts: dict[str, int] = field(default_factory=dict)
    launched: int = 0
    failed: int = 0
    first_offer: float | None = None
    all_done: asyncio.Event = field(default_factory=asyncio.Event)

    def update(self, state: str) -> None:
        """Count one status update; every task reached its end: all done."""
        self.counts[state] = self.counts.get(state, 0) + 1
        if state in TERMINAL and state != self.plan.done_state:
            self.failed += 1
        if self.counts.get(self.plan.done_state, 0) + self.failed >= self.plan.tasks:
            self.all_done.set()


class FrameworkDriver:
    """One framework of a launch run: reads its stream, answers offers at once.

    Calls go out pipelined (wire.Pipeline) without waiting for earlier answers,
    so a framework never stops reading its events while its ACCEPTs travel,
    and all frameworks launch concurrently.  Each launches at most its
    ``share`` of the plan's tasks; offers it does not use go back in one
    DECLINE with a long filter (Mesos' "not for me"), so the allocator offers
    those agents to the other frameworks.
    """

    def __init__(self, scheduler: Scheduler, progress: Progress, share: int) -> None:
        self.scheduler = scheduler
        self.progress = progress
        self.share = share
        self.launched = 0
        self.serial = 0
        self.calls = Pipeline(scheduler.endpoint)

    def _answer_offers(self, offers: list[dict[str, Any]]) -> None:
        plan, name = self.progress.plan, self.scheduler.name
        unused: list[dict[str, Any]] = []
        for offer in offers:
            room = min(plan.per_offer, self.share - self.launched, fits(offer, plan))
            if room <= 0:
                unused.append(offer["id"])
                continue
            agent_id = offer["agent_id"]["value"]
            infos = []
            for _ in range(room):
                self.serial += 1
                infos.append(
                    _launch(agent_id, f"{name}-{self.serial}", plan.command, plan.cpus, plan.mem)
                )
            self.launched += room
            self.progress.launched += room
            body = {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}],
                "filters": {"refuse_seconds": 0.0},
            }
            self.calls.send(self.scheduler.call_bytes("ACCEPT", body))
        if unused:
            body = {"offer_ids": unused, "filters": {"refuse_seconds": 3600.0}}
            self.calls.send(self.scheduler.call_bytes("DECLINE", body))

    def _update(self, status: dict[str, Any]) -> None:
        self.progress.update(status["state"])
        if self.progress.plan.acknowledge and "uuid" in status:
            ack = {
                "agent_id": status["agent_id"],
                "task_id": status["task_id"],
                "uuid": status["uuid"],
            }
            self.calls.send(self.scheduler.call_bytes("ACKNOWLEDGE", ack))

    async def run(self) -> None:
        """Answer events until every framework's tasks are done (or the stream ends)."""
        assert self.scheduler.stream is not None
        stream = self.scheduler.stream
        await self.calls.open()
        progress = self.progress
        while not progress.all_done.is_set():
            try:
                records = await stream.next_batch()
            except EOFError:
                return
            for record in records:
                event = loads(record)
                kind = event.get("type")
                if kind == "OFFERS":
                    if progress.first_offer is None:
                        progress.first_offer = time.perf_counter()
                    self._answer_offers(event["offers"]["offers"])
                elif kind == "UPDATE":
                    self._update(event["update"]["status"])

    def close(self) -> None:
        """Drop its connections."""
        self.calls.close()
        self.scheduler.close()


async def frameworks_launch(
    master: MasterProcess, frameworks: int, plan: LaunchPlan, timeout: float
) -> dict[str, Any]:
    """Subscribe ``frameworks`` frameworks, launch ``plan.tasks`` tasks; first offer to done."""
    progress = Progress(plan)
    share = -(-plan.tasks // frameworks)
    drivers = [
        FrameworkDriver(Scheduler(master.endpoint, f"bench{i}"), progress, share)
        for i in range(frameworks)
    ]
    cpu_start = master.cpu_seconds()
    client_start = time.process_time()
    try:
        await asyncio.gather(*(d.scheduler.subscribe() for d in drivers))
        runs = [asyncio.create_task(d.run()) for d in drivers]
        waiter = asyncio.create_task(progress.all_done.wait())
        # A driver that fails (a call answered other than 202) ends the run with its error.
        await asyncio.wait([waiter, *runs], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finished = time.perf_counter()
        # Read now: closing the streams below makes the master tear every framework down.
        cpu_seconds = master.cpu_seconds() - cpu_start
        client_cpu_seconds = time.process_time() - client_start
        waiter.cancel()
        for run in runs:
            if run.done() and run.exception() is not None:
                raise run.exception()  # type: ignore[misc]
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        for driver in drivers:
            if driver.calls.error is not None:
                raise driver.calls.error
    finally:
        for driver in drivers:
            driver.close()
    done = progress.counts.get(plan.done_state, 0)
    started = progress.first_offer
    seconds = finished - started if started is not None else float("nan")
    return {
        "seconds": seconds,
        "tasks_per_s": done / seconds if seconds > 0 else 0.0,
        "master_cpu_s": cpu_seconds,
        # the frameworks' own CPU over the same window: the driver must not be what is timed
        "client_cpu_s": client_cpu_seconds,
        **master.rss_mb(),
        "frameworks": frameworks,
        "tasks_launched": progress.launched,
        "tasks_done": done,
        "timed_out": not progress.all_done.is_set(),
        "states": dict(progress.counts),
    }


async def offers(
    ctx: Context, agents: int, frameworks: int, tasks: int, timeout: float
) -> dict[str, Any]:
    """Offer -> ACCEPT -> TASK_RUNNING through the scheduler API on simulated agents."""
    master = await start_master(
        ctx.work,
        "--simulated_agents",
        str(agents),
        "--simulated_agent_resources",
        "cpus:8;mem:16384;disk:100000",
        *ctx.master_flags,
    )
    try:
        per_offer = max(1, -(-tasks // agents))
        plan = LaunchPlan(
            tasks,
            per_offer,
            # Each agent is used up exactly (what disk is left is not offered):
            # a leftover would go round every framework as an offer to decline.
            8 / per_offer,
            16384 / per_offer,
            {"value": "sleep 1000"},
            "TASK_RUNNING",
            acknowledge=False,
        )
        result = await frameworks_launch(master, frameworks, plan, timeout)
        return {**result, "agents": agents}
    finally:
        await master.stop()


async def launch(
    ctx: Context,
    tasks: int,
    agents: int = 2,
    timeout: float = 600.0,
    agent_flags: list[str] | None = None,
) -> dict[str, Any]:
    """Real ``true`` tasks through real agents, first offer to the last TASK_FINISHED."""
    master = await start_master(ctx.work, "--allocation_interval", "0.1", *ctx.master_flags)
    processes = []
    try:
        for index in range(agents):
            work = ctx.work / f"agent{index}"
            process, _ = await start_process(
                [
                    "agent",
                    "--master",
                    master.url,
                    "--work_dir",
                    str(work),
                    "--port",
                    "0",
                    "--hostname",
                    f"bench-agent-{index}",
                    "--resources",
                    "cpus:32;mem:65536;disk:10000",
                    "--status_update_retry_interval_min",
                    "5",
                    *(agent_flags or []),
                ],
                "agent listening on",
                ctx.work / f"agent{index}.log",
            )
            processes.append(process)
        await _wait_agents(master, agents)
        plan = LaunchPlan(
            tasks,
            100,
            0.1,
            16.0,
            {"shell": True, "value": "true"},
            "TASK_FINISHED",
            acknowledge=True,
        )
        result = await frameworks_launch(master, 1, plan, timeout)
        return {**result, "agents": agents}
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        await master.stop()


async def _wait_agents(master: MasterProcess, agents: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (await metrics(master))["master/slaves_active"] < agents:
        if time.monotonic() > deadline:
            raise WireError(f"{agents} agents did not register in {timeout:.0f} s")
        await asyncio.sleep(0.2)


def run_scenario(
    body: Callable[[Context], Awaitable[dict[str, Any]]], master_flags: list[str] | None = None
) -> dict[str, Any]:
    """Run one scenario in a fresh folder (removed afterwards) and event loop."""
    with (
        tempfile.TemporaryDirectory(prefix="pmm-bench-master-") as folder,
        # uvloop: the simulated agents' connections cost the benchmark about half the
        # CPU they cost on asyncio's own loop, so the client stays small beside the master.
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        return runner.run(body(Context(Path(folder), list(master_flags or []))))
