"""Native master_contender and master_detector modules through their wrappers, and inspect."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from support.modules import config_for

from pymesos_modules.abi import NativeCallError
from pymesos_modules.kinds.master_contender import (
    ELECTED,
    STANDBY,
    MasterContender,
    NativeMasterContender,
)
from pymesos_modules.kinds.master_detector import MasterDetector, NativeMasterDetector
from pymesos_modules.zookeeper import master_info

LEADER = master_info("m1", "127.0.0.1", 5050, "localhost", "0.1.0")


def test_a_native_contender_is_elected_and_watch_waits_in_the_module(zoo, manager):
    manager.load(config_for((zoo["election"], ["zoo_Contender", "zoo_Detector"])))
    contender = manager.create("zoo_Contender", kind="master_contender")
    assert isinstance(contender, NativeMasterContender) and isinstance(contender, MasterContender)
    first = contender.watch(0, 5.0)  # a generation the host never saw: answered at once
    assert (first.generation, first.state) == (1, STANDBY)
    started = time.monotonic()
    same = contender.watch(first.generation, 0.2)  # nothing changes: the module waits it out
    assert same == first and time.monotonic() - started >= 0.15
    contender.contend(LEADER)
    elected = contender.watch(first.generation, 5.0)
    assert (elected.generation, elected.state) == (2, ELECTED) and elected.elected
    contender.close()  # withdraws first, as the header promises
    with pytest.raises(NativeCallError, match="already destroyed"):
        contender.watch(0, 0)


def test_a_native_contender_answering_an_unknown_state_fails_the_call(zoo, manager):
    manager.load(config_for((zoo["election"], ["zoo_Contender"])))
    contender = manager.create("zoo_Contender", parameters={"bad_state": "1"})
    with pytest.raises(NativeCallError, match=r"watch\(\).*unknown state 7"):
        contender.watch(0, 0)
    contender.withdraw()
    contender.close()


def test_a_native_detector_reports_its_leader_and_bad_answers_fail(zoo, manager):
    manager.load(config_for((zoo["election"], ["zoo_Detector"])))
    detector = manager.create(
        "zoo_Detector", kind="master_detector", parameters={"leader": json.dumps(LEADER)}
    )
    assert isinstance(detector, NativeMasterDetector) and isinstance(detector, MasterDetector)
    seen = detector.detect(0, 5.0)
    assert (seen.generation, seen.leader) == (1, LEADER)
    detector.close()
    nobody = manager.create("zoo_Detector")
    assert nobody.detect(0, 0).leader is None
    nobody.close()
    for bad, says in [("[1]", "a JSON list"), ('{"id": "x"}', "no 'address'")]:
        broken = manager.create("zoo_Detector", parameters={"leader": bad})
        with pytest.raises(NativeCallError, match=says):
            broken.detect(0, 0)
        broken.close()


def test_inspect_lists_the_election_kinds(zoo):
    inspected = subprocess.run(
        [sys.executable, "-P", "-m", "pymesos_modules", "inspect", str(zoo["election"]), "--json"],
        capture_output=True,
        text=True,
    )
    assert inspected.returncode == 0, inspected.stderr
    kinds = {m["name"]: m["kind"] for m in json.loads(inspected.stdout)["modules"]}
    assert kinds == {"zoo_Contender": "master_contender", "zoo_Detector": "master_detector"}
