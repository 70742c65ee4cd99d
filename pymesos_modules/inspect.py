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
from pymesos_modules.names import shown

#: Seconds a probe may take before it is treated as hung.
PROBE_TIMEOUT = 60.0


class ProbeFailed(Exception):
    """The probe subprocess crashed, hung or printed something unreadable."""


def run_probe(arguments: list[str], allow_insecure: bool, what: str) -> dict[str, Any]:
    """Run the probe in a child process and return its JSON report.

    ``what`` names the library or configuration probed, for the messages.
    """
    command = paths.module_command("pymesos_modules._probe", *arguments)
    if allow_insecure:
        command.append("--allow-insecure-modules")
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as probe:
        try:
            stdout, stderr = probe.communicate(timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            # SIGABRT, not SIGKILL: the probe's crash record then says what it was
            # running (which library's constructor, entry point or compatible()).
            probe.send_signal(signal.SIGABRT)
            try:
                _, stderr = probe.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                probe.kill()
                _, stderr = probe.communicate()
            running = _crash_record(stderr)
            inside = f" in {running}" if running else ""
            raise ProbeFailed(
                f"probing {what} hung for {PROBE_TIMEOUT:.0f} s{inside}; the probe was stopped"
            ) from None
    if probe.returncode < 0:
        name = signal.Signals(-probe.returncode).name
        running = _crash_record(stderr)
        inside = f" in {running}" if running else ""
        raise ProbeFailed(f"{what}: loading it crashed the probe process ({name}){inside}")
    done = subprocess.CompletedProcess(command, probe.returncode, stdout, stderr)
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeFailed(
            f"{what}: probe exited with status {done.returncode}: {shown(last, 300)}"
        ) from None


def _crash_record(stderr: str) -> str | None:
    """What the probe was running when it died, from its crash record line (crash.py)."""
    for line in reversed(stderr.splitlines()):
        _, found, running = line.partition(" in module code: ")
        if line.startswith("pymesos-modules: ") and found:
            return running if running.isprintable() and len(running) < 300 else shown(running)
    return None


def _target(args: argparse.Namespace) -> str:
    """How messages name what is inspected."""
    if args.library:
        return str(args.library)
    if args.modules:
        return f"--modules={shown(args.modules)}"
    return f"--modules_dir={args.modules_dir}"


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
            report = run_probe(
                ["library", args.library], args.allow_insecure_modules, _target(args)
            )
        else:
            report = run_probe(
                ["config", args.modules or "", args.modules_dir or ""],
                args.allow_insecure_modules,
                _target(args),
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
