"""Run cgroups tests inside a real Linux kernel with other cgroup layouts (issue 16).

CI's machine has cgroup v1 only: its cgroup2 mount holds neither the memory
nor the cpu controller (both are bound to v1 hierarchies, and a controller
cannot leave a v1 hierarchy that has cgroups), and its cpu and cpuacct
hierarchies are mounted apart.  So the cgroups isolators' v2 code, and the
combined v1 ``cpu,cpuacct`` mount most distributions have, are tested in a
VM: Debian's kernel under qemu (software emulation: the machine offers no
hardware virtualisation), its root the host's own root shared read-only over
9p, so the guest runs the host's Python, installed package and checkout.
The guest (tests/support/cgroup_vm_guest.sh) runs pytest once per layout and
writes JUnit files into a writable shared folder; ``boot`` returns what they
say, for the host's test to assert on.

``.ci/cgroup-vm`` installs qemu and lays out the kernel and initrd (CI runs it).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

VM_DIR = Path(os.environ.get("PMM_CGROUP_VM_DIR", "/var/cache/pymesos-modules/cgroup-vm"))
GUEST = Path(__file__).with_name("cgroup_vm_guest.sh")
REPO = Path(__file__).resolve().parents[2]
QEMU = "qemu-system-x86_64"
#: guest memory: a 600 MB allocation is OOM-killed at 64 MB, so little is used
MEMORY_MB = 2048


@dataclass
class Phase:
    """One pytest run in the guest on one cgroup layout ('v1-cpu-cpuacct' or 'v2')."""

    layout: str
    pytest_args: list[str]


@dataclass
class PhaseResult:
    """What one phase's pytest left: exit status, JUnit outcomes and its output."""

    layout: str
    returncode: int | None
    log: str
    #: "file.py::test_name[param]" -> "passed", "skipped: why" or "failed: message"
    outcomes: dict[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every outcome that is not a pass, as 'test: outcome'."""
        return [f"{name}: {what}" for name, what in self.outcomes.items() if what != "passed"]


def missing() -> str | None:
    """Why the VM cannot boot here (what to install), or None."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed: run .ci/cgroup-vm as root (CI does)"
    for name in ("vmlinuz", "initrd.gz"):
        if not (VM_DIR / name).exists():
            return f"{VM_DIR / name} is missing: run .ci/cgroup-vm as root (CI does)"
    return None


def _outcomes(junit: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = f"{module}.py::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = f"{child.tag}: {child.get('message', '')}"
                break
            if child.tag == "skipped":
                outcome = f"skipped: {child.get('message', '')}"
        out[name] = outcome
    return out


def _command(out: Path) -> list[str]:
    append = " ".join(
        [
            "console=ttyS0",
            "loglevel=3",  # the guest's OOM-killer reports stay off the console
            "panic=-1",
            f"pmm_guest={GUEST}",
        ]
    )
    return [
        QEMU,
        "-machine", "q35",
        "-cpu", "max",  # TCG: every feature qemu emulates (NumPy wheels need SSE4.2 and up)
        "-smp", "2",
        "-m", str(MEMORY_MB),
        "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(VM_DIR / "vmlinuz"),
        "-initrd", str(VM_DIR / "initrd.gz"),
        "-append", append,
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={out},mount_tag=out,security_model=none",
    ]  # fmt: skip


def boot(phases: list[Phase], out: Path, timeout: float, env: dict[str, str] | None = None):
    """Boot the VM, run ``phases`` in order, power off; their results by layout, and the console.

    ``out`` is the shared writable folder (made empty by the caller); ``env``
    is exported in the guest before the phases run.
    """
    lines = [f"PY={shlex.quote(sys.executable)}", f"REPO={shlex.quote(str(REPO))}"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    for phase in phases:
        lines.append(shlex.join(["run_phase", phase.layout, *phase.pytest_args]))
    (out / "plan").write_text("\n".join(lines) + "\n")
    console = out / "console.log"
    with console.open("wb") as sink:
        done = subprocess.run(
            _command(out), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            timeout=timeout, check=False,
        )  # fmt: skip
    text = console.read_text(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"qemu exited {done.returncode}:\n{text[-4000:]}")
    results = {}
    for phase in phases:
        rc_file, log_file = out / f"{phase.layout}.rc", out / f"{phase.layout}.log"
        junit = out / f"{phase.layout}.xml"
        results[phase.layout] = PhaseResult(
            phase.layout,
            int(rc_file.read_text()) if rc_file.exists() else None,
            log_file.read_text(errors="replace") if log_file.exists() else "",
            _outcomes(junit) if junit.exists() else {},
        )
    return results, text
