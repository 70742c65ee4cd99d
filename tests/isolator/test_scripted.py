"""Documents from a native isolator written in C, good and broken, through the kind's wrapper.

The module (scripted/scripted.c) answers prepare() and watch() with its
parameters verbatim, so every shape of answer goes through real native calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.native_build import cmake_build

from pymesos_modules.abi import NativeCallError
from pymesos_modules.config import parse_config
from pymesos_modules.kinds.isolator import (
    ContainerConfig,
    Isolator,
    LaunchInfo,
    Limitation,
    NativeIsolator,
    RLimit,
)
from pymesos_modules.manager import ModuleManager

NAME = "test_ScriptedIsolator"
CONFIG = ContainerConfig("c1", "t1", "f1", "/tmp", None, {"cpus": 1.0}, {"name": "t1"})


@pytest.fixture(scope="session")
def scripted_library(tmp_path_factory) -> Path:
    """libscripted_isolator.so, built once per run through find_package(PyMesosModules)."""
    build = cmake_build(
        Path(__file__).parent / "scripted", tmp_path_factory.mktemp("scripted") / "build"
    )
    return build / "libscripted_isolator.so"


def scripted(manager: ModuleManager, library: Path, **parameters: str) -> NativeIsolator:
    config = {"libraries": [{"file": str(library), "modules": [NAME]}]}
    if not any(m.name == NAME for m in manager.modules()):
        manager.load(parse_config(json.dumps(config)))
    return manager.create(NAME, kind="isolator", parameters=parameters)


def test_a_c_isolator_answers_through_the_wrapper(manager, scripted_library):
    iso = scripted(
        manager,
        scripted_library,
        launch_info=json.dumps(
            {
                "environment": {"GREETING": "hello"},
                "rlimits": [{"type": "RLMT_NOFILE", "soft": 64, "hard": 64}],
                "working_directory": "work",
            }
        ),
        limitation=json.dumps(
            {
                "reason": "REASON_CONTAINER_LIMITATION_DISK",
                "message": "too big",
                "resources": {"disk": 5},
            }
        ),
    )
    assert isinstance(iso, NativeIsolator) and isinstance(iso, Isolator)
    assert iso.prepare(CONFIG) == LaunchInfo(
        {"GREETING": "hello"}, [RLimit("RLMT_NOFILE", 64, 64)], "work"
    )
    iso.isolate("c1", 12345)
    iso.update("c1", {"cpus": 2.0})
    assert iso.usage("c1") == {"processes": 1.0}  # the NaN fields it left alone are dropped
    assert iso.watch("c1", None) == Limitation(
        "REASON_CONTAINER_LIMITATION_DISK", "too big", {"disk": 5.0}
    )
    iso.cleanup("c1")
    with pytest.raises(NativeCallError, match=rf"{NAME}.*cleanup.*unknown container 'c1'"):
        iso.cleanup("c1")
    # Its table ends where ABI 1.0's did: the appended recover() is simply absent.
    assert iso.recover(["c1"]) is False


def test_writing_nothing_means_no_launch_info_and_no_limitation(manager, scripted_library):
    iso = scripted(manager, scripted_library)
    assert iso.prepare(CONFIG) is None
    assert iso.watch("c1", 0) is None


@pytest.mark.parametrize(
    ("launch_info", "message"),
    [
        ("{not json", "answered with invalid JSON"),
        ("[1, 2]", "answered with a JSON list, not dict"),
        ('{"environment": {"A": 1}}', "bad launch info: 'environment' must map names to strings"),
        ('{"rlimits": [{"type": "RLMT_BOGUS"}]}', "unknown rlimit type 'RLMT_BOGUS'"),
        ('{"rlimits": [{"soft": 1}]}', "bad launch info: 'type'"),
        ('{"rlimits": [{"type": "RLMT_AS", "soft": 2, "hard": 1}]}', "soft 2 above hard 1"),
        ('{"working_directory": 7}', "'working_directory' must be a string"),
    ],
)
def test_a_bad_launch_info_document_names_module_and_call(
    manager, scripted_library, launch_info, message
):
    iso = scripted(manager, scripted_library, launch_info=launch_info)
    with pytest.raises(NativeCallError, match=rf"{NAME}.*prepare.*{message}"):
        iso.prepare(CONFIG)


@pytest.mark.parametrize(
    ("limitation", "message"),
    [
        ("{", "answered with invalid JSON"),
        ('"over"', "answered with a JSON str, not dict"),
        ('{"message": "m"}', "bad limitation: 'reason'"),
        ('{"reason": "R"}', "bad limitation: 'message'"),
        ('{"reason": "R", "message": "m", "resources": {"mem": "lots"}}', "bad limitation"),
        ('{"reason": "R", "message": "m", "resources": [1]}', "bad limitation"),
    ],
)
def test_a_bad_limitation_document_names_module_and_call(
    manager, scripted_library, limitation, message
):
    iso = scripted(manager, scripted_library, limitation=limitation)
    iso.prepare(CONFIG)
    with pytest.raises(NativeCallError, match=rf"{NAME}.*watch.*{message}"):
        iso.watch("c1", None)
    iso.cleanup("c1")  # the container is still known: a bad answer changed nothing
