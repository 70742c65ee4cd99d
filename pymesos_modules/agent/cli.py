"""``pymesos-modules agent``: run an agent (Mesos flag names, also from the environment).

Every flag can also come from ``PMM_<FLAG>`` or ``MESOS_<FLAG>`` (upper case),
as Mesos reads ``MESOS_*``; the command line wins.  Durations are seconds, or
Mesos duration strings (``500ms``, ``5secs``, ``2mins``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import re
import signal
import socket
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pymesos_modules import metrics
from pymesos_modules.agent import machine
from pymesos_modules.agent.agent import Agent, AgentFlags, master_url
from pymesos_modules.agent.checkpoint import CheckpointError
from pymesos_modules.agent.executor_auth import ExecutorAuthenticator, load_key
from pymesos_modules.agent.http import create_app
from pymesos_modules.agent.modules import CgroupsFlags, create_modules
from pymesos_modules.config import load_flags
from pymesos_modules.errors import ModuleError
from pymesos_modules.http import executor_api
from pymesos_modules.kinds.http_authenticator import load_credentials
from pymesos_modules.manager import ModuleManager
from pymesos_modules.master import resources as res
from pymesos_modules.zookeeper import parse_zk_url

logger = logging.getLogger(__name__)

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0}
_UNITS |= {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "days": 86400.0}


def boolean(value: str) -> bool:
    """Mesos' boolean flag values: true/false (also 1/0, yes/no)."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false; found {value!r}")


def recover_mode(value: str) -> str:
    """``--recover``: reconnect or cleanup (Mesos' values)."""
    if value not in ("reconnect", "cleanup"):
        raise argparse.ArgumentTypeError(f"expected reconnect or cleanup; found {value!r}")
    return value


def byte_size(value: str) -> int:
    """Bytes from ``1048576``, ``512MB``, ``2GB`` (Mesos' Bytes syntax)."""
    units = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
    match = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in units:
        raise argparse.ArgumentTypeError(f"expected a size such as 512MB or 2GB; found {value!r}")
    return int(match.group(1)) * units[match.group(2).upper()]


