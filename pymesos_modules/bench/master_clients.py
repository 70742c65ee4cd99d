"""The master and its clients for the master benchmarks (``master_scenarios``).

A master process started as a user starts it; simulated agents that
re-register with tasks as Mesos' ``TestSlave`` does; frameworks speaking the
v1 scheduler API; and the window that reads the master's CPU seconds from
``/proc`` around what is timed.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymesos_modules.bench.wire import (
    Connection,
    Endpoint,
    RecordStream,
    WireError,
    first_record,
    open_stream,
    post_json,
    request_bytes,
)
from pymesos_modules.jsonio import loads
from pymesos_modules.paths import module_command

#: The user the bench's frameworks run tasks as: whoever runs the bench, who exists
#: here. Agents switch to the task's user (--switch_user, on by default as in
#: Mesos), so a made-up user would fail every real task.
BENCH_USER = getpass.getuser()

AGENT_API = "/api/v1/agent"
SCHEDULER_API = "/api/v1/scheduler"
#: Streams being opened at once: more only overflows the server's listen backlog
#: (a dropped SYN costs a one-second retransmit, which would be timed).
OPENING = 64


# --- the master process -------------------------------------------------------------------


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


@dataclass
class MasterProcess:
    """A master started for one scenario."""

    process: asyncio.subprocess.Process
    url: str
    log: Path

    @property
    def endpoint(self) -> Endpoint:
        """Host and port of its HTTP server."""
        return Endpoint.parse(self.url)

    def cpu_seconds(self) -> float:
        """User + system seconds the master has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _clock_ticks()

    def rss_mb(self) -> dict[str, float]:
        """Resident memory now and at its peak, MiB."""
        out = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out["rss_mb" if line.startswith("VmRSS") else "peak_rss_mb"] = (
                    int(line.split()[1]) / 1024
                )
        return out

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_process(args: list[str], banner: str, log: Path) -> tuple[Any, str]:
    """``pymesos-modules ARGS`` in a child (paths.module_command); the URL its first line gives."""
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            *module_command("pymesos_modules", *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            stdin=asyncio.subprocess.DEVNULL,
        )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
    except TimeoutError:
        line = ""
    if not line.startswith(banner):
        process.kill()
        await process.wait()
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise WireError(f"{' '.join(args[:1])} did not start: {line!r} {tail}")
    return process, line.split()[-1]


async def start_master(work: Path, *flags: str) -> MasterProcess:
    """A master on a free port, quiet timers, its log in ``work``."""
    log = work / "master.log"
    process, url = await start_process(
        [
            "master",
            "--port",
            "0",
            "--work_dir",
            str(work / "master"),
            "--agent_reregister_timeout",
            "3600",
            "--heartbeat_interval",
            "3600",
            "--agent_ping_timeout",
            "3600",
            *flags,
        ],
        "master listening on",
        log,
    )
    return MasterProcess(process, url, log)


# --- what simulated agents and frameworks send --------------------------------------------


def scalar(name: str, value: float) -> dict[str, Any]:
    """A Mesos SCALAR Resource."""
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def _labels() -> dict[str, Any]:
    # Mesos' benchmark gives every task ten labels.
    return {"labels": [{"key": f"key{i}", "value": f"value{i}"} for i in range(10)]}


def framework_info(framework_id: str) -> dict[str, Any]:
    """A FrameworkInfo as an agent re-registering with its tasks sends it."""
    return {
        "id": {"value": framework_id},
        "name": framework_id,
        "user": BENCH_USER,
        "roles": ["*"],
        "failover_timeout": 0,
    }


def task_entry(agent_id: str, framework_id: str, task_id: str, state: str) -> dict[str, Any]:
    """One task a re-registering agent lists (Mesos' createTaskInfo: cpus:0.1;mem:5)."""
    info = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": [scalar("cpus", 0.1), scalar("mem", 5)],
        "command": {"value": "dummy command"},
        "labels": _labels(),
    }
    return {"framework_id": {"value": framework_id}, "task_info": info, "state": state}


