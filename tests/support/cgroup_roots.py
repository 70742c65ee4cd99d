"""A --cgroups_root of one's own per test, nothing left behind, and the machine's cgroup layout.

Tests on one machine (and several engineers' runs) share /sys/fs/cgroup: a
root per test keeps one test's orphan sweep off another's containers.

The same tests run on three layouts, found from the machine itself
(``LAYOUT``): CI's host has cgroup v1 with ``memory``, ``cpu`` and
``cpuacct`` mounted apart; the cgroup VM (tests/support/cgroup_vm.py) boots a
kernel with cgroup2 at /sys/fs/cgroup holding every controller, and one with
the combined v1 ``cpu,cpuacct`` mount most distributions have.  ``Layout``
says where a container's folders are and reads their limits whatever the
version, so each test states what it expects once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HIERARCHY = Path("/sys/fs/cgroup")
#: the controllers the cgroups isolators use (cpuacct is part of cpu on v2)
CONTROLLERS = ("memory", "cpu", "cpuacct")
#: v1 limits at or above this are "unlimited" (PAGE_COUNTER_MAX pages in bytes)
_V1_UNLIMITED = 1 << 60


def _v1_mounts() -> dict[str, Path]:
    """Each v1 controller's mount point under HIERARCHY, from /proc/self/mountinfo."""
    found: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        after = fields[fields.index("-") + 1 :]
        if after[0] != "cgroup":
            continue
        for option in after[2].split(","):
            if option in CONTROLLERS and Path(fields[4]).parent == HIERARCHY:
                found.setdefault(option, Path(fields[4]))
    return found


@dataclass(frozen=True)
class Layout:
    """Where each controller's cgroups live on this machine, and how to read their limits."""

    v2: bool
    #: controller -> the mount holding its cgroups (v2: HIERARCHY for all)
    mounts: dict[str, Path]

    @classmethod
    def of_this_machine(cls) -> Layout:
        """cgroup v2 when HIERARCHY is a cgroup2 mount, else its v1 mounts."""
        if (HIERARCHY / "cgroup.controllers").exists():
            return cls(True, {c: HIERARCHY for c in CONTROLLERS})
        return cls(False, _v1_mounts())

    @property
    def name(self) -> str:
        """'v2', 'v1' (controllers apart) or 'v1 cpu,cpuacct' (combined mount)."""
        if self.v2:
            return "v2"
        return "v1 cpu,cpuacct" if self.mounts.get("cpu") == self.mounts.get("cpuacct") else "v1"

    def folder(self, controller: str, root: str, container_id: str | None = None) -> Path:
        """The root's (or a container's) folder in ``controller``'s mount."""
        base = self.mounts[controller] / root
        return base if container_id is None else base / container_id

    def folders(
        self, root: str, container_id: str | None = None, controllers=CONTROLLERS
    ) -> list[Path]:
        """Distinct folders of the root (or a container) over ``controllers``, in order."""
        out: list[Path] = []
        for controller in controllers:
            if controller in self.mounts:
                path = self.folder(controller, root, container_id)
                if path not in out:
                    out.append(path)
        return out

    def distinct_mounts(self) -> list[Path]:
        """Each mount the isolators write to, once."""
        return list(dict.fromkeys(self.mounts[c] for c in CONTROLLERS if c in self.mounts))

    # --- reading limits: bytes, None = unlimited ------------------------------------------

    def hard_limit(self, folder: Path) -> int | None:
        """memory.limit_in_bytes (v1) / memory.max (v2)."""
        return _bytes(folder / ("memory.max" if self.v2 else "memory.limit_in_bytes"))

    def soft_limit(self, folder: Path) -> int | None:
        """memory.soft_limit_in_bytes (v1) / memory.low (v2)."""
        return _bytes(folder / ("memory.low" if self.v2 else "memory.soft_limit_in_bytes"))

    def swap_cap(self, folder: Path) -> int | None:
        """What caps swap: v1 memory.memsw.limit_in_bytes (memory + swap), v2 memory.swap.max."""
        return _bytes(folder / ("memory.swap.max" if self.v2 else "memory.memsw.limit_in_bytes"))

    def weight(self, folder: Path) -> int:
        """cpu.shares (v1) / cpu.weight (v2)."""
        return int(_read(folder / ("cpu.weight" if self.v2 else "cpu.shares")))

    def weight_for(self, cpus: float) -> int:
        """The weight a container with ``cpus`` gets: 1024 shares per cpu (v1), weight 100 (v2)."""
        return round(cpus * 100) if self.v2 else int(cpus * 1024)

    def cfs(self, folder: Path) -> tuple[int | None, int]:
        """(quota, period) in us; quota None = no CFS limit."""
        if self.v2:
            quota, period = _read(folder / "cpu.max").split()
            return (None if quota == "max" else int(quota)), int(period)
        quota = int(_read(folder / "cpu.cfs_quota_us"))
        return (None if quota < 0 else quota), int(_read(folder / "cpu.cfs_period_us"))

    def in_cgroups(self, proc_cgroup: str, root: str, container_id: str) -> bool:
        """Whether a /proc/<pid>/cgroup text places the process in the container's cgroups."""
        where = f"/{root}/{container_id}"
        entries = [line.split(":", 2) for line in proc_cgroup.splitlines()]
        if self.v2:
            return ["0", "", where] in entries
        return all(
            any(c in e[1].split(",") and e[2] == where for e in entries) for c in CONTROLLERS
        )


def _read(path: Path) -> str:
    return path.read_text().strip()


def _bytes(path: Path) -> int | None:
    text = _read(path)
    if text == "max":
        return None
    value = int(text)
    return None if value >= _V1_UNLIMITED else value


LAYOUT = Layout.of_this_machine()


def folders(root: str, container_id: str | None = None) -> list[Path]:
    """The root's (or a container's) distinct folders over every controller's mount."""
    return LAYOUT.folders(root, container_id)


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
