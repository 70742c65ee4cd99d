"""Registration with the master: the agent's one connection, and the commands it carries.

:class:`Registration` REGISTERs, or REREGISTERs with the tasks it still runs
once the agent has an id; reads the master's RecordIO command stream and hands
each event to the agent (RUN_TASK, KILL_TASK, ACKNOWLEDGED, ...); on EOF, a
reset or a silent master (no event for 3 heartbeat intervals) it keeps the
tasks running and tries again with backoff (1 s doubling to 30 s).  Calls
the agent makes (UPDATE, HEARTBEAT, UPDATE_OVERSUBSCRIBED) go through
:meth:`Registration.post`.  The protocol is docs/agent-protocol.md.  With
``--master=zk://...`` the master is whichever leads (agent/leader.py): a new
leader ends the session and the agent re-registers with it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from pymesos_modules import jsonio
from pymesos_modules.agent.leader import follows_zookeeper
from pymesos_modules.agent.records import Container
from pymesos_modules.zookeeper import parse_zk_url

if TYPE_CHECKING:
    from pymesos_modules.agent.agent import Agent

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
AGENT_HEADER = "Pmm-Agent-Id"
#: How long one call to the master may take.
CALL_TIMEOUT = aiohttp.ClientTimeout(total=30.0)
#: The token of this agent's connection, given with REGISTERED; every other call
#: carries it (docs/agent-protocol.md)
STREAM_HEADER = "Mesos-Stream-Id"
#: Cap of the re-registration backoff (docs/agent-protocol.md).
REGISTRATION_BACKOFF_MAX = 30.0
#: Until REGISTERED says otherwise, the heartbeat interval we expect (Mesos' default).
DEFAULT_HEARTBEAT = 15.0


class RegistrationRefused(Exception):
    """The master refused REGISTER/REREGISTER for a reason retrying cannot fix."""


def master_url(master: str) -> str | None:
    """``--master=HOST:PORT`` (or a URL) -> the master's base URL; None for
    ``zk://``/``file://`` (the leader is detected: agent/leader.py)."""
    if follows_zookeeper(master):
        parse_zk_url(master, "--master")  # a URL that does not parse fails here, at once
        return None
    url = master if master.startswith(("http://", "https://")) else f"http://{master}"
    host = url.split("://", 1)[1].split("/", 1)[0]
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit():
        raise ValueError(f"--master={master}: expected HOST:PORT (e.g. 127.0.0.1:5050)")
    return url.rstrip("/")


def complete_records(pending: bytearray) -> list[bytes]:
    """The whole RecordIO records (``<length>\\n<JSON>``) at the start of ``pending``, taken
    out of it; a record not complete yet stays.  ValueError on a bad length line."""
    records = []
    start = 0
    while True:
        newline = pending.find(b"\n", start)
        if newline < 0:
            if len(pending) - start > 32:
                raise ValueError(f"bad RecordIO length {bytes(pending[start : start + 40])!r}")
            break
        head = pending[start:newline].strip()
        if not head:  # blank lines between records carry nothing
            start = newline + 1
            continue
        try:
            size = int(head)
        except ValueError:
            raise ValueError(f"bad RecordIO length {bytes(head[:40])!r} from the master") from None
        end = newline + 1 + size
        if len(pending) < end:
            break
        records.append(bytes(pending[newline + 1 : end]))
        start = end
    del pending[:start]
    return records


def task_entry(container: Container) -> dict[str, Any]:
    """A REREGISTER task entry; ``role`` from the resources' allocation_info, if any;
    ``executor_id`` when the task runs on an executor (as Mesos' Task says)."""
    entry: dict[str, Any] = {
        "framework_id": {"value": container.framework_id},
        "task_info": container.info,
        "state": container.state,
    }
    if container.executor is not None:
        entry["executor_id"] = {"value": container.executor.executor_id}
    for item in container.info.get("resources") or []:
        role = (item.get("allocation_info") or {}).get("role") if isinstance(item, dict) else None
        if isinstance(role, str) and role:
            entry["role"] = role
            break
    return entry


