"""The fetcher: CommandInfo.uris fetched into the sandbox before a command task runs."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from support.agent_tasks import follow, launch, task_info
from support.served_files import tar_gz, zipped


def sandbox_of(agent: Any, framework_id: str, task_id: str) -> Path:
    """The task's sandbox (the task may be forgotten already, its update acknowledged)."""
    (path,) = Path(agent.agent.work_dir).glob(
        f"slaves/*/frameworks/{framework_id}/executors/{task_id}/runs/latest"
    )
    return path.resolve()


async def run(scheduler: Any, task_id: str, command: str, uris: list[dict]) -> list[dict]:
    cmd = {"shell": True, "value": command, "uris": uris}
    await launch(scheduler, lambda o: task_info(o, task_id, cmd))
    return await follow(scheduler, task_id)


async def test_uris_are_fetched_extracted_and_made_executable(agent, scheduler, files, tmp_path):
    content, _, base = files
    content["tools.tar.gz"] = tar_gz({"tools/a.txt": b"from tar\n"})
    content["bundle.zip"] = zipped({"z/b.txt": b"from zip\n"})
    content["note.txt.gz"] = gzip.compress(b"from gz\n")
    content["run.sh"] = b"#!/bin/sh\necho ran > ran.txt\n"
    local = tmp_path / "local.txt"
    local.write_text("from a path\n")
    uris = [
        {"value": f"{base}/tools.tar.gz"},
        {"value": f"{base}/bundle.zip"},
        {"value": f"{base}/note.txt.gz"},
        {"value": f"{base}/run.sh", "executable": True},
        {"value": str(local), "output_file": "copied/path.txt"},
        {"value": f"file://{local}", "output_file": "by-url.txt"},
    ]
    command = "cat tools/a.txt z/b.txt note.txt copied/path.txt by-url.txt > all.txt && ./run.sh"
    statuses = await run(scheduler, "t", command, uris)
    assert statuses[-1]["state"] == "TASK_FINISHED", statuses[-1]
    sandbox = sandbox_of(agent, scheduler.framework_id, "t")
    assert (sandbox / "all.txt").read_text() == (
        "from tar\nfrom zip\nfrom gz\nfrom a path\nfrom a path\n"
    )
    assert (sandbox / "ran.txt").read_text() == "ran\n"


async def test_a_cached_uri_is_downloaded_once(agent, scheduler, files):
    content, served, base = files
    content["data.txt"] = b"cached\n"
    uri = {"value": f"{base}/data.txt", "cache": True, "extract": False}
    for task_id in ("first", "second"):
        statuses = await run(scheduler, task_id, "grep -q cached data.txt", [uri])
        assert statuses[-1]["state"] == "TASK_FINISHED", statuses[-1]
    assert served["data.txt"] == 1
    cache = Path(agent.agent.fetcher.cache_dir)
    assert len(list(cache.iterdir())) == 1


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("missing.txt", None, "HTTP 404"),
        ("evil.tar.gz", tar_gz({"../escaped.txt": b"x"}), "refusing the archive"),
        ("evil.zip", zipped({"../escaped.txt": b"x"}), "outside the sandbox"),
    ],
    ids=["404", "tar-escape", "zip-escape"],
)
async def test_a_failed_fetch_fails_the_task_naming_the_uri(
    agent, scheduler, files, name, body, words
):
    content, _, base = files
    if body is not None:
        content[name] = body
    statuses = await run(scheduler, "t", "true", [{"value": f"{base}/{name}"}])
    last = statuses[-1]
    assert last["state"] == "TASK_FAILED"
    assert last["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert f"{base}/{name}" in last["message"] and words in last["message"]
    sandbox = sandbox_of(agent, scheduler.framework_id, "t")
    assert not (sandbox.parent / "escaped.txt").exists()
    assert not (sandbox / "escaped.txt").exists()


async def test_the_cache_stays_within_its_bound(agent_factory, scheduler, files):
    running = await agent_factory(fetcher_cache_size=16)
    content, served, base = files
    content.update({"a.txt": b"a" * 10, "b.txt": b"b" * 10, "big.txt": b"c" * 20})
    cache = Path(running.agent.fetcher.cache_dir)

    def cached(name: str) -> dict[str, Any]:
        return {"value": f"{base}/{name}", "cache": True, "extract": False}

    for task_id, name in [("a", "a.txt"), ("b", "b.txt"), ("big", "big.txt"), ("a-again", "a.txt")]:
        statuses = await run(scheduler, task_id, f"test -s {name}", [cached(name)])
        assert statuses[-1]["state"] == "TASK_FINISHED", statuses[-1]
        # Never more than 16 bytes kept: b.txt pushed a.txt out, big.txt was not kept.
        assert sum(p.stat().st_size for p in cache.iterdir()) <= 16
    assert served == {"a.txt": 2, "b.txt": 1, "big.txt": 1}
