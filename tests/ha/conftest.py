"""Fixtures of the high-availability tests: a real ZooKeeper server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from support.zookeeper import ZooKeeperServer

_paths = itertools.count()


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """One ZooKeeper server for the session (each test takes its own path: ``zk_url``)."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper")).start()
    yield server
    server.stop()


@pytest.fixture
def zk_url(zookeeper: ZooKeeperServer, request: pytest.FixtureRequest) -> str:
    """A fresh ``zk://`` URL on the session's server, one znode path per test."""
    return zookeeper.url(f"/pmm/{request.node.name.replace('[', '_').rstrip(']')}-{next(_paths)}")
