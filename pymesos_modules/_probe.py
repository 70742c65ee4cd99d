"""Subprocess side of ``pymesos-modules inspect``: load, check, report JSON on stdout.

Run as ``python -m pymesos_modules._probe library PATH`` or
``python -m pymesos_modules._probe config MODULES MODULES_DIR``.  It runs in a
child process (like GStreamer's plugin scanner) so a library that crashes in
its constructor or entry point takes down only the probe, never the caller.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from pymesos_modules import abi, crash, errors
from pymesos_modules.config import load_flags
from pymesos_modules.manager import ModuleManager


def _error(exc: BaseException) -> dict[str, str]:
    return {"class": type(exc).__name__, "message": str(exc)}


def probe_library(path: str, allow_insecure: bool) -> dict[str, Any]:
    """Describe every module of one library, checking each like the loader does."""
    report: dict[str, Any] = {"library": path, "error": None, "modules": []}
    try:
        # One open: the file checked is the file loaded (no second path lookup).
        library = abi.open_library(path, secure=not allow_insecure)
        report["library"] = library.path
        pointers = library.descriptor_pointers()
    except errors.ModuleError as exc:
        report["error"] = _error(exc)
        return report
    manager = ModuleManager(allow_insecure=True)
    _, bad = library.check_each()
    twice = {b.name: b.error for b in bad if isinstance(b.error, errors.DuplicateModuleError)}
    for index, pointer in enumerate(pointers):
        entry: dict[str, Any] = {"index": index, "ok": True, "error": None}
        try:
            info = abi.check_descriptor(library.path, index, pointer)
            entry.update(
                name=info.name,
                kind=info.kind,
                module_version=info.module_version,
                abi_version=info.abi_version,
                author=info.author_name,
                email=info.author_email,
                description=info.description,
            )
            if info.name in twice:
                raise twice[info.name]
            manager._check_compatible(library, info)
        except errors.ModuleError as exc:
            entry["ok"] = False
            entry["error"] = _error(exc)
        report["modules"].append(entry)
    if not pointers:
        report["error"] = {
            "class": "EntryPointError",
            "message": f"{library.path}: {abi.ENTRY_POINT}() lists no modules",
        }
    return report


def probe_config(modules: str | None, modules_dir: str | None, allow_insecure: bool) -> dict:
    """Load a whole configuration the way the master does; list modules or every failure."""
    report: dict[str, Any] = {"errors": [], "modules": []}
    manager = ModuleManager(allow_insecure=allow_insecure)
    try:
        loaded = manager.load(load_flags(modules or None, modules_dir or None))
    except errors.ConfigLoadError as exc:
        report["errors"] = [_error(e) for e in exc.errors]
        return report
    except errors.ModuleError as exc:
        report["errors"] = [_error(exc)]
        return report
    report["modules"] = [m.describe() for m in loaded]
    return report


def main(argv: list[str]) -> int:
    """Entry point of the probe subprocess; prints one JSON document."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # A library that crashes (or hangs, and is sent SIGABRT) is named on stderr's last line.
    crash.install()
    # The report owns stdout: a module that printf()s from a constructor or from
    # create() would otherwise corrupt the JSON, so native fd 1 goes to stderr.
    sys.stdout.flush()
    report_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    allow_insecure = "--allow-insecure-modules" in argv
    args = [a for a in argv if a != "--allow-insecure-modules"]
    if args[:1] == ["library"] and len(args) == 2:
        report = probe_library(args[1], allow_insecure)
    elif args[:1] == ["config"] and len(args) == 3:
        report = probe_config(args[1], args[2], allow_insecure)
    else:
        print("usage: _probe library PATH | config MODULES MODULES_DIR", file=sys.stderr)
        return 2
    with report_stream:
        json.dump(report, report_stream)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
