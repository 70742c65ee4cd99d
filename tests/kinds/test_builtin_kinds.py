"""The bundled native estimator, QoS controller and hooks, through the module manager."""

from __future__ import annotations

import json

import pytest

from pymesos_modules.abi import NativeCallError
from pymesos_modules.errors import ModuleCreateError
from pymesos_modules.kinds.builtin import resolve
from pymesos_modules.kinds.hook import HOOK_METHODS, NativeHook
from pymesos_modules.kinds.qos_controller import NativeQoSController, QoSController, QoSCorrection
from pymesos_modules.kinds.resource_estimator import (
    AgentUsage,
    ExecutorUsage,
    NativeResourceEstimator,
    ResourceEstimator,
)
from pymesos_modules.manager import ModuleManager
from pymesos_modules.metrics import MetricsRegistry


def executor(task: str, revocable: bool, **resources: float) -> ExecutorUsage:
    return ExecutorUsage(f"c-{task}", task, "fw", resources, revocable, {})


USAGE = AgentUsage(
    {"cpus": 8.0, "mem": 4096.0},
    [executor("batch", True, cpus=0.5, mem=100.0), executor("web", False, cpus=2.0, mem=1024.0)],
)


def test_noop_modules_report_nothing_and_take_no_parameters(manager):
    estimator = resolve(manager, "noop", "resource_estimator", "--resource_estimator")
    controller = resolve(manager, "noop", "qos_controller", "--qos_controller")
    assert isinstance(estimator, ResourceEstimator) and isinstance(controller, QoSController)
    assert (estimator.name, controller.name) == (
        "org_pymesos_NoopEstimator",
        "org_pymesos_NoopQoSController",
    )
    assert estimator.oversubscribable(USAGE) == {}
    assert controller.corrections(USAGE) == []
    with pytest.raises(
        ModuleCreateError, match=r"org_pymesos_NoopEstimator.*unknown parameter 'x'"
    ):
        resolve(manager, "noop", "resource_estimator", "test", {"x": "1"})
    estimator.close()
    controller.close()


def test_fixed_estimator_offers_its_amount_minus_revocable_use(manager):
    fixed = resolve(
        manager, "fixed", "resource_estimator", "test", {"resources": " cpus(*):2 ; mem:512;"}
    )
    assert isinstance(fixed, ResourceEstimator)
    assert fixed.oversubscribable(AgentUsage({"cpus": 8.0}, [])) == {"cpus": 2.0, "mem": 512.0}
    assert fixed.oversubscribable(USAGE) == {"cpus": 1.5, "mem": 412.0}
    heavy = AgentUsage({}, [executor("big", True, cpus=5.0)])
    assert fixed.oversubscribable(heavy) == {"cpus": 0.0, "mem": 512.0}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "missing parameter 'resources'"),
        ({"resources": "cpus"}, "'cpus' is not name:amount"),
        ({"resources": "cpus:two"}, "'cpus:two' needs a scalar amount"),
        ({"resources": "ports:[1-2]"}, "ranges and sets cannot be oversubscribed"),
        ({"resources": "cpus:1;cpus:2"}, "'cpus' is given twice"),
        ({"resources": ";"}, "parameter 'resources' names no resource"),
        ({"resources": "cpus(prod):1"}, "cannot be reserved to a role"),
        (
            {"resources": "cpus:1", "resource": "x"},
            r"unknown parameter 'resource' \(this module "
            r"takes: resources\)",
        ),
    ],
)
def test_fixed_estimator_names_a_bad_parameter(manager, parameters, message):
    with pytest.raises(ModuleCreateError, match=message) as error:
        resolve(manager, "fixed", "resource_estimator", "test", parameters)
    assert "org_pymesos_FixedEstimator" in str(error.value)