@dataclass(frozen=True)
class AgentShape:
    """What each simulated agent runs (Mesos' benchmark parameters)."""

    frameworks: int = 5
    tasks_per_framework: int = 2
    completed_frameworks: int = 0
    tasks_per_completed_framework: int = 0

    @property
    def running(self) -> int:
        """Running tasks per agent."""
        return self.frameworks * self.tasks_per_framework

    @property
    def completed(self) -> int:
        """Finished tasks per agent."""
        return self.completed_frameworks * self.tasks_per_completed_framework


def reregister_call(index: int, shape: AgentShape) -> tuple[str, dict[str, Any]]:
    """Agent ``index``'s REREGISTER (Mesos' createSlaveInfo: cpus:20;mem:10240)."""
    agent_id = f"agent{index}"
    tasks, frameworks = [], []
    for fw in range(shape.frameworks + shape.completed_frameworks):
        framework_id = f"framework{fw}"
        frameworks.append(framework_info(framework_id))
        done = fw >= shape.frameworks
        count = shape.tasks_per_completed_framework if done else shape.tasks_per_framework
        for k in range(count):
            state = "TASK_FINISHED" if done else "TASK_RUNNING"
            tasks.append(task_entry(agent_id, framework_id, f"{agent_id}-{fw}-{k}", state))
    body = {
        "protocol_version": 1,
        "agent_id": {"value": agent_id},
        "hostname": agent_id,
        "resources": [scalar("cpus", 20), scalar("mem", 10240)],
        "tasks": tasks,
        "frameworks": frameworks,
    }
    return agent_id, {"type": "REREGISTER", "reregister": body}


async def reregister_all(
    endpoint: Endpoint, requests: list[bytes], then: list[list[bytes]] | None = None
) -> None:
    """Every agent re-registers, at most OPENING at once; each closes after REGISTERED.

    ``then[i]``: calls agent ``i`` makes while its stream is open (an agent's
    calls carry its stream's token), before it closes.
    """
    gate = asyncio.Semaphore(OPENING)

    async def one(index: int, request: bytes) -> None:
        async with gate:
            if not then:  # REGISTERED, then hang up: the leanest client there is
                first = loads(await first_record(endpoint, request))
                if first.get("type") != "REGISTERED":
                    raise WireError(f"expected REGISTERED, got {first.get('type')}")
                return
            stream = await open_stream(endpoint, request)
            try:
                first = await stream.next()
                if first.get("type") != "REGISTERED":
                    raise WireError(f"expected REGISTERED, got {first.get('type')}")
                calls = then[index] if then else []
                if calls:
                    token = stream.head.headers.get("mesos-stream-id", "")
                    header = b"\r\nMesos-Stream-Id: " + token.encode() + b"\r\n\r\n"
                    connection = Connection(endpoint)
                    try:
                        for call in calls:
                            status, body = await connection.call(
                                call.replace(b"\r\n\r\n", header, 1)
                            )
                            if status != 202:
                                raise WireError(f"answered {status}: {body[:300]!r}")
                    finally:
                        connection.close()
            finally:
                stream.close()

    await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))


def _uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


def finish_updates(index: int, shape: AgentShape) -> list[bytes]:
    """The terminal UPDATE calls for agent ``index``'s finished tasks."""
    agent_id = f"agent{index}"
    out = []
    for fw in range(shape.frameworks, shape.frameworks + shape.completed_frameworks):
        for k in range(shape.tasks_per_completed_framework):
            status = {
                "task_id": {"value": f"{agent_id}-{fw}-{k}"},
                "state": "TASK_FINISHED",
                "uuid": _uuid(),
                "source": "SOURCE_EXECUTOR",
            }
            call = {
                "type": "UPDATE",
                "agent_id": {"value": agent_id},
                "update": {"framework_id": {"value": f"framework{fw}"}, "status": status},
            }
            out.append(post_json(AGENT_API, call, {"Pmm-Agent-Id": agent_id}))
    return out