def duration(value: str) -> float:
    """Seconds from ``2.5``, ``500ms``, ``5secs``, ``2mins`` (Mesos' Duration syntax)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(value))
    if not match or match.group(2) not in ("", *_UNITS):
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 5, 500ms, 5secs or 2mins; found {value!r}"
        )
    return float(match.group(1)) * _UNITS.get(match.group(2), 1.0)


FLAGS: list[tuple[str, Any, Any, str]] = [
    (
        "master",
        str,
        None,
        "the master: HOST:PORT, or zk://host:port[,host:port]/path (or file:// to a file "
        "holding it) to follow the leader ZooKeeper elects",
    ),
    ("work_dir", str, None, "folder for sandboxes and the agent's id (required)"),
    ("ip", str, "127.0.0.1", "address the agent's HTTP endpoints listen on"),
    ("port", int, 5051, "port of the agent's HTTP endpoints (0: any free port)"),
    ("hostname", str, None, "hostname the agent advertises (default: this machine's)"),
    (
        "resources",
        str,
        None,
        "Mesos resources, 'cpus:4;mem:8192;disk:10000;ports:[31000-32000]' or JSON; "
        "what is left out is detected as Mesos does",
    ),
    ("attributes", str, None, "Mesos attributes, 'rack:r1;zone:a'"),
    (
        "credential",
        str,
        None,
        "file with this agent's principal and secret (Mesos' --credential: 'principal secret' "
        "or JSON), for a master with --authenticate_agents",
    ),
    (
        "executor_secret_key",
        str,
        None,
        "file holding the key (at least 32 bytes) that signs each executor's token "
        "(MESOS_EXECUTOR_AUTHENTICATION_TOKEN, a JWT), as Mesos",
    ),
    (
        "authenticate_http_executors",
        boolean,
        False,
        "executor API calls must carry their executor's token (needs --executor_secret_key)",
    ),
    ("modules", str, None, "module config: inline JSON, path or file://"),
    ("modules_dir", str, None, "folder of module configs"),
    (
        "isolation",
        str,
        "",
        "comma-separated isolator modules, applied in order (e.g. cgroups/cpu,cgroups/mem)",
    ),
    ("cgroups_hierarchy", str, "/sys/fs/cgroup", "where the cgroup hierarchies are mounted"),
    (
        "cgroups_root",
        str,
        "pymesos_modules",
        "cgroup under which containers' cgroups are made (one agent per root)",
    ),
    ("cgroups_enable_cfs", boolean, False, "cgroups/cpu: a hard CFS quota from the cpus"),
    ("cgroups_limit_swap", boolean, False, "cgroups/mem: the memory limit covers swap too"),
    ("resource_estimator", str, "noop", "resource estimator module (noop: none)"),
    ("qos_controller", str, "noop", "QoS controller module (noop: none)"),
    ("hooks", str, None, "comma-separated hook modules, chained in order"),
    (
        "oversubscribed_resources_interval",
        duration,
        15.0,
        "how often the resource estimator is asked",
    ),
    ("qos_correction_interval_min", duration, 1.0, "how often the QoS controller is asked"),
    (
        "executor_shutdown_grace_period",
        duration,
        5.0,
        "SIGTERM-to-SIGKILL grace when a task has no KillPolicy",
    ),
    (
        "executor_registration_timeout",
        duration,
        60.0,
        "how long a custom executor has to subscribe before it is destroyed",
    ),
    (
        "recovery_timeout",
        duration,
        900.0,
        "how long checkpointed executors have to subscribe to a restarted agent",
    ),
    (
        "executor_reregistration_timeout",
        duration,
        2.0,
        "the longest an executor waits between attempts to subscribe again",
    ),
    ("fetcher_cache_dir", str, None, "the fetcher's cache (default: <work_dir>/fetch)"),
    (
        "fetcher_cache_size",
        byte_size,
        2 * 1024**3,
        "bound of the fetcher's cache (least recently used files go first)",
    ),
    (
        "registration_backoff_factor",
        duration,
        1.0,
        "first re-registration delay; doubles up to 30 s",
    ),
    (
        "zk_session_timeout",
        duration,
        10.0,
        "ZooKeeper session timeout of the leader detector (--master=zk://...)",
    ),
    (
        "status_update_retry_interval_min",
        duration,
        10.0,
        "first resend of an unacknowledged status update; doubles",
    ),
    ("status_update_retry_interval_max", duration, 600.0, "cap of the status update resend"),
    ("container_watch_interval", duration, 1.0, "how often isolators' watch() is polled"),
    (
        "recover",
        recover_mode,
        "reconnect",
        "reconnect: take over the tasks a previous agent on this work_dir left; "
        "cleanup: kill them and register as a new agent",
    ),
    (
        "switch_user",
        boolean,
        True,
        "true (Mesos' default): when the agent runs as root, each task runs as its "
        "CommandInfo.user, else its FrameworkInfo.user, and fails if that user does not "
        "exist; false: tasks run as the agent's user",
    ),
    (
        "strict",
        boolean,
        True,
        "true: a checkpoint file that cannot be read stops the agent; "
        "false: it is logged and skipped",
    ),
]


def register(
    parser: argparse.ArgumentParser, skip: set[str] | frozenset[str] = frozenset()
) -> None:
    """Add the agent flags (those in ``skip`` are left to another runtime, see local mode)."""
    for name, kind, default, help_text in FLAGS:
        if name in skip:
            continue
        env = os.environ.get(f"PMM_{name.upper()}", os.environ.get(f"MESOS_{name.upper()}"))
        value = kind(env) if env is not None else default
        parser.add_argument(f"--{name}", type=kind, default=value, help=help_text)
    if "allow_insecure_modules" not in skip:
        parser.add_argument(
            "--allow-insecure-modules",
            action="store_true",
            help="load module files writable by others",
        )


def agent_resources(text: str | None, work_dir: str) -> list[dict[str, Any]]:
    """``--resources`` parsed and completed by Mesos' detection rules."""
    given = res.parse_resource_list(text or "", "--resources")
    res.parse_resources(text or "", "--resources")  # the master's view must accept it too
    return machine.fill_in(given, work_dir)


@dataclass
class RunningAgent:
    """An agent serving HTTP; ``stop()`` shuts it down (killing its tasks unless told not to)."""

    agent: Agent
    runner: web.AppRunner
    url: str

    async def stop(self, kill_tasks: bool = True) -> None:
        """Stop the loops, release modules, stop serving; ``kill_tasks=False`` leaves the
        tasks running for the next agent on this work_dir to recover.  Idempotent."""
        if self.agent.stopped:
            return
        await self.agent.stop(kill_tasks=kill_tasks)
        await self.runner.cleanup()


def agent_flags(args: argparse.Namespace) -> AgentFlags:
    """Check and convert the parsed flags; ValueError / ResourceError say what is wrong."""
    if not args.master:
        raise ValueError("--master is required (HOST:PORT of the master, or zk://...)")
    if not args.work_dir:
        raise ValueError("--work_dir is required (the agent keeps sandboxes and its id there)")
    master_url(args.master)
    os.makedirs(args.work_dir, exist_ok=True)
    return AgentFlags(
        master=args.master,
        work_dir=args.work_dir,
        ip=args.ip,
        port=args.port,
        hostname=args.hostname or socket.gethostname(),
        resources=agent_resources(args.resources, args.work_dir),
        attributes=res.parse_attributes(args.attributes or "", "--attributes"),
        executor_shutdown_grace_period=args.executor_shutdown_grace_period,
        executor_registration_timeout=args.executor_registration_timeout,
        recovery_timeout=args.recovery_timeout,
        executor_reregistration_timeout=args.executor_reregistration_timeout,
        fetcher_cache_dir=args.fetcher_cache_dir,
        fetcher_cache_size=args.fetcher_cache_size,
        oversubscribed_resources_interval=args.oversubscribed_resources_interval,
        qos_correction_interval_min=args.qos_correction_interval_min,
        registration_backoff_factor=args.registration_backoff_factor,
        zk_session_timeout=args.zk_session_timeout,
        status_update_retry_interval_min=args.status_update_retry_interval_min,
        status_update_retry_interval_max=args.status_update_retry_interval_max,
        container_watch_interval=args.container_watch_interval,
        recover=args.recover,
        strict=args.strict,
        switch_user=args.switch_user,
        raw=_shown_flags(args),
        authorization=_authorization(args.credential),
        executor_authenticator=_executor_authenticator(args),
    )