def test_load_controller_preempts_revocable_tasks_above_a_threshold(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 0.40 0.30 1/100 4242\n")
    registry = MetricsRegistry()
    manager = ModuleManager(registry=registry)
    params = {"load_threshold_5min": "2", "load_threshold_15min": "3", "loadavg_path": str(loadavg)}
    load = resolve(manager, "load", "qos_controller", "test", params)
    assert isinstance(load, QoSController)
    assert load.corrections(USAGE) == []
    loadavg.write_text("9.00 2.50 1.00 1/100 4242\n")
    (correction,) = load.corrections(USAGE)
    assert correction == QoSCorrection(
        "c-batch", "batch", "fw", "5-minute load average 2.50 is above 2.00"
    )
    loadavg.write_text("9.00 1.00 3.50 1/100 4242\n")
    assert [c.message for c in load.corrections(USAGE)] == [
        "15-minute load average 3.50 is above 3.00"
    ]
    loadavg.unlink()
    with pytest.raises(NativeCallError, match=r"corrections.*cannot read the load average"):
        load.corrections(USAGE)
    assert registry.snapshot()["qos/load/corrections"] == 2.0
    load.close()
    manager.unload_all()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "needs parameter 'load_threshold_5min' or 'load_threshold_15min'"),
        ({"load_threshold_5min": "-1"}, "parameter 'load_threshold_5min' must be a number > 0"),
        ({"load_threshold_15min": "nan"}, "parameter 'load_threshold_15min' must be a number > 0"),
        ({"load_threshold_15min": "high"}, "parameter 'load_threshold_15min' must be a number"),
        ({"load_threshold_5m": "1"}, "unknown parameter 'load_threshold_5m'"),
        ({"load_threshold_5min": "1", "loadavg_path": ""}, "parameter 'loadavg_path' is empty"),
        (
            {"load_threshold_5min": "1", "loadavg_path": "/nonexistent"},
            "cannot read the load average from '/nonexistent' \\(parameter 'loadavg_path'\\)",
        ),
    ],
)
def test_load_controller_names_a_bad_parameter(manager, parameters, message):
    with pytest.raises(ModuleCreateError, match=message) as error:
        resolve(manager, "load", "qos_controller", "test", parameters)
    assert "org_pymesos_LoadQoSController" in str(error.value)


def test_load_controller_reads_getloadavg_without_a_path(manager):
    # A threshold no machine reaches: the call must read the real load and correct nothing.
    load = resolve(manager, "load", "qos_controller", "test", {"load_threshold_15min": "1e9"})
    assert load.corrections(USAGE) == []
    load.close()


TASK = {
    "name": "web",
    "task_id": {"value": "t1"},
    "labels": {"labels": [{"key": "team", "value": "a"}]},
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31001}]}},
    ],
}
AGENT = {
    "hostname": "node-1",
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}}],
    "attributes": [],
}


def test_example_hook_decorates_every_moment(manager):
    hook = resolve(manager, "example_hook", "hook", "--hooks", {"tag": "x"})
    assert isinstance(hook, NativeHook)
    team = {"key": "team", "value": "a"}
    assert hook.master_launch_task_label_decorator(TASK, {}, "a1") == [
        team,
        {"key": "pmm.hook/master", "value": "x@a1"},
    ]
    assert hook.master_agent_lost("a1", "node-1") is None
    assert hook.agent_run_task_label_decorator(TASK, {}, AGENT)[-1] == {
        "key": "pmm.hook/agent",
        "value": "x@node-1",
    }
    env = hook.agent_task_environment_decorator(TASK, {"HOME": "/h"})
    assert env == {"HOME": "/h", "PMM_HOOK_TAG": "x", "PMM_HOOK_TASK_NAME": "web"}
    status = hook.agent_task_status_decorator("fw", {"state": "TASK_RUNNING"})
    assert status == {"labels": [{"key": "pmm.hook/status", "value": "x:TASK_RUNNING"}]}
    assert hook.agent_resources_decorator(AGENT)[-1]["name"] == "hook_units"
    assert hook.agent_attributes_decorator(AGENT) == [
        {"name": "hook", "type": "TEXT", "text": {"value": "x"}}
    ]
    with pytest.raises(NativeCallError, match=r"agent_resources_decorator.*not a JSON object"):
        hook.instance.call_output("agent_resources_decorator", "{nope")
    with pytest.raises(NativeCallError, match=r"agent resources is not a list"):
        hook.agent_resources_decorator({"resources": {}})
    hook.close()


def test_service_discovery_file_follows_running_and_ended_tasks(manager, tmp_path):
    path = tmp_path / "hosts"
    hook = resolve(manager, "service_discovery", "hook", "--hooks", {"path": str(path)})
    # It implements only the two moments it needs: the runtimes skip it for the rest.
    present = {m for m in HOOK_METHODS if getattr(hook, m, None) is not None}
    assert present == {"agent_run_task_label_decorator", "agent_task_status_decorator"}
    assert path.read_text().splitlines()[1:] == []
    other = {**TASK, "name": "db", "task_id": {"value": "t2"}, "resources": []}
    assert hook.agent_run_task_label_decorator(TASK, {}, AGENT) is None
    assert hook.agent_run_task_label_decorator(other, {}, AGENT) is None
    hook.agent_task_status_decorator("fw", {"task_id": {"value": "t1"}, "state": "TASK_STARTING"})
    assert path.read_text().splitlines()[1:] == []
    for task in ("t1", "t2"):
        hook.agent_task_status_decorator(
            "fw", {"task_id": {"value": task}, "state": "TASK_RUNNING"}
        )
    assert path.read_text().splitlines()[1:] == ["db node-1", "web node-1:31000,31001"]
    hook.agent_task_status_decorator("fw", {"task_id": {"value": "t1"}, "state": "TASK_FINISHED"})
    assert path.read_text().splitlines()[1:] == ["db node-1"]
    hook.agent_task_status_decorator("fw", {"task_id": {"value": "t2"}, "state": "TASK_KILLED"})
    assert path.read_text().splitlines()[1:] == []
    assert not list(tmp_path.glob("hosts.tmp.*"))
    hook.close()


