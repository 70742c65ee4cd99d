"""Anonymous modules live as long as the master: created at start (metrics visible in
/metrics/snapshot), destroyed at stop, and never left behind by a start that fails."""

from __future__ import annotations

import argparse
import json
from typing import Any

import aiohttp
import pytest

from pymesos_modules import metrics, paths
from pymesos_modules.abi import loaded_library_paths
from pymesos_modules.errors import UnknownModuleError
from pymesos_modules.master.cli import FLAGS, start_master

HELLO = json.dumps(
    {
        "libraries": [
            {
                "name": "pmm_hello",
                "modules": [
                    {"name": "org_pymesos_Hello", "parameters": [{"key": "greeting", "value": "k"}]}
                ],
            }
        ]
    }
)
HELLO_LIBRARY = str(paths.BUNDLED_MODULES_DIR / "libpmm_hello.so")


def master_args(**overrides: Any) -> argparse.Namespace:
    values = {name: default for name, _, default, _ in FLAGS}
    values.update(port=0, allocation_interval=0.05, simulated_agents=0)
    values.update(overrides)
    return argparse.Namespace(**values)


def hello_loaded() -> bool:
    return any(str(p) == HELLO_LIBRARY for p in loaded_library_paths())


async def test_anonymous_module_metric_shows_in_master_snapshot_until_stop():
    assert not hello_loaded()
    running = await start_master(master_args(modules=HELLO))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{running.url}/metrics/snapshot") as response,
        ):
            snapshot = await response.json()
    finally:
        await running.stop()
    assert snapshot["hello/created"] >= 1.0
    live = snapshot["hello/instances"]
    assert live >= 1.0
    # stop() destroyed the instance (its destroy() published the new count) and unloaded it.
    assert metrics.REGISTRY.snapshot()["hello/instances"] == live - 1
    assert not hello_loaded()


async def test_a_master_that_fails_to_start_destroys_its_anonymous_modules():
    created = metrics.REGISTRY.snapshot().get("hello/created", 0.0)
    with pytest.raises(UnknownModuleError, match="--hooks: unknown module 'nope'"):
        await start_master(master_args(modules=HELLO, hooks="nope"))
    after = metrics.REGISTRY.snapshot()
    # Created before the bad flag was read, then destroyed, and its library unloaded.
    assert after["hello/created"] == created + 1
    assert after["hello/instances"] == 0.0
    assert not hello_loaded()
