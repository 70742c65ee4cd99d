"""A full disk (issue 12, item 9): what is known about a task is reported, and why the rest is not.

The agent's work_dir is a tmpfs of 512 KiB, which a task fills.  CI runs as
root and mounts it; elsewhere the test needs root too (mount(2)) and is
skipped only outside CI.
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
from support.agent_tasks import follow, launch, task_info

from pymesos_modules.agent.checkpoint import MetaDir
from pymesos_modules.agent.status_updates import StatusUpdateManager

NOT_CHECKPOINTED = (
    "this update could not be checkpointed on the agent (No space left on device), so an "
    "agent restarted before it is acknowledged will not send it again"
)


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs, unmounted after the agent using it stopped (listed first)."""
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mount)], check=True
    )
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


async def test_a_task_that_exits_0_while_the_disk_is_full_is_finished(
    small_disk, agent_factory, scheduler
):
    await agent_factory(work_dir=small_disk / "work")
    # head fails once the disk is full; the task itself then exits 0.
    command = "head -c 4000000 /dev/zero > fill; test ! -s fill && exit 9; exit 0"
    await launch(scheduler, lambda o: task_info(o, "filler", command))
    final = (await follow(scheduler, "filler"))[-1]
    assert final["state"] == "TASK_FINISHED", final
    assert os.statvfs(small_disk).f_bavail == 0, "the task must have filled the disk"
    # What is known (the exit status: its record had its space reserved), and why the rest
    # cannot be counted on when the update's own record found no room.
    assert_reported(final, "Command exited with status 0")


async def test_a_task_that_fails_while_the_disk_is_full_reports_its_status(
    small_disk, agent_factory, scheduler
):
    await agent_factory(work_dir=small_disk / "work")
    await launch(scheduler, lambda o: task_info(o, "failer", "cat /dev/zero > fill; exit 4"))
    final = (await follow(scheduler, "failer"))[-1]
    assert final["state"] == "TASK_FAILED", final
    assert_reported(final, "Command exited with status 4")


def assert_reported(final: dict, described: str) -> None:
    """The exit status is always reported; the note says so when the update itself could not
    be checkpointed (its stream is appended to: a record that fits the stream's last block
    still goes in)."""
    assert final["message"] in (described, f"{described}; {NOT_CHECKPOINTED}"), final


def test_a_record_the_full_disk_refuses_leaves_the_stream_as_it_was(small_disk):
    meta = MetaDir(small_disk / "work")
    run = meta.run_dir("S1", "F1", "t", "c1")
    record = {"type": "UPDATE", "status": {"uuid": "u1", "state": "TASK_RUNNING"}}
    meta.append_update(run, "t", record)
    stream = meta.task_dir(run, "t") / "task.updates"
    before = stream.read_bytes()
    with open(small_disk / "fill", "wb", buffering=0) as fill, pytest.raises(OSError):
        while True:
            fill.write(b"x" * 4096)
    big = {"type": "UPDATE", "status": {"uuid": "u2", "state": "TASK_FAILED", "m": "x" * 9000}}
    with pytest.raises(OSError) as refused:
        meta.append_update(run, "t", big)
    assert refused.value.errno == errno.ENOSPC
    assert stream.read_bytes() == before  # no half record for a restarted agent to trip over


async def test_an_update_that_cannot_be_checkpointed_says_so():
    async def send(framework_id, status):
        raise AssertionError("not connected: nothing is sent")

    updates = StatusUpdateManager(send, checkpoint=lambda f, t, r: "No space left on device")
    status = updates.add("F1", {"task_id": {"value": "t"}, "state": "TASK_FAILED", "message": "m"})
    assert status["message"] == f"m; {NOT_CHECKPOINTED}"
    assert updates.unacknowledged("F1", "t") == [status]  # it still goes out