def test_service_discovery_keeps_one_line_per_task_whatever_its_name(manager, tmp_path):
    path = tmp_path / "hosts"
    hook = resolve(manager, "service_discovery", "hook", "--hooks", {"path": str(path)})
    odd = {**TASK, "name": "my web\napp", "task_id": {"value": "t3"}}
    hook.agent_run_task_label_decorator(odd, {}, AGENT)
    hook.agent_task_status_decorator("fw", {"task_id": {"value": "t3"}, "state": "TASK_RUNNING"})
    assert path.read_text().splitlines()[1:] == ["my_web_app node-1:31000,31001"]
    bad_ports = {
        **TASK,
        "task_id": {"value": "t4"},
        "resources": [
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 70000}]}}
        ],
    }
    with pytest.raises(NativeCallError, match=r"task 'web' has a bad ports range 1-70000"):
        hook.agent_run_task_label_decorator(bad_ports, {}, AGENT)
    # A status for a task it never saw launch changes nothing.
    hook.agent_task_status_decorator("fw", {"task_id": {"value": "t4"}, "state": "TASK_RUNNING"})
    assert path.read_text().splitlines()[1:] == ["my_web_app node-1:31000,31001"]
    hook.close()


def test_service_discovery_refuses_an_unwritable_path(manager, tmp_path):
    with pytest.raises(ModuleCreateError, match=r"cannot (write|rename).*parameter 'path'"):
        resolve(
            manager, "service_discovery", "hook", "--hooks", {"path": str(tmp_path / "no" / "x")}
        )


def test_unknown_builtin_name_lists_what_exists(manager):
    from pymesos_modules.errors import UnknownModuleError

    with pytest.raises(
        UnknownModuleError, match=r"--hooks: unknown module 'nope'.*service_discovery"
    ):
        resolve(manager, "nope", "hook", "--hooks")
    # 'noop' is a built-in of the estimator and QoS controller flags only.
    with pytest.raises(UnknownModuleError, match=r"--hooks: unknown module 'noop'"):
        resolve(manager, "noop", "hook", "--hooks")


def test_usage_document_is_the_headers_shape():
    assert json.loads(USAGE.to_json())["executors"][0] == {
        "container_id": "c-batch",
        "task_id": "batch",
        "framework_id": "fw",
        "resources": {"cpus": 0.5, "mem": 100.0},
        "revocable": True,
        "statistics": {},
    }


class Scripted:
    """Stands in for a NativeInstance whose module answers ``text``."""

    name = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    def call_output(self, call: str, *args: object) -> str:
        return self.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"cpus": -1}', "'cpus' amount -1 is not >= 0"),
        ('{"cpus": NaN}', "'cpus' amount nan is not >= 0"),
        ('{"cpus": "2"}', "bad amount for 'cpus': '2'"),
        ('{"cpus": true}', "bad amount for 'cpus': True"),
        ("[1]", "answered with a JSON list, not dict"),
    ],
)
def test_estimator_wrapper_refuses_bad_answers(text, message):
    estimator = NativeResourceEstimator(Scripted(text))  # type: ignore[arg-type]
    with pytest.raises(NativeCallError, match=r"module 'scripted': oversubscribable") as error:
        estimator.oversubscribable(USAGE)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "text",
    ['[{"task_id": "t"}]', '[{"container_id": 1, "task_id": "t", "framework_id": "f"}]', "[7]"],
)
def test_qos_wrapper_refuses_bad_corrections(text):
    controller = NativeQoSController(Scripted(text))  # type: ignore[arg-type]
    with pytest.raises(NativeCallError, match=r"correction \[0\] needs string container_id"):
        controller.corrections(USAGE)
    good = '[{"container_id": "c", "task_id": "t", "framework_id": "f"}]'
    assert NativeQoSController(Scripted(good)).corrections(USAGE) == [  # type: ignore[arg-type]
        QoSCorrection("c", "t", "f", "")
    ]
