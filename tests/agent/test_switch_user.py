"""--switch_user as Mesos (issue 12, item 10): tasks run as their user when the agent is root.

The user is CommandInfo.user, else FrameworkInfo.user; one that does not exist
fails the task naming it; --switch_user=false runs tasks as the agent's user.
Switching users needs root: CI runs as root; elsewhere these are skipped.
"""

from __future__ import annotations

import os
import pwd

import pytest
from support.agent_tasks import follow, launch, task_info
from support.scheduler import Scheduler

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"), reason="switching users needs root"
)

NOBODY = pwd.getpwnam("nobody")


def _task(task_id: str, user: str | None = None):
    command = {"shell": True, "value": "id -u; id -g; touch mine"}
    if user is not None:
        command["user"] = user

    def make(offer):
        return task_info(offer, task_id, command)

    return make


def _sandbox(agent, task_id: str):
    [container] = [
        c for c in agent.agent.all_containers() + agent.agent.completed if c.task_id == task_id
    ]
    return container.sandbox


async def test_a_task_runs_as_its_command_user(agent, scheduler):
    await launch(scheduler, _task("as-nobody", "nobody"))
    final = (await follow(scheduler, "as-nobody"))[-1]
    assert final["state"] == "TASK_FINISHED", final
    sandbox = _sandbox(agent, "as-nobody")
    assert (sandbox / "stdout").read_text().split() == [str(NOBODY.pw_uid), str(NOBODY.pw_gid)]
    # The sandbox is the user's, as Mesos chowns it: the task could write there.
    assert (sandbox / "mine").stat().st_uid == NOBODY.pw_uid
    assert sandbox.stat().st_uid == NOBODY.pw_uid


async def test_framework_user_is_used_when_the_command_names_none(agent, master, session):
    scheduler = Scheduler(master.url, session)
    await scheduler.subscribe(user="nobody")
    try:
        await launch(scheduler, _task("fw-user"))
        final = (await follow(scheduler, "fw-user"))[-1]
        assert final["state"] == "TASK_FINISHED", final
        assert (_sandbox(agent, "fw-user") / "stdout").read_text().split()[0] == str(NOBODY.pw_uid)
    finally:
        await scheduler.close()


async def test_a_user_that_does_not_exist_fails_the_task_naming_it(agent, scheduler):
    await launch(scheduler, _task("ghost", "pmm_no_such_user"))
    final = (await follow(scheduler, "ghost"))[-1]
    assert final["state"] == "TASK_FAILED"
    assert final["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "user 'pmm_no_such_user' does not exist on this agent" in final["message"]
    assert "--switch_user" in final["message"]


async def test_without_switch_user_tasks_run_as_the_agents_user(agent_factory, scheduler):
    agent = await agent_factory(switch_user=False)
    await launch(scheduler, _task("as-agent", "nobody"))
    final = (await follow(scheduler, "as-agent"))[-1]
    assert final["state"] == "TASK_FINISHED", final
    uid = (_sandbox(agent, "as-agent") / "stdout").read_text().split()[0]
    assert uid == str(os.geteuid())
