"""``pymesos-modules inspect``: list and check the modules of a library or a config.

    pymesos-modules inspect /opt/m/libdrf.so [--json]
    pymesos-modules inspect --modules='{"libraries": [...]}' | --modules_dir=DIR

The library or config is probed in a child process (see ``_probe``) so a
broken library cannot crash the caller.  Exit status: 0 when everything
passes its checks, 1 when anything fails (each failure on one line, no
traceback), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from pymesos_modules import paths

#: Seconds a probe may take before it is treated as hung.
PROBE_TIMEOUT = 60.0


class ProbeFailed(Exception):
    """The probe subprocess crashed, hung or printed something unreadable."""


def run_probe(arguments: list[str], allow_insecure: bool) -> dict[str, Any]:
    """Run the probe in a child process and return its JSON report."""
    command = paths.module_command("pymesos_modules._probe", *arguments)
    if allow_insecure:
        command.append("--allow-insecure-modules")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ProbeFailed(f"probing {arguments[-1]} hung for {PROBE_TIMEOUT:.0f} s") from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise ProbeFailed(f"{arguments[1]}: loading it crashed the probe process ({name})")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeFailed(
            f"{arguments[1]}: probe exited with status {done.returncode}: {last}"
        ) from None


def register(parser: argparse.ArgumentParser) -> None:
    """Add the inspect arguments."""
    parser.add_argument("library", nargs="?", help="path of a module library (.so)")
    parser.add_argument("--modules", help="config to validate: inline JSON, path or file://")
    parser.add_argument("--modules_dir", help="folder of *.json manifests to validate")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--allow-insecure-modules",
        action="store_true",
        help="load files writable by group/others or owned by other users",
    )


def _library_table(report: dict[str, Any]) -> Table:
    table = Table(title=report["library"])
    for column in ("name", "kind", "version", "ABI", "author", "description", "checks"):
        table.add_column(column)
    for m in report["modules"]:
        author = m.get("author", "")
        if m.get("email"):
            author = f"{author} <{m['email']}>"
        verdict = "[green]OK[/green]" if m["ok"] else f"[red]FAILED[/red]: {m['error']['message']}"
        table.add_row(
            m.get("name", f"#{m['index']}"),
            m.get("kind", "?"),
            m.get("module_version", ""),
            m.get("abi_version", ""),
            author,
            m.get("description", ""),
            verdict,
        )
    return table


def run(args: argparse.Namespace) -> int:
    """Probe, print, and return the exit status."""
    console = Console()
    given = [x for x in (args.library, args.modules, args.modules_dir) if x]
    if len(given) != 1:
        print("error: give exactly one of LIBRARY, --modules or --modules_dir", file=sys.stderr)
        return 2
    try:
        if args.library:
            report = run_probe(["library", args.library], args.allow_insecure_modules)
        else:
            report = run_probe(
                ["config", args.modules or "", args.modules_dir or ""], args.allow_insecure_modules
            )
    except ProbeFailed as exc:
        if args.json:
            print(json.dumps({"error": {"class": "ProbeFailed", "message": str(exc)}}))
        print(f"error: {exc}", file=sys.stderr)
        return 1

    if args.json:
        print(json.dumps(report, indent=2))
    if args.library:
        failures = [report["error"]] if report["error"] else []
        failures += [m["error"] for m in report["modules"] if not m["ok"]]
        if not args.json and report["modules"]:
            console.print(_library_table(report))
    else:
        failures = report["errors"]
        if not args.json and not failures:
            table = Table(title="modules provided")
            for column in ("name", "kind", "version", "source", "parameters"):
                table.add_column(column)
            for m in report["modules"]:
                params = ", ".join(f"{p['key']}={p['value']}" for p in m["parameters"])
                table.add_row(
                    m["name"], m["kind"], m.get("module_version", ""), m["source"], params
                )
            console.print(table)
    for failure in failures:
        # One line per failure, unwrapped, so operators can grep CI logs.
        print(f"error: {failure['message']}", file=sys.stderr)
    return 1 if failures else 0