async def remove_when_done(dying: list[Container], folder: Path) -> None:
    """Remove ``folder`` once every container of ``dying`` has finished."""
    waits = [asyncio.ensure_future(c.finished.wait()) for c in dying]
    if waits:
        await asyncio.wait(waits)
    for container in dying:
        container.run_dir = None
    shutil.rmtree(folder, ignore_errors=True)


class Registration:
    """The agent's side of the agent protocol; all state it changes is the agent's."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        #: the token of the current (or last) connection to the master
        self.stream_token: str | None = None
        #: (master URL, its agent API URL), see _api_url
        self._api: tuple[str | None, URL] | None = None

    def register_call(self) -> dict[str, Any]:
        """REGISTER, or REREGISTER with the tasks and frameworks once the agent has an id."""
        body: dict[str, Any] = {
            "protocol_version": PROTOCOL_VERSION,
            "hostname": self.agent.flags.hostname,
            "resources": self.agent.resources,
            "attributes": self.agent.attributes,
        }
        if self.agent.agent_id is None:
            return {"type": "REGISTER", "register": body}
        body["agent_id"] = {"value": self.agent.agent_id}
        body["tasks"] = [task_entry(c) for c in self.agent.all_containers()]
        # As Mesos' ReregisterSlaveMessage.executor_infos: the executors still running
        # (a terminated one holds nothing), so a restarted master accounts their resources.
        executors = [e for e in self.agent.executor_room.all() if e.state != "TERMINATED"]
        body["executor_infos"] = [
            {**e.info, "framework_id": {"value": e.framework_id}} for e in executors
        ]
        # A restarted master knows the frameworks of adopted tasks from these alone.
        body["frameworks"] = [
            {**self.agent.frameworks.get(framework_id, {}), "id": {"value": framework_id}}
            for framework_id in sorted(
                set(self.agent.containers) | {e.framework_id for e in executors}
            )
        ]
        return {"type": "REREGISTER", "reregister": body}

    async def run(self) -> None:
        """Stay connected to the master until the agent stops; backoff between attempts."""
        factor = self.agent.flags.registration_backoff_factor
        backoff = factor
        leader = self.agent.leader
        while not self.agent.stopping:
            was_registered = self.agent.counters["registrations"]
            changes = leader.changes
            await leader.wait_for_leader()
            try:
                await self._session_once()
            except RegistrationRefused as exc:
                self.agent.fail(str(exc))
                return
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                logger.info("master %s unreachable or gone: %s", self.agent.url, exc or type(exc))
            except asyncio.IncompleteReadError:
                logger.info("master %s closed the stream mid-record", self.agent.url)
            self.disconnected()
            if self.agent.counters["registrations"] != was_registered or leader.changes != changes:
                backoff = factor  # got through, or a new leader: start the backoff afresh
            if leader.changes != changes:
                continue  # a new leader: re-register with it at once, as Mesos' agent does
            logger.info("re-registering in %.1f s", backoff)
            await leader.pause(backoff)  # a new leader cuts the wait short
            backoff = min(backoff * 2, REGISTRATION_BACKOFF_MAX)

    def leader_changed(self) -> None:
        """A new leading master (or none): end the current session so :meth:`run`
        re-registers with the new one."""
        if self.agent.stream is not None:
            self.agent.stream.close()

    def disconnected(self) -> None:
        """The stream is gone: hold the updates, tasks keep running."""
        if self.agent.registered:
            logger.warning("lost the master %s; tasks keep running", self.agent.url)
        self.agent.registered = False
        self.agent.updates.set_connected(False)
        if self.agent.stream is not None:
            self.agent.stream.close()
            self.agent.stream = None

    async def _session_once(self) -> None:
        assert self.agent.session is not None
        call = self.register_call()
        headers = self.headers()
        if call["type"] != "REREGISTER":
            headers.pop(STREAM_HEADER, None)
        # With a REREGISTER, our last connection's token shows that this is the same
        # agent: the master lets it replace a connection it still thinks open.
        response = await self.agent.session.post(
            f"{self.agent.url}/api/v1/agent", json=call, headers=headers
        )
        self.agent.stream = response
        if response.status != 200:
            text = (await response.text()).strip()
            response.close()
            message = f"master {self.agent.url} refused {call['type']} ({response.status}): {text}"
            # A 409 with Retry-After: our id still has a connection the master thinks
            # open (we restarted faster than it noticed); it lets go after a ping timeout.
            retry = response.status == 409 and "Retry-After" in response.headers
            if response.status in (400, 401, 403, 409, 413, 415) and not retry:
                raise RegistrationRefused(message)
            raise aiohttp.ClientError(message)
        self.stream_token = response.headers.get(STREAM_HEADER)
        content = response.content
        pending = bytearray()
        while not self.agent.stopping:
            # Whatever has arrived, in one read: under load a read holds many events, and
            # one timed wait per read (not two per event) keeps the stream cheap.
            chunk = await asyncio.wait_for(content.readany(), 3 * self.agent.heartbeat_interval)
            if not chunk:
                logger.info("master %s ended the stream", self.agent.url)
                return
            pending += chunk
            for data in complete_records(pending):
                if self.handle(jsonio.loads(data)) == "reregister":
                    return

    async def pong(self) -> None:
        """Answer the master's HEARTBEAT (its proof that this agent is alive)."""
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, OSError, TimeoutError):
            await self.post({"type": "HEARTBEAT"})

    def headers(self) -> dict[str, str]:
        """Headers of every call: the credential, and the connection's token once there is one."""
        headers = {}
        if self.agent.flags.authorization is not None:
            headers["Authorization"] = self.agent.flags.authorization
        if self.stream_token is not None:
            headers[STREAM_HEADER] = self.stream_token
        return headers

    def _api_url(self) -> URL:
        """The master's agent API, parsed once per master (every update posts to it)."""
        master = self.agent.url
        if self._api is None or self._api[0] != master:
            self._api = (master, URL(f"{master}/api/v1/agent"))
        return self._api[1]

    async def post(self, call: dict[str, Any]) -> None:
        """One agent call; raises when the master did not take it (202)."""
        if self.agent.session is None or self.agent.agent_id is None:
            raise ConnectionError("not connected")
        body = {"agent_id": {"value": self.agent.agent_id}, **call}
        async with self.agent.session.post(
            self._api_url(),
            data=jsonio.dumps(body),
            headers={
                **self.headers(),
                AGENT_HEADER: self.agent.agent_id,
                "Content-Type": jsonio.CONTENT_TYPE,
            },
            timeout=CALL_TIMEOUT,
        ) as response:
            if response.status != 202:
                text = await response.text()
                raise ConnectionError(f"{call['type']} answered {response.status}: {text}")

    async def post_quietly(self, call: dict[str, Any]) -> None:
        """:meth:`post`, a failure only logged (the call is not worth a retry)."""
        try:
            await self.post(call)
        except (aiohttp.ClientError, ConnectionError, OSError, TimeoutError, RuntimeError) as exc:
            # RuntimeError: the session closed under it (the agent is stopping).
            logger.info("could not send %s to the master: %s", call["type"], exc)

    async def send_update(self, framework_id: str, status: dict[str, Any]) -> None:
        """The status update manager's sender: one UPDATE call."""
        await self.post(
            {
                "type": "UPDATE",
                "update": {"framework_id": {"value": framework_id}, "status": status},
            }
        )

    def handle(self, event: dict[str, Any]) -> str | None:
        """One event of the master's stream; "reregister" when the stream must be re-opened."""
        kind = event.get("type")
        if kind == "REGISTERED":
            self.on_registered(event.get("registered") or {})
        elif kind == "HEARTBEAT":
            # The answer is the master's proof that this agent is alive (docs/agent-protocol.md).
            self.agent.background(self.pong())
        elif kind == "RUN_TASK":
            body = event.get("run_task") or {}
            self.agent.run_task(
                body.get("framework_id", {}).get("value", ""),
                body.get("framework_info") or {},
                body.get("task") or {},
            )
        elif kind == "RUN_TASK_GROUP":
            body = event.get("run_task_group") or {}
            tasks = (body.get("task_group") or {}).get("tasks")
            executor = body.get("executor")
            if isinstance(tasks, list) and isinstance(executor, dict):
                self.agent.run_task_group(
                    body.get("framework_id", {}).get("value", ""),
                    body.get("framework_info") or {},
                    executor,
                    tasks,
                )
            else:
                logger.warning("ignoring RUN_TASK_GROUP without executor or tasks: %s", body)
        elif kind == "KILL_TASK":
            body = event.get("kill_task") or {}
            self.agent.kill_task(
                body.get("framework_id", {}).get("value", ""),
                body.get("task_id", {}).get("value", ""),
                body.get("kill_policy"),
            )
        elif kind == "ACKNOWLEDGED":
            body = event.get("acknowledged") or {}
            self.agent.acknowledged(
                body.get("framework_id", {}).get("value", ""),
                body.get("task_id", {}).get("value", ""),
                str(body.get("uuid", "")),
            )
        elif kind == "SHUTDOWN_EXECUTOR":
            body = event.get("shutdown_executor") or {}
            self.agent.shutdown_executor(
                body.get("framework_id", {}).get("value", ""),
                body.get("executor_id", {}).get("value", ""),
            )
        elif kind == "SHUTDOWN_FRAMEWORK":
            framework_id = (event.get("shutdown_framework") or {}).get("framework_id", {})
            self.agent.shutdown_framework(framework_id.get("value", ""))
        elif kind == "FRAMEWORK_MESSAGE":
            body = event.get("framework_message") or {}
            self.agent.executor_room.framework_message(
                body.get("framework_id", {}).get("value", ""),
                body.get("executor_id", {}).get("value", ""),
                str(body.get("data", "")),
            )
        elif kind == "SHUTDOWN":
            message = (event.get("shutdown") or {}).get("message", "")
            return self.shutdown_by_master(message)
        else:
            logger.warning("ignoring unknown event %r from the master", kind)
        return None

    def on_registered(self, body: dict[str, Any]) -> None:
        """REGISTERED: keep the id (checkpointed), the heartbeat interval, resend what waits."""
        agent_id = (body.get("agent_id") or {}).get("value")
        if not isinstance(agent_id, str) or not agent_id:
            raise ValueError("REGISTERED without an agent_id")
        interval = body.get("heartbeat_interval_seconds")
        if isinstance(interval, int | float) and interval > 0:
            self.agent.heartbeat_interval = float(interval)
        self.agent.master_id = body.get("master_id")
        if agent_id != self.agent.agent_id:
            if self.agent.agent_id is not None:
                logger.warning(
                    "the master gave this agent a new id %s (was %s)", agent_id, self.agent.agent_id
                )
            self.agent.agent_id = agent_id
            self.agent.recovery.save_agent()
        self.agent.registered = True
        self.agent.counters["registrations"] += 1
        logger.info("registered with master %s as agent %s", self.agent.url, agent_id)
        self.agent.updates.set_connected(True)
        self.agent.oversubscribed_sent = None
        if (
            self.agent.modules.resource_estimator is not None
            and self.agent.oversubscription.total()
        ):
            self.agent.background(self.agent.oversubscription.send())

    def shutdown_by_master(self, message: str) -> str:
        """The master removed this agent: kill everything, forget the id, register anew."""
        logger.warning("the master removed this agent (%s); registering anew", message)
        why = f"agent removed by the master: {message}"
        for executor in self.agent.executor_room.all():
            self.agent.executor_room.shutdown(executor, why, ("TASK_KILLED", None, why))
        dying = self.agent.all_containers() + self.agent.executor_containers()
        for container in dying:
            if container.executor is None:
                self.agent.containerizer.kill(container, message=why)
        self.agent.updates.clear()
        self.agent.meta.forget_agent(None)  # a restart from now on registers anew
        if self.agent.agent_id is not None:
            old = self.agent.meta.agent_dir(self.agent.agent_id)
            # Kept until the killed tasks' launchers have recorded their ends there.
            self.agent.background(remove_when_done(dying, old))
        self.agent.agent_id = None
        return "reregister"
