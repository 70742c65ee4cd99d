"""Children we start import our package, never a ``pymesos_modules/`` in the current folder.

Each command that starts child processes (inspect's probe, bench's
measurements, simulate, the agent's task launcher through ``local``) runs
from a folder holding a hostile ``pymesos_modules`` package whose
``__init__`` leaves a marker file: the command must work and the marker must
not appear.  The ``hostile`` fixture first proves the plant is live: a plain
``python -c 'import pymesos_modules'`` in that folder does run it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import aiohttp
import pytest
from support.agent_tasks import follow_all, start_command, task_info
from support.scheduler import Scheduler

from pymesos_modules import paths

HOSTILE_INIT = """\
from pathlib import Path
Path({marker!r}).write_text("the planted pymesos_modules ran")
"""


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """(folder with a planted pymesos_modules/, the marker file its __init__ writes)."""
    folder = tmp_path / "cwd"
    package = folder / "pymesos_modules"
    (package / "bench").mkdir(parents=True)
    marker = tmp_path / "hostile-ran"
    (package / "__init__.py").write_text(HOSTILE_INIT.format(marker=str(marker)))
    for name in ("__main__.py", "_probe.py", "bench/__init__.py", "bench/runner.py"):
        (package / name).write_text("raise SystemExit(3)\n")
    subprocess.run([sys.executable, "-c", "import pymesos_modules"], cwd=folder, check=True)
    assert marker.exists(), "the planted package is not importable from its folder"
    marker.unlink()
    return folder, marker


def command(*args: str) -> list[str]:
    """The installed ``pymesos-modules`` script, as an operator runs it."""
    script = Path(sysconfig.get_path("scripts")) / "pymesos-modules"
    assert script.exists(), f"{script} missing: install the project first (pip install -e .)"
    return [str(script), *args]


def test_module_command_runs_this_copy_of_the_package(hostile):
    folder, marker = hostile
    done = subprocess.run(
        paths.module_command("pymesos_modules", "--includedir"),
        cwd=folder, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(paths.INCLUDE_DIR)
    assert not marker.exists()


def test_inspect_probes_with_the_installed_package(hostile):
    folder, marker = hostile
    library = paths.BUNDLED_MODULES_DIR / "libpmm_hello.so"
    done = subprocess.run(
        command("inspect", str(library), "--json"), cwd=folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [m["ok"] for m in json.loads(done.stdout)["modules"]] == [True]
    assert not marker.exists()


def test_bench_measures_with_the_installed_package(hostile, tmp_path):
    folder, marker = hostile
    out = tmp_path / "bench.json"
    done = subprocess.run(
        command("bench", "--agents", "40", "--frameworks", "4", "--scenarios", "steady",
                "--cycles", "2", "--warmup", "1", "--json", str(out)),
        cwd=folder, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]
    assert len(results) == 3 and not [r for r in results if "error" in r], results
    assert not marker.exists()


def test_simulate_runs_with_the_installed_package(hostile, tmp_path):
    folder, marker = hostile
    out = tmp_path / "sim.json"
    done = subprocess.run(
        command("simulate", "--agents", "4", "--frameworks", "2", "--tasks", "20",
                "--allocator", "native/drf", "--json", str(out)),
        cwd=folder, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(out.read_text())["runs"][0]["finished"] == 20
    assert not marker.exists()


async def test_local_launches_tasks_without_the_planted_package(hostile, tmp_path):
    folder, marker = hostile
    process, url = await start_command(
        "local", "--port=0", "--num_agents=1", "--allocator=python/drf",
        "--allocation_interval=0.05", f"--work_dir={tmp_path / 'work'}",
        "--resources=cpus:1;mem:256",
        banner="master listening on http://127.0.0.1:", cwd=folder,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            scheduler = Scheduler(url, session)
            await scheduler.subscribe()
            try:
                offer = (await scheduler.next("OFFERS", 30))["offers"]["offers"][0]
                task = task_info(offer, "t", "true", cpus=0.5, mem=32)
                accept = {
                    "type": "ACCEPT",
                    "accept": {
                        "offer_ids": [offer["id"]],
                        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
                    },
                }
                assert await scheduler.call(accept) == 202
                await follow_all(scheduler, {"t"}, until="TASK_FINISHED")
            finally:
                await scheduler.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert not marker.exists()
