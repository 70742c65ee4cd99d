"""Python modules implementing the estimator, QoS controller, hook and anonymous Protocols are
loaded, checked and created by the ModuleManager exactly as native ones."""

from __future__ import annotations

import json

import pytest
from support import kind_modules

from pymesos_modules.config import parse_config
from pymesos_modules.errors import ModuleError
from pymesos_modules.kinds.anonymous import AnonymousModule, create_anonymous_modules
from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.kinds.hook import HookChain
from pymesos_modules.kinds.qos_controller import QoSController, QoSCorrection
from pymesos_modules.kinds.resource_estimator import AgentUsage, ExecutorUsage, ResourceEstimator
from pymesos_modules.manager import ModuleManager


def python_config(*entries: tuple[str, str, dict[str, str]]):
    """--modules for Python modules: (factory in support.kind_modules, module name, params)."""
    libraries = [
        {
            "python": f"support.kind_modules:{factory}",
            "modules": [
                {"name": name, "parameters": [{"key": k, "value": v} for k, v in p.items()]}
            ],
        }
        for factory, name, p in entries
    ]
    return parse_config(json.dumps({"libraries": libraries}))


USAGE = AgentUsage(
    {"cpus": 4.0, "mem": 1024.0},
    [
        ExecutorUsage("c1", "t1", "fw", {"cpus": 1.0}, True, {}),
        ExecutorUsage("c2", "t2", "fw", {"cpus": 1.0}, False, {}),
    ],
)


def test_python_estimator_and_controller_resolve_by_their_module_names(manager):
    manager.load(
        python_config(
            ("ShareEstimator", "py_share", {"fraction": "0.25"}),
            ("KillRevocable", "py_kill", {}),
        )
    )
    estimator = resolve(manager, "py_share", "resource_estimator", "--resource_estimator")
    controller = resolve(manager, "py_kill", "qos_controller", "--qos_controller")
    assert isinstance(estimator, ResourceEstimator)
    assert isinstance(controller, QoSController)
    assert estimator.oversubscribable(USAGE) == {"cpus": 1.0, "mem": 256.0}
    assert controller.corrections(USAGE) == [QoSCorrection("c1", "t1", "fw", "python says so")]


def test_a_python_module_missing_its_kinds_method_is_refused(manager):
    manager.load(python_config(("NoEstimate", "py_none", {})))
    with pytest.raises(ModuleError, match=r"py_none.*does not implement the resource_estimator"):
        manager.create("py_none", kind="resource_estimator")


def test_python_and_native_hooks_chain_in_flag_order(manager):
    manager.load(python_config(("TagHook", "py_tag", {"tag": "p"})))
    hooks = [
        resolve(manager, name, "hook", "--hooks", params)
        for name, params in (("py_tag", None), ("example_hook", {"tag": "n"}))
    ]
    assert hooks[0].name == "py_tag"  # the manager passes the module name to the factory
    chain = HookChain(hooks)
    task = {"name": "web", "task_id": {"value": "t"}, "labels": {"labels": []}}
    decorated = chain.decorate_agent_task(task, {}, {"hostname": "h"})
    assert decorated["labels"]["labels"] == [
        {"key": "tag", "value": "p"},
        {"key": "pmm.hook/agent", "value": "n@h"},
    ]
    assert task["labels"]["labels"] == []  # the input is left alone
    env = chain.decorate_environment(task, {"TAGS": "x"})
    assert env == {"TAGS": "xp", "PMM_HOOK_TAG": "n", "PMM_HOOK_TASK_NAME": "web"}
    agent = {"hostname": "h", "resources": [], "attributes": []}
    assert [r["name"] for r in chain.decorate_resources(agent)] == ["p", "hook_units"]
    assert [a["name"] for a in chain.decorate_attributes(agent)] == ["p", "hook"]
    chain.agent_lost("a1", "h")
    assert hooks[0].lost == [("a1", "h")]
    for hook in hooks:
        getattr(hook, "close", lambda: None)()


def test_python_anonymous_modules_are_created_and_closed_together():
    manager = ModuleManager()
    manager.load(python_config(("Heartbeat", "py_heart_a", {}), ("Heartbeat", "py_heart_b", {})))
    before = kind_modules.Heartbeat.alive
    created = create_anonymous_modules(manager)
    assert [name for name, _ in created] == ["py_heart_a", "py_heart_b"]
    assert all(isinstance(instance, AnonymousModule) for _, instance in created)
    assert kind_modules.Heartbeat.alive == before + 2
    for _, instance in created:
        instance.close()
    assert kind_modules.Heartbeat.alive == before
