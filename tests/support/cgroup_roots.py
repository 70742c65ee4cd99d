"""A --cgroups_root of one's own per test, and nothing left behind in the real hierarchies.

Tests on one machine (and several engineers' runs) share /sys/fs/cgroup: a
root per test keeps one test's orphan sweep off another's containers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

HIERARCHY = Path("/sys/fs/cgroup")
#: the v1 mounts the cgroups isolators use on CI's machines
CONTROLLERS = ("memory", "cpu", "cpuacct")


def folders(root: str, container_id: str | None = None) -> list[Path]:
    """The root's (or a container's) folder in each controller's mount."""
    base = [HIERARCHY / c / root for c in CONTROLLERS]
    return base if container_id is None else [b / container_id for b in base]


def destroy(path: Path) -> None:
    """Kill what is in the cgroup ``path`` and its children, then remove them (bottom up)."""
    if not path.is_dir():
        return
    for child in (p for p in path.iterdir() if p.is_dir()):
        destroy(child)
    for _ in range(200):
        pids = (path / "cgroup.procs").read_text().split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
    path.rmdir()  # raises: the test left a cgroup that cannot be removed


@contextlib.contextmanager
def unique_root(prefix: str = "pmm_test") -> Iterator[str]:
    """A fresh cgroups root name; removed (with anything under it) afterwards."""
    root = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield root
    finally:
        for path in folders(root):
            destroy(path)


def join_cgroups(paths: list[str]) -> None:
    """What the agent's launcher does between fork and exec: the task joins its cgroups."""
    for path in paths:
        with open(os.path.join(path, "cgroup.procs"), "w") as procs:
            procs.write("0")
