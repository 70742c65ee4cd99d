"""``pymesos-modules local``: a master and N agents on loopback in one process (as mesos-local).

Takes every master flag and every agent flag.  Flags both runtimes have mean
the same for both (``--ip``, ``--hostname``, ``--modules``, ``--modules_dir``,
``--hooks``: a hook module may serve the master and the agents, as in Mesos);
``--port`` is the master's (agents take free ports), and ``--work_dir`` is the
root under which each agent gets ``agent-<i>`` (a temporary folder if not
given, removed on exit).  Ctrl-C or SIGTERM kills every task and stops
everything.

``--num_masters=3 --zk=zk://host:port/path`` starts three masters (the first
on ``--port``, the others on free ports) that elect a leader through
ZooKeeper; the agents then follow the leader through ``--master=<the --zk URL>``
(docs/ha.md).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pymesos_modules import metrics
from pymesos_modules.agent import cli as agent_cli
from pymesos_modules.errors import ModuleError
from pymesos_modules.master import cli as master_cli
from pymesos_modules.master.registry import RegistryError
from pymesos_modules.master.resources import ResourceError

logger = logging.getLogger(__name__)

#: Agent flags that local mode takes from the master's flag of the same name (or sets itself).
SHARED = frozenset(
    {"master", "ip", "port", "hostname", "work_dir", "modules", "modules_dir", "hooks"}
    | {"allow_insecure_modules", "zk_session_timeout"}
)


def register(parser: argparse.ArgumentParser) -> None:
    """Master flags, agent flags, and how many agents."""
    master_cli.register(parser)
    agent_cli.register(parser, skip=SHARED)
    parser.add_argument(
        "--num_agents",
        "--agents",
        "--num_slaves",
        dest="num_agents",
        type=int,
        default=1,
        help="how many agents to start (default 1)",
    )
    parser.add_argument(
        "--num_masters",
        type=int,
        default=1,
        help="how many masters to start (default 1; more need --zk: they elect a leader)",
    )


@dataclass
class RunningLocal:
    """A master and its agents; ``stop()`` stops the agents (killing tasks), then the master."""

    master: master_cli.RunningMaster
    agents: list[agent_cli.RunningAgent] = field(default_factory=list)
    root: Path | None = None
    temporary: bool = False
    #: every master (``master`` is the first); more than one with --num_masters and --zk
    masters: list[master_cli.RunningMaster] = field(default_factory=list)

    async def stop(self) -> None:
        """Stop every agent (their tasks die with them), then the masters."""
        for agent in self.agents:
            await agent.stop()
        for master in self.masters or [self.master]:
            await master.stop()
        if self.temporary and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


async def start_local(args: argparse.Namespace) -> RunningLocal:
    """Start the master, then ``--num_agents`` agents registered with it."""
    if args.num_agents < 0:
        raise ValueError(f"--num_agents must be >= 0, found {args.num_agents}")
    masters = getattr(args, "num_masters", 1)
    if masters < 1:
        raise ValueError(f"--num_masters must be >= 1, found {masters}")
    if masters > 1 and not args.zk:
        raise ValueError(
            f"--num_masters={masters} needs --zk=zk://host:port/path (the masters elect a "
            "leader through ZooKeeper)"
        )
    temporary = not args.work_dir
    root = Path(args.work_dir or tempfile.mkdtemp(prefix="pymesos-local-")).resolve()
    master = await master_cli.start_master(args)
    local = RunningLocal(master, root=root, temporary=temporary, masters=[master])
    try:
        for _ in range(masters - 1):
            more = copy.copy(args)
            more.port = 0
            local.masters.append(await master_cli.start_master(more))
        for index in range(args.num_agents):
            agent_args = copy.copy(args)
            agent_args.master = args.zk if args.zk else master.url
            agent_args.port = 0
            agent_args.work_dir = str(root / f"agent-{index}")
            # One agent per cgroups root: each destroys at start what it does not recover.
            agent_args.cgroups_root = f"{args.cgroups_root}_agent{index}"
            # Each agent's modules publish into its own registry, as separate agents would.
            running = await agent_cli.start_agent(agent_args, registry=metrics.MetricsRegistry())
            local.agents.append(running)
    except BaseException:
        await local.stop()
        raise
    return local


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM."""

    async def main() -> None:
        local = await start_local(args)
        for running in local.masters:
            print(f"master listening on {running.url}", flush=True)
        for index, agent in enumerate(local.agents):
            print(
                f"agent {index} listening on {agent.url} (work_dir {agent.agent.work_dir})",
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await local.stop()

    try:
        asyncio.run(main())
    except (ModuleError, ResourceError, RegistryError, ValueError, OSError) as exc:
        logger.error("%s", exc)
        return 1
    return 0