async def call_all(
    endpoint: Endpoint, requests: list[bytes], connections: int = 16, expect: int = 202
) -> None:
    """Send every request over ``connections`` keep-alive connections; each answers ``expect``."""
    queue = iter(requests)

    async def worker() -> None:
        connection = Connection(endpoint)
        try:
            for request in queue:
                status, body = await connection.call(request)
                if status != expect:
                    raise WireError(f"answered {status}: {body[:300]!r}")
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(connections)))


async def populate(master: MasterProcess, agents: int, shape: AgentShape) -> dict[str, float]:
    """Re-register ``agents`` agents of ``shape`` and finish their completed tasks (untimed)."""
    started = time.perf_counter()
    requests = [post_json(AGENT_API, reregister_call(i, shape)[1]) for i in range(agents)]
    updates = [finish_updates(i, shape) for i in range(agents)]
    # The terminal updates go on each agent's own connection, as the agent API demands.
    await reregister_all(master.endpoint, requests, updates)
    done = time.perf_counter()
    count = sum(len(u) for u in updates)
    return {
        "setup_reregister_s": done - started,
        "setup_updates": count,
        "setup_updates_per_s": count / max(done - started, 1e-9),
    }


# --- measurement --------------------------------------------------------------------------


@dataclass
class Window:
    """Wall and master CPU seconds over a timed section, and the benchmark's own CPU
    seconds: a client that used about as much CPU as the master may be what was timed."""

    master: MasterProcess
    started: float = 0.0
    cpu_started: float = 0.0
    client_started: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    def __enter__(self) -> Window:
        self.cpu_started = self.master.cpu_seconds()
        self.client_started = time.process_time()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu_seconds = self.master.cpu_seconds() - self.cpu_started
        self.client_cpu_seconds = time.process_time() - self.client_started


async def metrics(master: MasterProcess) -> dict[str, float]:
    """The master's /metrics/snapshot."""
    connection = Connection(master.endpoint)
    try:
        status, body = await connection.call(request_bytes("GET", "/metrics/snapshot"))
    finally:
        connection.close()
    if status != 200:
        raise WireError(f"/metrics/snapshot answered {status}")
    return json.loads(body)


class Scheduler:
    """A v1 scheduler API client: one subscription stream and one connection for calls."""

    def __init__(self, endpoint: Endpoint, name: str, framework_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.framework_id = framework_id
        self.stream: RecordStream | None = None
        self.stream_id = ""
        self.connection = Connection(endpoint)

    async def subscribe(self) -> None:
        """SUBSCRIBE (with the framework id, if given) and wait for SUBSCRIBED."""
        info: dict[str, Any] = {"user": BENCH_USER, "name": self.name, "roles": ["*"]}
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
        request = post_json(
            SCHEDULER_API, {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        )
        self.stream = await open_stream(self.endpoint, request)
        self.stream_id = self.stream.head.headers.get("mesos-stream-id", "")
        first = await self.stream.next()
        if first.get("type") != "SUBSCRIBED":
            raise WireError(f"expected SUBSCRIBED, got {first}")
        self.framework_id = first["subscribed"]["framework_id"]["value"]

    def call_bytes(self, kind: str, body: dict[str, Any]) -> bytes:
        """A prepared scheduler call of this framework."""
        call = {"type": kind, "framework_id": {"value": self.framework_id}, kind.lower(): body}
        return post_json(SCHEDULER_API, call, {"Mesos-Stream-Id": self.stream_id})

    async def call(self, request: bytes) -> None:
        """Send a prepared call; it must be accepted (202)."""
        status, body = await self.connection.call(request)
        if status != 202:
            raise WireError(f"scheduler call answered {status}: {body[:300]!r}")

    def close(self) -> None:
        """Drop both connections."""
        if self.stream is not None:
            self.stream.close()
        self.connection.close()
