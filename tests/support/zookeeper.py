"""A real ZooKeeper server for the tests: Debian's ``zookeeper`` package on the machine's Java.

:class:`ZooKeeperServer` runs one standalone server on a free loopback port
with its own data folder, waits until it answers, and stops it (the test
fixtures in tests/ha/conftest.py do both).  ``.ci/run`` installs the package
when it is missing; without it the fixture fails saying so, never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Debian's server jar; its manifest's Class-Path names the jars it needs.
JAR = Path(os.environ.get("PMM_ZOOKEEPER_JAR", "/usr/share/java/zookeeper.jar"))
CONF = Path("/etc/zookeeper/conf")  # Debian's log4j configuration


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ZooKeeperServer:
    """One standalone ZooKeeper server on 127.0.0.1 (see module docstring)."""

    def __init__(self, folder: Path, tick_ms: int = 250) -> None:
        self.folder = folder
        self.port = free_port()
        self.tick_ms = tick_ms
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        """kazoo's connection string."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """A ``zk://`` URL of ``path`` on this server."""
        return f"zk://{self.hosts}{path}"

    def start(self, timeout: float = 60.0) -> ZooKeeperServer:
        """Start and wait until the server answers ``srvr``."""
        java = shutil.which("java")
        if not JAR.exists() or java is None:
            raise RuntimeError(
                f"ZooKeeper is not installed ({JAR} or java missing): "
                "apt-get install -y zookeeper (.ci/run does this)"
            )
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "zoo.cfg"
        # Sessions between 2 ticks and 60 s, so tests can ask for short ones.
        config.write_text(
            f"tickTime={self.tick_ms}\n"
            f"dataDir={data}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "maxSessionTimeout=60000\n"
            "4lw.commands.whitelist=srvr,ruok\n"
        )
        log = (self.folder / "zookeeper.log").open("ab")
        self.process = subprocess.Popen(
            [
                java,
                "-Xmx128m",
                f"-Dzookeeper.log.dir={self.folder}",
                "-cp",
                f"{CONF}:{JAR}",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ZooKeeper exited with {self.process.returncode}; see {self.folder}"
                )
            if self.answers():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ZooKeeper did not answer on {self.hosts} within {timeout} s")

    def answers(self) -> bool:
        """True when the server answers the ``srvr`` four-letter word."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"srvr")
                return b"Zookeeper version" in sock.recv(4096)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