def _shown_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags ``/flags`` and ``/state`` show: a password in ``--master=zk://`` never."""
    shown = {name: getattr(args, name, None) for name, *_ in FLAGS}
    if isinstance(args.master, str) and args.master.startswith("zk://"):
        shown["master"] = str(parse_zk_url(args.master, "--master"))
    return shown


def _authorization(path: str | None) -> str | None:
    """The HTTP Basic header of ``--credential`` (one principal and its secret), or None."""
    if not path:
        return None
    credentials = load_credentials(path)
    if len(credentials) != 1:
        raise ValueError(
            f"--credential: {path} must hold exactly one principal and secret, "
            f"found {len(credentials)}"
        )
    [(principal, secret)] = credentials.items()
    return "Basic " + base64.b64encode(f"{principal}:{secret}".encode()).decode()


def _executor_authenticator(args: argparse.Namespace) -> ExecutorAuthenticator | None:
    """Executors' tokens with --executor_secret_key; required with
    --authenticate_http_executors, which refuses to start without a key (as Mesos)."""
    required = bool(getattr(args, "authenticate_http_executors", False))
    path = getattr(args, "executor_secret_key", None)
    if not path:
        if required:
            raise ValueError(
                "--authenticate_http_executors needs --executor_secret_key (the key that "
                "signs each executor's token)"
            )
        return None
    return ExecutorAuthenticator(load_key(path), required)


async def start_agent(
    args: argparse.Namespace, registry: metrics.MetricsRegistry | None = None
) -> RunningAgent:
    """Parse flags, load and create modules, serve HTTP, then register with the master.

    Any bad flag or module, or an unreadable checkpoint (CheckpointError),
    fails here, before anything runs (nothing is left loaded). ``registry``
    receives the modules' metrics (default: the process's).
    """
    flags = agent_flags(args)
    registry = registry if registry is not None else metrics.REGISTRY
    manager = ModuleManager(
        allow_insecure=getattr(args, "allow_insecure_modules", False), registry=registry
    )
    manager.load(load_flags(args.modules, args.modules_dir))
    try:
        modules = create_modules(
            manager,
            args.isolation,
            args.resource_estimator,
            args.qos_controller,
            args.hooks,
            CgroupsFlags(
                args.cgroups_hierarchy,
                args.cgroups_root,
                args.cgroups_enable_cfs,
                args.cgroups_limit_swap,
            ),
        )
    except BaseException:
        manager.unload_all()
        raise
    agent = Agent(flags, modules, registry)
    app = create_app(agent)
    executor_api.add_routes(app, agent)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    try:
        await runner.setup()
        site = web.TCPSite(runner, flags.ip, flags.port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        modules.close()
        raise
    port = runner.addresses[0][1] if runner.addresses else flags.port
    flags.port = port
    agent.endpoint = f"{flags.ip}:{port}"
    try:
        await agent.start()
    except BaseException:
        await agent.stop(kill_tasks=False)  # tasks of a checkpoint it could not read live on
        await runner.cleanup()
        raise
    return RunningAgent(agent, runner, f"http://{flags.ip}:{port}")


def run(args: argparse.Namespace) -> int:
    """Run until a signal: SIGINT/SIGTERM leave the tasks running for the next agent on
    this work_dir (as a Mesos agent that exits), SIGUSR1 kills them first (as Mesos')."""

    async def main() -> int:
        stop = asyncio.Event()
        kill_tasks = False
        loop = asyncio.get_running_loop()

        def stop_on(sig: signal.Signals) -> None:
            nonlocal kill_tasks
            kill_tasks = kill_tasks or sig == signal.SIGUSR1
            stop.set()

        # Before starting: a signal during recovery must not take the default action.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.add_signal_handler(sig, stop_on, sig)
        running = await start_agent(args)
        print(f"agent listening on {running.url}", flush=True)
        failed = asyncio.ensure_future(running.agent.failed.wait())
        await asyncio.wait(
            [failed, asyncio.ensure_future(stop.wait())], return_when="FIRST_COMPLETED"
        )
        kill_tasks = kill_tasks or running.agent.failed.is_set()
        left = len(running.agent.containers) and not kill_tasks
        await running.stop(kill_tasks=kill_tasks)
        if left:
            logger.info(
                "tasks keep running; an agent started on --work_dir=%s takes them over",
                running.agent.work_dir,
            )
        return 1 if running.agent.failure else 0

    try:
        return asyncio.run(main())
    except (ModuleError, res.ResourceError, CheckpointError, ValueError, OSError) as exc:
        logger.error("%s", exc)
        return 1
