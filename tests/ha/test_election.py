"""The zookeeper contender and detector against a real ZooKeeper, in Mesos' znode layout."""

from __future__ import annotations

import json
import time

import pytest
from kazoo.client import KazooClient
from support.zookeeper import ZooKeeperServer, free_port

from pymesos_modules.kinds.master_contender import (
    ELECTED,
    LOST,
    STANDBY,
    MasterContender,
    StandaloneContender,
    ZooKeeperContender,
)
from pymesos_modules.kinds.master_detector import (
    MasterDetector,
    StandaloneDetector,
    ZooKeeperDetector,
    detector_for_master,
    leader_url,
)
from pymesos_modules.zookeeper import (
    ZkUrlError,
    ZooKeeperUnreachable,
    leading_node,
    master_info,
    parse_zk_url,
)

SESSION = 4.0  # seconds; the server allows 2 ticks (0.5 s) to 60 s


def info(port: int) -> dict:
    return master_info(f"master-{port}", "127.0.0.1", port, "localhost", "0.1.0")


def wait_for(watch, known: int, want, timeout: float = 30.0):
    """Follow ``watch(known, t)`` until ``want(answer)``; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = watch(known, 1.0)
        known = answer.generation
        if want(answer) or time.monotonic() > deadline:
            return answer


def test_zk_urls_parse_as_mesos_writes_them(tmp_path):
    url = parse_zk_url("zk://10.0.0.1:2181,10.0.0.2:2181/mesos")
    assert (url.hosts, url.path, url.credentials) == ("10.0.0.1:2181,10.0.0.2:2181", "/mesos", None)
    secret = parse_zk_url("zk://jo:s3cret@zk1:2181/a/b/")
    assert secret.credentials == ("jo", "s3cret") and secret.path == "/a/b"
    assert "s3cret" not in str(secret) and str(secret) == "zk://jo:***@zk1:2181/a/b"
    holder = tmp_path / "zk"
    holder.write_text("zk://zk1:2181/mesos\n")
    assert parse_zk_url(f"file://{holder}").hosts == "zk1:2181"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("zk1:2181/mesos", "expected zk://"),
        ("zk://zk1:2181", "no znode path"),
        ("zk://zk1:2181/", "no znode path"),
        ("zk://zk1:99999/mesos", "out of range"),
        ("zk://zk 1:2181/mesos", "bad server"),
        ("zk://zk1:2181,/mesos", "bad server"),
        ("zk://jo:pw@zk1:2181/a/../b", "bad znode path"),
        ("file:///nonexistent/zk", "cannot read /nonexistent/zk"),
    ],
)
def test_a_zk_url_that_does_not_parse_is_a_clear_error(value, says):
    with pytest.raises(ZkUrlError, match="--zk") as caught:
        parse_zk_url(value)
    assert says in str(caught.value)
    assert "pw" not in str(caught.value)


def test_an_unreachable_zookeeper_is_a_clear_error_after_a_bounded_wait():
    url = parse_zk_url(f"zk://127.0.0.1:{free_port()}/mesos")
    started = time.monotonic()
    with pytest.raises(ZooKeeperUnreachable, match=r"--master_detector=zookeeper: no ZooKeeper"):
        ZooKeeperDetector(url, 1.0)
    assert time.monotonic() - started < 30  # bounded: the wait is the session timeout


def test_the_lowest_json_info_leads_and_other_children_are_ignored():
    assert leading_node(["log_replicas", "json.info_0000000010", "json.info_0000000002"]) == (
        "json.info_0000000002"
    )
    assert leading_node(["info_0000000001", "log_replicas"]) is None


def test_masterinfo_is_in_mesos_shape():
    assert info(5050) == {
        "id": "master-5050",
        "ip": 16777343,  # 127.0.0.1 as Mesos writes it (in_addr bytes, little-endian uint32)
        "port": 5050,
        "pid": "master@127.0.0.1:5050",
        "hostname": "localhost",
        "version": "0.1.0",
        "address": {"ip": "127.0.0.1", "hostname": "localhost", "port": 5050},
    }


def test_standalone_kinds():
    contender = StandaloneContender()
    assert isinstance(contender, MasterContender)
    first = contender.watch(0, 0)
    assert first.state == STANDBY
    contender.contend(info(1))
    assert contender.watch(first.generation, 0).state == ELECTED
    contender.close()
    assert contender.watch(0, 0).state == LOST
    detector = detector_for_master("127.0.0.1:5050", SESSION)
    assert isinstance(detector, StandaloneDetector) and isinstance(detector, MasterDetector)
    assert leader_url(detector.detect(0, 0).leader) == "http://127.0.0.1:5050"
    with pytest.raises(ValueError, match="--master=nope"):
        detector_for_master("nope", SESSION)


def test_three_contenders_elect_in_order_and_the_detector_follows(zookeeper, zk_url):
    url = parse_zk_url(zk_url)
    detector = ZooKeeperDetector(url, SESSION)
    assert detector.detect(0, 0).leader is None
    contenders = [ZooKeeperContender(url, SESSION) for _ in range(3)]
    try:
        for index, contender in enumerate(contenders):
            contender.contend(info(5050 + index))
        assert wait_for(contenders[0].watch, 0, lambda c: c.elected).elected
        assert [c.watch(0, 0).state for c in contenders[1:]] == [STANDBY, STANDBY]
        seen = wait_for(detector.detect, 0, lambda d: d.leader is not None)
        assert seen.leader == info(5050)

        # What Mesos' and pymesos' detectors read: json.info_ children holding the JSON.
        client = KazooClient(hosts=zookeeper.hosts)
        client.start()
        client.create(f"{url.path}/log_replicas", b"")  # ignored, as by Mesos
        children = sorted(client.get_children(url.path))
        assert children[-1] == "log_replicas"
        assert all(c.startswith("json.info_") for c in children[:-1]) and len(children) == 4
        data, stat = client.get(f"{url.path}/{children[0]}")
        assert json.loads(data) == info(5050) and stat.ephemeralOwner != 0

        contenders[0].close()  # the leader goes away: the next in line leads
        assert wait_for(contenders[1].watch, 0, lambda c: c.elected).elected
        assert contenders[2].watch(0, 0).state == STANDBY
        moved = wait_for(detector.detect, seen.generation, lambda d: d.leader != info(5050))
        assert moved.leader == info(5051)

        # A session that ends (here closed from a second client) loses the candidacy.
        expired = KazooClient(hosts=zookeeper.hosts, client_id=contenders[1]._client.client_id)
        expired.start()
        expired.stop()
        assert wait_for(contenders[1].watch, 0, lambda c: c.state == LOST).state == LOST
        assert wait_for(contenders[2].watch, 0, lambda c: c.elected).elected
        last = wait_for(detector.detect, moved.generation, lambda d: d.leader == info(5052))
        assert last.leader == info(5052)
        client.stop()
    finally:
        for contender in contenders:
            contender.close()
        detector.close()
    assert wait_for(detector.detect, 0, lambda d: True).generation > last.generation - 1


def test_pymesos_detector_finds_our_leader(zookeeper, zk_url):
    from pymesos.detector import MasterDetector as PymesosDetector  # unmodified 0.3.15

    url = parse_zk_url(zk_url)
    contender = ZooKeeperContender(url, SESSION)
    contender.contend(info(6060))
    got: list[bytes] = []

    class Agent:
        def onNewMasterDetectedMessage(self, data):  # pymesos calls it by this name
            got.append(data)

        def onNoMasterDetectedMessage(self):
            got.append(b"none")

    theirs = PymesosDetector(zk_url.removeprefix("zk://"), Agent())
    theirs.start()
    try:
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got and json.loads(got[-1])["address"] == {
            "ip": "127.0.0.1",
            "hostname": "localhost",
            "port": 6060,
        }
    finally:
        theirs.stop()
        contender.close()


def test_a_leader_stops_leading_as_soon_as_its_connection_drops(tmp_path):
    server = ZooKeeperServer(tmp_path).start()
    try:
        contender = ZooKeeperContender(parse_zk_url(server.url("/mesos")), SESSION)
        contender.contend(info(7070))
        elected = wait_for(contender.watch, 0, lambda c: c.elected)
        assert elected.elected
        server.stop()
        # kazoo reports the drop within the session timeout, before ZooKeeper could
        # have expired the session and elected another master.
        dropped = wait_for(contender.watch, elected.generation, lambda c: not c.elected)
        assert dropped.state == STANDBY
        contender.close()
    finally:
        server.stop()
