"""What the agent offers when ``--resources`` leaves something out: Mesos' detection rules.

Mesos (src/slave/containerizer/containerizer.cpp) fills in every resource the
operator did not give: cpus from the CPU count, mem as the total minus 1 GB (half
when under 2 GB), disk as the size of work_dir's filesystem minus 5 GB (half when
under 10 GB), and ports 31000-32000.  We follow the same rules so an agent moved
from Mesos advertises the same amounts.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

MB = 1024 * 1024
GB = 1024 * MB
#: Mesos' DEFAULT_PORTS.
DEFAULT_PORTS = (31000, 32000)
#: Mesos' fallbacks when detection fails (DEFAULT_CPUS, DEFAULT_MEM, DEFAULT_DISK).
DEFAULT_CPUS = 1.0
DEFAULT_MEM_MB = 1024.0
DEFAULT_DISK_MB = 10 * 1024.0


def total_memory_bytes() -> int | None:
    """Physical memory from /proc/meminfo (``MemTotal``), or None if unreadable."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_mb(total: int | None) -> float:
    """Mesos' rule: leave 1 GB free, or use half when the machine has less than 2 GB."""
    if total is None:
        return DEFAULT_MEM_MB
    usable = total - GB if total >= 2 * GB else total // 2
    return float(usable // MB)


def disk_mb(total: int | None) -> float:
    """Mesos' rule: leave 5 GB free, or use half when the filesystem is under 10 GB."""
    if total is None:
        return DEFAULT_DISK_MB
    usable = total - 5 * GB if total >= 10 * GB else total // 2
    return float(usable // MB)


def filesystem_bytes(path: str) -> int | None:
    """Size of the filesystem holding ``path`` (as Mesos' fs::size), or None."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize


def fill_in(resources: list[dict[str, Any]], work_dir: str) -> list[dict[str, Any]]:
    """``resources`` plus whatever of cpus, mem, disk and ports it does not name."""
    named = {r["name"] for r in resources}
    out = list(resources)

    def scalar(name: str, value: float) -> None:
        out.append({"name": name, "type": "SCALAR", "scalar": {"value": value}})

    if "cpus" not in named:
        scalar("cpus", float(os.cpu_count() or DEFAULT_CPUS))
    if "mem" not in named:
        scalar("mem", memory_mb(total_memory_bytes()))
    if "disk" not in named:
        scalar("disk", disk_mb(filesystem_bytes(work_dir)))
    if "ports" not in named:
        begin, end = DEFAULT_PORTS
        out.append(
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": begin, "end": end}]}}
        )
    return out
