"""The ``pymesos-modules`` command line.

Each subcommand lives with the code it drives and is imported only when used,
so ``pymesos-modules inspect`` does not pay for the HTTP server or matplotlib.
A subcommand module provides ``register(parser)`` (add its arguments) and
``run(args) -> int`` (exit status).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pymesos_modules import __version__, crash
from pymesos_modules.paths import NotBuiltError

#: subcommand -> (module that implements it, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("pymesos_modules.inspect", "list and check the modules in a library or config"),
    "master": ("pymesos_modules.master.cli", "run a master"),
    "agent": ("pymesos_modules.agent.cli", "run an agent"),
    "local": ("pymesos_modules.local", "run a master and N agents on loopback"),
    "bench": ("pymesos_modules.bench.cli", "benchmark allocators side by side"),
    "simulate": ("pymesos_modules.simulate.cli", "simulate a cluster on a virtual clock"),
}


#: Subcommands that run module code in-process for long.
RUNTIMES = ("master", "agent", "local")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; subcommand arguments are added lazily in main()."""
    parser = argparse.ArgumentParser(prog="pymesos-modules", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one subcommand, return its exit status."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in args_list if a in SUBCOMMANDS), None)
    modules = {}
    try:
        for name, (module_name, help_text) in SUBCOMMANDS.items():
            sub = subparsers.add_parser(name, help=help_text)
            if name == chosen:
                modules[name] = importlib.import_module(module_name)
                modules[name].register(sub)
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return 2
        logging.basicConfig(
            level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        if args.command in RUNTIMES:
            crash.install()  # a module that crashes the process is named in its last line
        return int(modules[args.command].run(args))
    except NotBuiltError as exc:  # one line naming what to run, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
