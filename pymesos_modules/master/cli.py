"""``pymesos-modules master``: run a master (Mesos flag names, also from the environment).

Every flag can also come from ``PMM_<FLAG>`` or ``MESOS_<FLAG>`` (upper case),
as Mesos reads ``MESOS_*``; the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pymesos_modules.agent.cli import duration
from pymesos_modules.allocators import resolve_allocator
from pymesos_modules.config import load_flags
from pymesos_modules.errors import ModuleError
from pymesos_modules.gc_tuning import tune_for_daemon
from pymesos_modules.http.server import close_streams, create_app, make_runner
from pymesos_modules.kinds.anonymous import create_anonymous_modules
from pymesos_modules.kinds.authorizer import AclError, LocalAuthorizer
from pymesos_modules.kinds.builtin import names, resolve
from pymesos_modules.kinds.http_authenticator import (
    BasicAuthenticator,
    CredentialsError,
    load_credentials,
)
from pymesos_modules.kinds.master_contender import StandaloneContender, ZooKeeperContender
from pymesos_modules.kinds.master_detector import StandaloneDetector, ZooKeeperDetector
from pymesos_modules.manager import ModuleManager
from pymesos_modules.master.leadership import Leadership
from pymesos_modules.master.master import Master, MasterFlags
from pymesos_modules.master.registry import Registrar, RegistryError, open_backend
from pymesos_modules.master.resources import ResourceError, parse_resources
from pymesos_modules.master.simulated import SimulatedAgent
from pymesos_modules.zookeeper import ZooKeeperError, parse_zk_url

logger = logging.getLogger(__name__)


def _bool(value: str) -> bool:
    """Mesos boolean flag values: true/false (also 1/0, yes/no)."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, found {value!r}")


FLAGS: list[tuple[str, type, Any, str]] = [
    ("ip", str, "127.0.0.1", "address to listen on"),
    ("port", int, 5050, "port to listen on"),
    ("hostname", str, "localhost", "hostname the master advertises"),
    ("work_dir", str, None, "folder for the master's files"),
    ("modules", str, None, "module config: inline JSON, path or file://"),
    ("modules_dir", str, None, "folder of module configs"),
    (
        "allocator",
        str,
        "native/drf",
        "allocator: native/drf, pybind/drf, python/drf, python/first_fit or a loaded module name",
    ),
    ("allocation_interval", float, 1.0, "seconds between allocation cycles"),
    ("offer_timeout", float, None, "seconds before an unanswered offer is rescinded"),
    ("heartbeat_interval", float, 15.0, "seconds between HEARTBEAT events"),
    (
        "agent_reregister_timeout",
        float,
        600.0,
        "seconds a disconnected agent may take to re-register before its tasks are lost",
    ),
    (
        "agent_ping_timeout",
        float,
        15.0,
        "seconds between the pings (HEARTBEAT events) an agent must answer",
    ),
    (
        "max_agent_ping_timeouts",
        int,
        5,
        "unanswered ping timeouts before a connected agent counts as lost (0: never)",
    ),
    (
        "authenticate_frameworks",
        _bool,
        False,
        "only let frameworks in that an --http_authenticators module authenticates",
    ),
    (
        "authenticate_http_readonly",
        _bool,
        False,
        "only answer authenticated requests to the read-only operator endpoints "
        "(/state, /flags, /modules, /metrics...; not /health, /version)",
    ),
    (
        "authenticate_http_readwrite",
        _bool,
        False,
        "only answer authenticated requests to the operator endpoints that change state "
        "(/teardown)",
    ),
    (
        "authenticate_agents",
        _bool,
        False,
        "only let agents in that authenticate with --credentials (HTTP Basic)",
    ),
    ("credentials", str, None, "path of the principal/secret file for the basic authenticator"),
    (
        "http_authenticators",
        str,
        "basic",
        "comma-separated http_authenticator modules ('basic' is built in)",
    ),
    ("authorizers", str, "local", "authorizer module ('local' is built in, driven by --acls)"),
    ("acls", str, None, "ACLs for the local authorizer: JSON, a path or file://path"),
    ("hooks", str, None, "comma-separated master hook modules"),
    (
        "registry",
        str,
        None,
        "where the registry lives: in_memory, local (SQLite under --work_dir), zookeeper "
        "(under --zk) or replicated_log (Mesos' default: zookeeper with --zk, local "
        "without); unset: zookeeper with --zk, else local with --work_dir, else in_memory",
    ),
    (
        "registry_max_agent_age",
        float,
        14 * 24 * 3600.0,
        "seconds an unreachable agent stays in the registry",
    ),
    (
        "registry_max_agent_count",
        int,
        100 * 1024,
        "most unreachable agents the registry keeps (the oldest go first)",
    ),
    (
        "quorum",
        int,
        None,
        "accepted for Mesos command lines; ZooKeeper's own quorum keeps the replicated registry",
    ),
    ("random_seed", int, 0, "seed of the allocator's agent shuffle"),
    (
        "zk",
        str,
        None,
        "ZooKeeper URL for leader election: zk://host:port[,host:port]/path "
        "(or file:// to a file holding it)",
    ),
    ("zk_session_timeout", duration, 10.0, "ZooKeeper session timeout (e.g. 10secs)"),
    (
        "master_contender",
        str,
        None,
        "leader election: standalone, zookeeper or a loaded module (default: zookeeper "
        "with --zk, else standalone)",
    ),
    (
        "master_detector",
        str,
        None,
        "leader detection: standalone, zookeeper or a loaded module (default: as "
        "--master_contender)",
    ),
    ("simulated_agents", int, 0, "start this many simulated agents (no processes)"),
    (
        "simulated_agent_resources",
        str,
        "cpus:8;mem:16384;disk:100000;ports:[31000-32000]",
        "resources of each simulated agent",
    ),
]


