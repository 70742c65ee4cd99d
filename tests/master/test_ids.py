"""Framework, task, executor and agent ids are validated once, as Mesos' validateID (issue 12.6)."""

from __future__ import annotations

import pytest
from support.executor_tasks import DEFAULT, accept_group
from support.fake_agent import FakeAgent
from support.scheduler import Scheduler, launch

from pymesos_modules.ids import id_problem, role_problem

BAD_IDS = ["a/b", "a\\b", "a\x00b", "a\nb", ".", "..", "", "x" * 256, "tab\there", "\x7f"]


@pytest.mark.parametrize("value", BAD_IDS)
def test_bad_ids_are_refused_with_a_reason(value):
    assert id_problem(value)


@pytest.mark.parametrize("value", ["t1", "my-task.1", "a b", "ü", "x" * 255, "..."])
def test_good_ids_pass(value):
    assert id_problem(value) is None


@pytest.mark.parametrize("role", ["..", ".", "a b", "-a", "a/", "/a", "a//b", "a/../b", "a\tb", ""])
def test_bad_roles(role):
    assert role_problem(role)


@pytest.mark.parametrize("role", ["*", "prod", "eng/ml", "a.b", "a-b"])
def test_good_roles(role):
    assert role_problem(role) is None


def state_of(event):
    return event["update"]["status"]["state"]


async def test_a_task_with_a_bad_id_is_a_task_error_and_never_reaches_the_agent(
    bare_master, session
):
    agent = FakeAgent(bare_master.url, session)
    await agent.register()
    scheduler = Scheduler(bare_master.url, session)
    await scheduler.subscribe()
    for bad in ["a/b", "a\\b", "a\x00b", "a\nb", "..", "x" * 256]:
        offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
        assert await scheduler.call(launch(offer, bad, cpus=0.5)) == 202, scheduler.last_text
        error = await scheduler.next("UPDATE")
        assert state_of(error) == "TASK_ERROR", bad
        assert error["update"]["status"]["reason"] == "REASON_TASK_INVALID"
        assert "task_id" in error["update"]["status"]["message"]
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    assert await scheduler.call(launch(offer, "good", cpus=0.5)) == 202
    run = await agent.next("RUN_TASK")  # the first task the agent hears of is the good one
    assert run["run_task"]["task"]["task_id"]["value"] == "good"
    assert bare_master.master.frameworks[scheduler.framework_id].tasks.keys() == {"good"}
    await scheduler.close()
    await agent.disconnect()


async def test_a_group_with_a_bad_executor_id_is_a_task_error(master, scheduler):
    await scheduler.subscribe()
    offer = (await scheduler.next("OFFERS"))["offers"]["offers"][0]
    task = launch(offer, "g1", cpus=0.5)["accept"]["operations"][0]["launch"]["task_infos"][0]
    executor = {**DEFAULT, "executor_id": {"value": "../escape"}}
    await accept_group(scheduler, offer, [task], executor)
    error = await scheduler.next("UPDATE")
    assert state_of(error) == "TASK_ERROR"
    assert error["update"]["status"]["reason"] == "REASON_TASK_GROUP_INVALID"
    assert "executor_id" in error["update"]["status"]["message"]
