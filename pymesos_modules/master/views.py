"""The views room: ``/state`` and ``/metrics/snapshot`` as Mesos' read-only handlers shape them.

It only reads what the other rooms keep.  To serve ``/state`` from bytes built once
per change, it needs to know when the state changed without the other rooms saying
so: every master method counts as a change (it bumps :attr:`ViewsRoom.state_version`
when it returns, and an ``async`` one when it starts too) except the few named in
``READ_ONLY``; private methods count only when named in ``PRIVATE_CHANGES`` (the
allocation loop's).  A new public method of any room is thus a change by default,
and at worst rebuilds a view that had not changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any

from pymesos_modules import __version__
from pymesos_modules.jsonio import dumps
from pymesos_modules.master import resources as res
from pymesos_modules.master.offers import OffersRoom
from pymesos_modules.master.state import Agent, Executor, Framework, Task, TaskState

#: Master methods that change nothing a view shows (every other public method does).
READ_ONLY = frozenset(
    {
        "state",
        "state_pieces",
        "state_json",
        "snapshot_metrics",
        "tasks_in",
        "master_info",
        "framework_for_call",
        "admissible",
        "new_agent_id",
        "listed_tasks",
        "listed_executors",
        "start",
        "stop",
    }
)
#: Private methods that change what views show: the allocation loop calls them directly,
#: every cycle, and all they change that a view shows is the set of outstanding offers,
#: so they bump the version only when that changed (an idle master's views stay cached).
PRIVATE_CHANGES = ("_deliver", "_expire_offers")
#: Tasks (or agents) encoded per piece of /state; between pieces the loop may run.
PIECE = 500
#: How long a /state build holds the event loop before letting it run.
SLICE_SECONDS = 0.004


def _changes_state(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, bumping ``state_version`` when it returns (and, if async, when it starts:
    a view built while it awaits must not outlive it)."""
    if method.__name__ in PRIVATE_CHANGES:

        @functools.wraps(method)
        def changing_offers(self: ViewsRoom, *args: Any, **kwargs: Any) -> Any:
            offers = set(self.offers)
            try:
                return method(self, *args, **kwargs)
            finally:
                if offers != self.offers.keys():
                    self.state_version += 1

        wrapper: Callable[..., Any] = changing_offers
    elif inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def changing_async(self: ViewsRoom, *args: Any, **kwargs: Any) -> Any:
            self.state_version += 1
            try:
                return await method(self, *args, **kwargs)
            finally:
                self.state_version += 1

        wrapper = changing_async
    else:

        @functools.wraps(method)
        def changing(self: ViewsRoom, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            finally:
                self.state_version += 1

        wrapper = changing
    wrapper.__changes_state__ = True  # type: ignore[attr-defined]
    return wrapper


class ViewsRoom(OffersRoom):
    """The JSON views of the master's state."""

    #: Bumped by every call that may change a view (see the module docstring).
    state_version: int = 0
    #: (state_version, /state bytes) of the last build
    _state_cache: tuple[int, bytes] | None = None
    #: the build running now: (state_version it started at, its future)
    _state_build: tuple[int, asyncio.Future[bytes]] | None = None
    #: each task's JSON as the last build wrote it, by (framework id, task id): (the Task,
    #: its status, state and executor id then, the bytes); see _task_fragments
    _task_fragments: dict[tuple[str, str], tuple[Task, Any, TaskState, str, bytes]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make every state-changing method of the composed master bump ``state_version``."""
        super().__init_subclass__(**kwargs)
        for name in dir(cls):
            if name in READ_ONLY or (name.startswith("_") and name not in PRIVATE_CHANGES):
                continue
            method = inspect.getattr_static(cls, name)
            if inspect.isfunction(method) and not getattr(method, "__changes_state__", False):
                setattr(cls, name, _changes_state(method))

    def _executor_json(self, agent_id: str, executor: Executor) -> dict[str, Any]:
        """A running group executor in ``/state``: its ExecutorInfo, agent and holdings."""
        scalars = self._scalars(self._sum(vector for _, _, vector in executor.pieces))
        return {
            **executor.info,
            "slave_id": agent_id,
            "role": executor.role,
            "resources": {**scalars, "ports": _ranges_text(executor.ports)},
            "tasks": sorted(executor.task_ids),
        }

    def tasks_in(self, state: TaskState) -> int:
        """How many known tasks are in ``state``."""
        return sum(t.state == state for f in self.frameworks.values() for t in f.tasks.values())

    def snapshot_metrics(self) -> dict[str, float]:
        """``/metrics/snapshot`` with Mesos metric names, plus module metrics."""
        frameworks = list(self.frameworks.values())
        values: dict[str, float] = {
            "master/uptime_secs": time.time() - self.started,
            "master/elected": 1.0,
            "master/frameworks_active": float(sum(f.connected for f in frameworks)),
            "master/frameworks_inactive": float(sum(not f.connected for f in frameworks)),
            "master/frameworks_connected": float(sum(f.connected for f in frameworks)),
            "master/frameworks_disconnected": float(sum(not f.connected for f in frameworks)),
            "master/slaves_active": float(len(self.agents)),
            "master/slaves_connected": float(len(self.agents)),
            "master/outstanding_offers": float(len(self.offers)),
            "master/tasks_staging": float(self.tasks_in(TaskState.STAGING)),
            "master/tasks_starting": float(self.tasks_in(TaskState.STARTING)),
            "master/tasks_running": float(self.tasks_in(TaskState.RUNNING)),
            "master/tasks_unreachable": float(self.tasks_in(TaskState.UNREACHABLE)),
            "master/slaves_unreachable": float(len(self.registrar.unreachable)),
            "master/recovery_slave_removals": float(self.counters["recovery_slave_removals"]),
            "registrar/registry_writes": float(self.registrar.writes),
            "allocator/mesos/allocation_run_ms": self.last_allocation_ms,
            "allocator/mesos/allocation_runs": float(self.counters["allocation_runs"]),
        }
        for key in (
            "tasks_finished",
            "tasks_failed",
            "tasks_killed",
            "tasks_lost",
            "tasks_error",
            "tasks_dropped",
            "valid_status_updates",
            "invalid_status_updates",
        ):
            values[f"master/{key}"] = float(self.counters[key])
        values.update(self.metrics.snapshot())
        return values

    # --- /state ---------------------------------------------------------------------------
    #
    # The view is built from the pieces below twice over: as a dict by state() (in-process
    # callers, tests) and as JSON bytes by state_json() (the HTTP API), which encodes it
    # piece by piece, once per state_version, without holding the event loop.

    def _executors_of_tasks(self) -> dict[tuple[str, str], str]:
        """(framework id, task id) -> executor id of the tasks of groups (Mesos' state names
        a task's executor)."""
        return {
            (key[0], task_id): key[2]
            for key, executor in self.executors.items()
            for task_id in executor.task_ids
        }

    @staticmethod
    def _task_json(t: Task, executor_of: dict[tuple[str, str], str]) -> dict[str, Any]:
        return {
            "id": t.task_id,
            "executor_id": executor_of.get((t.framework_id, t.task_id), ""),
            "name": t.name,
            "framework_id": t.framework_id,
            "slave_id": t.agent_id,
            "state": str(t.state),
            "role": t.role,
            "resources": {**t.resources.scalars, "ports": _ranges_text(t.resources.ports)},
            "statuses": [t.status] if t.status else [],
        }

    def _state_head(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "id": self.master_id,
            "hostname": self.flags.hostname,
            "start_time": self.started,
            "activated_slaves": len(self.agents),
        }

    @staticmethod
    def _framework_head(f: Framework) -> dict[str, Any]:
        """A framework's fields before its task lists."""
        return {
            "id": f.framework_id,
            "name": f.name,
            "roles": f.roles,
            "active": f.connected,
            "connected": f.connected,
            "capabilities": sorted(f.capabilities),
            "failover_timeout": f.failover_timeout,
        }

    def _framework_tail(self, f: Framework) -> dict[str, Any]:
        """A framework's fields after its task lists."""
        return {
            "executors": [
                self._executor_json(key[1], executor)
                for key, executor in self.executors.items()
                if key[0] == f.framework_id
            ],
            "offers": [self._offer_json(self.offers[o]) for o in f.offers if o in self.offers],
        }

    @staticmethod
    def _agent_json(a: Agent) -> dict[str, Any]:
        return {
            "id": a.agent_id,
            "hostname": a.hostname,
            "active": a.active,
            "resources": {**a.resources.scalars, "ports": _ranges_text(a.resources.ports)},
            "attributes": a.attributes,
            "registered_time": a.registered_at,
        }

    def _state_tail(self) -> dict[str, Any]:
        return {
            # Admitted by the recovered registry, not re-registered yet (Mesos' name).
            "recovered_slaves": [
                {"id": r["id"], "hostname": r.get("hostname", "")} for r in self.recovering.values()
            ],
            "unreachable_slaves": [
                {"id": r["id"], "hostname": r.get("hostname", ""), "timestamp": r.get("since")}
                for r in self.registrar.unreachable.values()
            ],
        }

    def state(self) -> dict[str, Any]:
        """``/state`` in the shape of Mesos' master state."""
        executor_of = self._executors_of_tasks()
        return {
            **self._state_head(),
            "frameworks": [
                {
                    **self._framework_head(f),
                    "tasks": [self._task_json(t, executor_of) for t in f.tasks.values()],
                    "completed_tasks": [self._task_json(t, executor_of) for t in f.completed],
                    **self._framework_tail(f),
                }
                for f in self.frameworks.values()
            ],
            "slaves": [self._agent_json(a) for a in self.agents.values()],
            **self._state_tail(),
        }

    def state_pieces(self) -> Iterator[bytes]:
        """:meth:`state` as JSON, in pieces of bounded work (at most ``PIECE`` tasks or agents
        each): joined, they are the document; between two pieces the caller may let the
        event loop run.  Lists are copied before they are walked, so a change made between
        pieces never breaks the walk (it shows, or not, as in a build started later)."""
        executor_of = self._executors_of_tasks()
        reused = self._task_fragments
        fragments: dict[tuple[str, str], tuple[Task, Any, TaskState, str, bytes]] = {}
        yield dumps(self._state_head())[:-1]
        yield b',"frameworks":['
        for index, f in enumerate(list(self.frameworks.values())):
            yield (b"," if index else b"") + dumps(self._framework_head(f))[:-1]
            yield b',"tasks":'
            yield from self._tasks_json(list(f.tasks.values()), executor_of, reused, fragments)
            yield b',"completed_tasks":'
            yield from self._tasks_json(list(f.completed), executor_of, reused, fragments)
            yield b"," + dumps(self._framework_tail(f))[1:]
        yield b'],"slaves":'
        yield from _json_list(list(self.agents.values()), self._agent_json)
        yield b"," + dumps(self._state_tail())[1:]
        self._task_fragments = fragments

    def _tasks_json(
        self,
        tasks: list[Task],
        executor_of: dict[tuple[str, str], str],
        reused: dict[tuple[str, str], tuple[Task, Any, TaskState, str, bytes]],
        fragments: dict[tuple[str, str], tuple[Task, Any, TaskState, str, bytes]],
    ) -> Iterator[bytes]:
        """A JSON array of tasks, ``PIECE`` per piece.  A task whose state, status and
        executor are those of the last build is not encoded again: its bytes are reused
        (a status update replaces ``Task.status``; the other fields of a Task never change
        once it is made), so a build after a few changes encodes only what changed."""
        yield b"["
        for start in range(0, len(tasks), PIECE):
            out = []
            for t in tasks[start : start + PIECE]:
                key = (t.framework_id, t.task_id)
                executor = executor_of.get(key, "")
                entry = reused.get(key)
                if (
                    entry is None
                    or entry[0] is not t
                    or entry[1] is not t.status
                    or entry[2] != t.state
                    or entry[3] != executor
                ):
                    data = dumps(self._task_json(t, executor_of))
                    entry = (t, t.status, t.state, executor, data)
                fragments[key] = entry
                out.append(entry[4])
            chunk = b",".join(out)
            yield (b"," + chunk) if start else chunk
        yield b"]"

    async def state_json(self) -> bytes:
        """``/state`` as JSON bytes, built once per :attr:`state_version` and shared.

        Requests that come while the state is unchanged get the cached bytes; requests
        that come while a build of the current version runs wait for it; a request that
        finds an older build running waits for it to end, then one build serves all that
        waited meanwhile (as Mesos batches its state requests).  A build lets the event
        loop run every few milliseconds (``/health`` and the APIs stay responsive); what
        changes meanwhile bumps the version, so the next request builds again.
        """
        while True:
            version = self.state_version
            if self._state_cache is not None and self._state_cache[0] == version:
                return self._state_cache[1]
            if self._state_build is None:
                build = asyncio.ensure_future(self._build_state_json(version))
                self._state_build = (version, build)
                return await asyncio.shield(build)
            started, build = self._state_build
            if started == version:
                return await asyncio.shield(build)
            # An older build: whoever waited for it starts the next one together.
            with contextlib.suppress(Exception):
                await asyncio.shield(build)

    async def _build_state_json(self, version: int) -> bytes:
        try:
            pieces: list[bytes] = []
            slice_ends = time.perf_counter() + SLICE_SECONDS
            for piece in self.state_pieces():
                pieces.append(piece)
                if time.perf_counter() > slice_ends:
                    await asyncio.sleep(0)
                    slice_ends = time.perf_counter() + SLICE_SECONDS
            body = b"".join(pieces)
            self._state_cache = (version, body)
            return body
        finally:
            self._state_build = None


def _ranges_text(ranges: res.Ranges) -> str:
    return "[" + ", ".join(f"{a}-{b}" for a, b in ranges) + "]" if ranges else ""


def _json_list(items: list[Any], to_json: Callable[[Any], Any]) -> Iterator[bytes]:
    """A JSON array of ``to_json(item)``, ``PIECE`` items per piece."""
    yield b"["
    for start in range(0, len(items), PIECE):
        chunk = dumps([to_json(item) for item in items[start : start + PIECE]])[1:-1]
        yield (b"," + chunk) if start else chunk
    yield b"]"