#: Flags that make the HTTP authenticators (--http_authenticators) guard an endpoint.
AUTHENTICATE_HTTP = (
    "authenticate_frameworks",
    "authenticate_http_readonly",
    "authenticate_http_readwrite",
)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the master flags."""
    for name, kind, default, help_text in FLAGS:
        env = os.environ.get(f"PMM_{name.upper()}", os.environ.get(f"MESOS_{name.upper()}"))
        value = kind(env) if env is not None else default
        if kind is _bool:  # `--flag` alone means true, as Mesos
            parser.add_argument(
                f"--{name}", type=kind, nargs="?", const=True, default=value, help=help_text
            )
        else:
            parser.add_argument(f"--{name}", type=kind, default=value, help=help_text)
    parser.add_argument(
        "--allow-insecure-modules", action="store_true", help="load module files writable by others"
    )


@dataclass
class RunningMaster:
    """A master serving HTTP; ``stop()`` shuts it down."""

    master: Master
    runner: web.AppRunner
    url: str
    manager: ModuleManager
    #: this master's standing in the leader election
    leadership: Leadership | None = None
    #: module instances in creation order (anonymous modules, the allocator, hooks, auth
    #: modules), closed at stop in reverse
    modules: list[Any] = field(default_factory=list)

    async def stop(self) -> None:
        """Leave the election, stop serving and release the allocator and modules."""
        if self.leadership is not None:
            await self.leadership.stop()  # withdraw: a standby takes over without delay
        close_streams(self.runner.app)
        await self.master.stop()
        await self.runner.cleanup()
        _close_all(self.modules)
        self.manager.unload_all()


def _close_all(modules: list[Any]) -> None:
    """Close every module, last created first; one that fails to close does not keep the
    others alive (it is logged)."""
    for module in reversed(modules):
        close = getattr(module, "close", None)
        if close is None:
            continue
        try:
            close()
        except Exception:
            logger.exception("module %r failed to close", module)


def _authorizer(args: argparse.Namespace, manager: ModuleManager) -> Any:
    """``--authorizers``: the built-in ``local`` one (``--acls``) or a loaded module."""
    chosen = names(args.authorizers) or ["local"]
    if len(chosen) > 1:
        raise AclError(f"--authorizers: only one authorizer is supported, found {chosen}")
    if chosen[0] == "local":
        return LocalAuthorizer.from_flag(args.acls)
    return resolve(manager, chosen[0], "authorizer", "--authorizers")


def _authenticators(args: argparse.Namespace, manager: ModuleManager) -> list[Any]:
    """``--http_authenticators``: ``basic`` (against ``--credentials``) or loaded modules."""
    out: list[Any] = []
    for name in names(args.http_authenticators):
        if name == "basic":
            credentials = load_credentials(args.credentials) if args.credentials else {}
            wanted = [f"--{f}" for f in AUTHENTICATE_HTTP if getattr(args, f, False)]
            if wanted and not credentials:
                raise CredentialsError(
                    f"{', '.join(wanted)} with the basic authenticator needs --credentials"
                )
            out.append(BasicAuthenticator(credentials))
        else:
            out.append(resolve(manager, name, "http_authenticator", "--http_authenticators"))
    return out


#: kind -> (its standalone class, its zookeeper class): the built-in election modules.
_ELECTION_BUILTINS: dict[str, tuple[Any, Any]] = {
    "master_contender": (StandaloneContender, ZooKeeperContender),
    "master_detector": (StandaloneDetector, ZooKeeperDetector),
}


def _election(args: argparse.Namespace, manager: ModuleManager) -> tuple[Any, Any]:
    """``--master_contender`` and ``--master_detector``: ``standalone``, ``zookeeper``
    (the default with ``--zk``) or a loaded module of that kind."""
    zk = parse_zk_url(args.zk, "--zk") if args.zk else None
    created: list[Any] = []
    try:
        for kind, (standalone, zookeeper) in _ELECTION_BUILTINS.items():
            name = getattr(args, kind) or ("zookeeper" if zk else "standalone")
            if name == "standalone":
                created.append(standalone())
            elif name == "zookeeper":
                if zk is None:
                    raise ZooKeeperError(f"--{kind}=zookeeper needs --zk=zk://host:port/path")
                created.append(zookeeper(zk, args.zk_session_timeout))
            else:
                created.append(resolve(manager, name, kind, f"--{kind}"))
    except BaseException:
        _close_all(created)
        raise
    return created[0], created[1]


def flags_view(args: argparse.Namespace) -> dict[str, Any]:
    """The flags ``/flags`` shows: a ``--zk`` password never appears."""
    view = dict(vars(args))
    if args.zk:
        view["zk"] = str(parse_zk_url(args.zk, "--zk")) if args.zk.startswith("zk://") else args.zk
    return view


def _agent_authenticator(args: argparse.Namespace) -> BasicAuthenticator | None:
    """``--authenticate_agents``: agents authenticate with HTTP Basic against --credentials."""
    if not args.authenticate_agents:
        return None
    credentials = load_credentials(args.credentials) if args.credentials else {}
    if not credentials:
        raise CredentialsError("--authenticate_agents needs --credentials")
    return BasicAuthenticator(credentials)


async def start_master(args: argparse.Namespace) -> RunningMaster:
    """Load modules, create the allocator, start the loop and the HTTP server."""
    manager = ModuleManager(allow_insecure=getattr(args, "allow_insecure_modules", False))
    manager.load(load_flags(args.modules, args.modules_dir))
    # Whatever fails below (a bad flag, a module's create(), a busy port) must not leave
    # module instances alive or libraries loaded: an embedding process carries on.
    created: list[Any] = []
    try:
        return await _start(args, manager, created)
    except BaseException:
        _close_all(created)
        manager.unload_all()
        raise


async def _start(
    args: argparse.Namespace, manager: ModuleManager, created: list[Any]
) -> RunningMaster:
    """start_master's body; appends every module instance it creates to ``created``."""
    # Anonymous modules first, as Mesos creates them before anything else (and they go last).
    created.extend(instance for _, instance in create_anonymous_modules(manager))
    allocator = resolve_allocator(args.allocator, manager)
    created.append(allocator)
    flags = MasterFlags(
        allocation_interval=args.allocation_interval,
        offer_timeout=args.offer_timeout,
        heartbeat_interval=args.heartbeat_interval,
        authenticate_frameworks=bool(args.authenticate_frameworks),
        agent_reregister_timeout=args.agent_reregister_timeout,
        agent_ping_timeout=args.agent_ping_timeout,
        max_agent_ping_timeouts=args.max_agent_ping_timeouts,
        random_seed=args.random_seed,
        hostname=args.hostname,
        ip=args.ip,
        port=args.port,
    )
    hooks: list[Any] = []
    for name in names(args.hooks):
        hooks.append(resolve(manager, name, "hook", "--hooks"))
        created.append(hooks[-1])
    authorizer = _authorizer(args, manager)
    created.append(authorizer)
    authenticators = _authenticators(args, manager)
    created.extend(authenticators)
    # ZooKeeper is connected before the master exists: unreachable is an error at start.
    contender, detector = await asyncio.to_thread(_election, args, manager)
    created.extend([contender, detector])
    if args.quorum is not None:
        logger.info("--quorum=%s: ZooKeeper's quorum keeps the replicated registry", args.quorum)
    backend = await asyncio.to_thread(
        open_backend, args.registry, args.work_dir, args.zk, args.zk_session_timeout
    )
    created.append(backend)  # closed at stop, with the modules
    registrar = Registrar(backend, args.registry_max_agent_age, args.registry_max_agent_count)
    master = Master(
        allocator,
        flags,
        authorizer=authorizer,
        hooks=hooks,
        http_authenticators=authenticators,
        registrar=registrar,
    )
    resources = parse_resources(args.simulated_agent_resources)
    leadership = Leadership(contender, detector, {})
    app = create_app(
        master,
        flags_view(args),
        lambda: [m.describe() for m in manager.modules()],
        leadership,
        agent_authenticator=_agent_authenticator(args),
    )
    runner = make_runner(app)
    try:
        await runner.setup()
        site = web.TCPSite(runner, args.ip, args.port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1] if runner.addresses else args.port
    master.flags.port = port
    leadership.info = master.master_info()
    if isinstance(detector, StandaloneDetector):
        detector.appoint(leadership.info)  # one master: it is the leader it detects

    async def elected() -> None:
        # Only the leader reads and writes the registry: a standby's write would move
        # the registry's version under the leader (docs/ha.md).  The gate is still
        # closed here; it opens when this returns.
        await asyncio.to_thread(master.recover)
        for index in range(args.simulated_agents):
            agent = SimulatedAgent(master)
            agent.agent_id = master.register_agent(agent, f"simulated-{index}", resources)
        await master.start()

    async def deposed() -> None:
        close_streams(app)
        await master.stop()

    try:
        await leadership.start(elected, deposed)
    except BaseException:
        await leadership.stop()
        await master.stop()
        await runner.cleanup()
        raise
    return RunningMaster(
        master, runner, f"http://{args.ip}:{port}", manager, leadership, list(created)
    )


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM."""

    async def main() -> None:
        running = await start_master(args)
        tune_for_daemon()
        print(f"master listening on {running.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        assert running.leadership is not None
        deposed = asyncio.ensure_future(running.leadership.deposed.wait())
        await asyncio.wait(
            [asyncio.ensure_future(stop.wait()), deposed], return_when="FIRST_COMPLETED"
        )
        await running.stop()
        if deposed.done():
            # As Mesos' master: our state may be stale once another master led.
            logger.error("exiting: this master stopped leading; restart it to stand by again")
            return 1
        return 0

    try:
        return asyncio.run(main())
    except (
        ModuleError,
        ResourceError,
        AclError,
        CredentialsError,
        RegistryError,
        ZooKeeperError,
    ) as exc:
        logger.error("%s", exc)
        return 1
