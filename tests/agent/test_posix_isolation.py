"""The bundled native posix isolators (`--isolation=posix/rlimits,posix/usage`) on real tasks."""

from __future__ import annotations

import asyncio
import sys

from support.agent_tasks import follow, launch, task_info

GROW = f"{sys.executable} -c 'import time\nx = []\nwhile True: x.append(bytearray(4 << 20)); time.sleep(0.02)'"


async def test_a_task_over_its_memory_fails_with_the_mesos_reason(agent_factory, scheduler):
    await agent_factory(isolation="posix/rlimits,posix/usage")
    await launch(scheduler, lambda o: task_info(o, "hog", GROW, cpus=0.5, mem=48))
    final = (await follow(scheduler, "hog", timeout=60))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert final["source"] == "SOURCE_SLAVE"
    assert "Memory limit exceeded" in final["message"] and "48.0 MB" in final["message"]


async def test_usage_of_a_running_task_is_in_monitor_statistics(agent_factory, scheduler, session):
    running = await agent_factory(isolation="posix/rlimits,posix/usage")
    command = "while [ ! -e go ]; do sleep 0.05; done"
    await launch(scheduler, lambda o: task_info(o, "calm", command, cpus=0.5, mem=64))
    await follow(scheduler, "calm", until="TASK_RUNNING")

    async def statistics():
        async with session.get(f"{running.url}/monitor/statistics") as response:
            assert response.status == 200
            return await response.json()

    entries: list = []
    for _ in range(500):  # until the first sample shows the task's memory
        entries = await statistics()
        if entries and entries[0]["statistics"].get("mem_rss_bytes", 0) > 0:
            break
        await asyncio.sleep(0.02)
    stats = entries[0]["statistics"]
    assert stats["processes"] >= 1 and stats["threads"] >= 1
    assert stats["cpus_limit"] == 0.5 and stats["mem_limit_bytes"] == 64 * 1024 * 1024
    assert stats["cpus_user_time_secs"] >= 0 and stats["timestamp"] > 0
    container = running.agent.find(scheduler.framework_id, "calm")
    (container.sandbox / "go").touch()
    assert (await follow(scheduler, "calm"))[-1]["state"] == "TASK_FINISHED"
