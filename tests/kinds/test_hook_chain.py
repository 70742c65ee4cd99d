"""HookChain: --hooks run in order, each seeing the previous result; a failing hook is logged
with its name and skipped, never failing what it decorates."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.kinds.hook import HookChain

TASK = {
    "name": "web",
    "task_id": {"value": "t1"},
    "labels": {"labels": [{"key": "k", "value": "v"}]},
}


class Appender:
    """Adds a label naming itself, after the labels it is given."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.seen: list[list[dict[str, str]]] = []

    def master_launch_task_label_decorator(
        self, task: dict[str, Any], framework: dict[str, Any], agent_id: str
    ) -> list[dict[str, str]]:
        labels = task["labels"]["labels"]
        self.seen.append(labels)
        return [*labels, {"key": self.label, "value": agent_id}]


class Raising:
    name = "broken"

    def master_launch_task_label_decorator(self, *args: Any) -> None:
        raise RuntimeError("boom")

    def agent_task_environment_decorator(self, *args: Any) -> None:
        raise KeyError("HOME")


class Silent:
    """Answers None: no change."""

    def master_launch_task_label_decorator(self, *args: Any) -> None:
        return None


class Malformed:
    name = "malformed"

    def master_launch_task_label_decorator(self, *args: Any) -> Any:
        return [{"value": "no key"}]

    def agent_task_environment_decorator(self, *args: Any) -> Any:
        return {"A": 1}

    def agent_task_status_decorator(self, *args: Any) -> Any:
        return {"container_status": []}


def test_each_hook_sees_the_previous_result_in_order():
    first, second = Appender("a"), Appender("b")
    chain = HookChain([first, Silent(), second])
    decorated = chain.decorate_master_task(TASK, {"name": "fw"}, "agent-1")
    assert decorated["labels"]["labels"] == [
        {"key": "k", "value": "v"},
        {"key": "a", "value": "agent-1"},
        {"key": "b", "value": "agent-1"},
    ]
    assert second.seen == [[{"key": "k", "value": "v"}, {"key": "a", "value": "agent-1"}]]
    assert TASK["labels"]["labels"] == [{"key": "k", "value": "v"}]
    assert {k: v for k, v in decorated.items() if k != "labels"} == {
        k: v for k, v in TASK.items() if k != "labels"
    }


def test_a_raising_hook_is_logged_with_its_name_and_skipped(caplog):
    after = Appender("after")
    chain = HookChain([Raising(), after])
    with caplog.at_level(logging.WARNING, logger="pymesos_modules.kinds.hook"):
        decorated = chain.decorate_master_task(TASK, {}, "a1")
        env = chain.decorate_environment(TASK, {"HOME": "/h"})
    assert decorated["labels"]["labels"][-1] == {"key": "after", "value": "a1"}
    assert env == {"HOME": "/h"}
    messages = [r.getMessage() for r in caplog.records]
    assert "hook 'broken' master_launch_task_label_decorator() failed, skipped: boom" in messages
    assert any("hook 'broken' agent_task_environment_decorator() failed" in m for m in messages)
    # A Python hook's traceback is kept for its author.
    assert all(r.exc_info for r in caplog.records)


def test_an_answer_of_the_wrong_shape_is_skipped(caplog):
    chain = HookChain([Malformed()])
    status = {"state": "TASK_RUNNING", "container_status": {"network_infos": []}}
    with caplog.at_level(logging.WARNING, logger="pymesos_modules.kinds.hook"):
        assert chain.decorate_master_task(TASK, {}, "a1") == TASK
        assert chain.decorate_environment(TASK, {"B": "2"}) == {"B": "2"}
        assert chain.decorate_status("fw", status) == status
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "hook 'malformed' master_launch_task_label_decorator() failed" in text
    assert "labels[0] must be an object with a string 'key'" in text
    assert "environment variable 'A'=1 is not a valid string pair" in text
    assert "container_status must be an object" in text


def test_status_decoration_replaces_labels_and_container_status_only():
    class Decorator:
        def agent_task_status_decorator(self, framework_id: str, status: dict) -> dict:
            return {"labels": [{"key": "fw", "value": framework_id}], "state": "TASK_LOST"}

    class Networker:
        def agent_task_status_decorator(self, framework_id: str, status: dict) -> dict:
            # sees the labels the previous hook set
            assert status["labels"] == {"labels": [{"key": "fw", "value": framework_id}]}
            return {"container_status": {"network_infos": [{"ip_addresses": []}]}}

    status = {"state": "TASK_RUNNING", "labels": {"labels": [{"key": "old", "value": ""}]}}
    decorated = HookChain([Decorator(), Networker()]).decorate_status("f1", status)
    assert decorated == {
        "state": "TASK_RUNNING",  # fields other than labels and container_status never change
        "labels": {"labels": [{"key": "fw", "value": "f1"}]},
        "container_status": {"network_infos": [{"ip_addresses": []}]},
    }


def test_a_failing_native_hook_is_named_and_skipped(manager, tmp_path, caplog):
    discovery = resolve(
        manager, "service_discovery", "hook", "--hooks", {"path": str(tmp_path / "h")}
    )
    example = resolve(manager, "example_hook", "hook", "--hooks", {"tag": "x"})
    chain = HookChain([discovery, example])
    assert chain.implements("agent_task_status_decorator")
    assert not HookChain([discovery]).implements("agent_resources_decorator")
    with caplog.at_level(logging.WARNING, logger="pymesos_modules.kinds.hook"):
        # no task_id: the service-discovery hook fails, the example hook still decorates
        decorated = chain.decorate_status("fw", {"state": "TASK_RUNNING"})
    assert decorated["labels"] == {
        "labels": [{"key": "pmm.hook/status", "value": "x:TASK_RUNNING"}]
    }
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "hook 'org_pymesos_ServiceDiscovery' agent_task_status_decorator() failed, skipped:"
    )
    assert "document has no task_id" in record.getMessage()
    assert not record.exc_info  # a native failure carries its message, not a Python traceback
    discovery.close()
    example.close()


def test_chain_refuses_unknown_methods_and_mismatched_names():
    with pytest.raises(ValueError, match="unknown hook method 'agent_decorator'"):
        HookChain([]).run("agent_decorator", lambda v: (v,), None)
    with pytest.raises(ValueError, match="1 hooks but 2 names"):
        HookChain([Silent()], ["a", "b"])
    assert HookChain([Silent()], ["mine"]).names == ["mine"]
    assert HookChain([Silent()]).names == ["Silent"]
