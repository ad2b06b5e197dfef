"""Real API replicas: separate uvicorn processes on their own ports, sharing the test database and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from handoffs.config import Settings
from tests.support.polling import stop_started, wait_started
from tests.support.ports import listening_socket, port_of

ROOT = Path(__file__).resolve().parents[2]


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`handoffs <args>` as its own process, pointed at the test database and Redis."""
    return subprocess.run(
        [sys.executable, "-m", "handoffs.cli", *args],
        cwd=ROOT,
        env=replica_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def replica_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DATABASE_URL=settings.database_url or "",
        REDIS_URL=settings.redis_url or "",
        REDIS_SENTINELS=settings.redis_sentinels,
        REDIS_SENTINEL_MASTER=settings.redis_sentinel_master,
        SECRET_KEY=settings.secret_key,
        HANDOFFS_DATA_DIR=str(settings.data_dir),
        OUTBOUND_ALLOWED_HOSTS=settings.outbound_allowed_hosts,
        # Enough for the 50-way claim race over two replicas, small enough that
        # parallel workers stay within a stock PostgreSQL's 100 connections.
        DB_POOL_SIZE="5",
        DB_MAX_OVERFLOW="25",
        DB_PGBOUNCER="1" if settings.db_pgbouncer else "0",
        AUTH_USER_CACHE_SECONDS=str(settings.auth_user_cache_seconds),
    )
    env.update(extra)  # callers may override any of the above
    return env


@dataclass
class Replica:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no draining, as in a crash."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_started(self.proc)


def log_dir() -> Path:
    path = ROOT / ".data" / "test" / "logs" / f"{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def spawn_replica(settings: Settings, **env: str) -> Replica:
    """Start one API process (not yet ready: see ``wait_ready``)."""
    # Bound here and handed over (uvicorn --fd): a port picked now and bound by the child later
    # could meanwhile go to another test worker's server.
    sock = listening_socket()
    port = port_of(sock)
    log_path = log_dir() / f"replica-{port}.log"
    cmd = [sys.executable, "-m", "uvicorn", "handoffs.app:create_app", "--factory",
           "--fd", str(sock.fileno()), "--log-level", "warning",
           *os.environ.get("REPLICA_UVICORN_ARGS", "").split()]  # fmt: skip
    # The child keeps its own copies of the socket and the log file; the parent's are closed.
    with sock, log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=replica_env(settings, **env), stdout=log, stderr=log, pass_fds=(sock.fileno(),)
        )
    return Replica(f"http://127.0.0.1:{port}", proc, log_path)


def answers_ready(url: str, timeout: float = 1) -> bool:
    """Whether the server at ``url`` answers ``/health/ready`` with 200 now."""
    try:
        return httpx.get(f"{url}/health/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(replica: Replica, timeout: float = 30.0) -> None:
    wait_started(
        replica.proc,
        lambda: answers_ready(replica.url),
        what=f"replica {replica.url}",
        log=lambda: replica.log_path.read_text(errors="replace"),
        seconds=timeout,
    )


def wait_served(url: str, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 180) -> bool:
    """Wait until the process that writes ``log`` serves ``url`` (``/health/ready`` answers 200).

    False when it exited because its port was taken meanwhile (the caller tries another port);
    any other exit, or no answer within ``timeout``, fails the test with the end of the log.
    A port is only trusted as ours once uvicorn says it runs there: a neighbour's server
    could answer on a port we lost.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        said = log.read_text(errors="replace")
        if proc.poll() is not None:
            if "address already in use" in said:
                return False
            raise AssertionError(f"{what} exited with {proc.returncode}:\n{said[-3000:]}")
        if f"Uvicorn running on {url}" in said and answers_ready(url, timeout=2):
            return True
        time.sleep(0.2)
    raise AssertionError(f"{what} did not become ready:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def run_replica_processes(settings: Settings, count: int = 2, **env: str) -> Iterator[list[Replica]]:
    """Start ``count`` API processes (in parallel); yield them once all are ready; stop them on exit."""
    replicas = [spawn_replica(settings, **env) for _ in range(count)]
    try:
        for replica in replicas:
            wait_ready(replica)
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


@contextmanager
def run_replicas(settings: Settings, count: int = 2, **env: str) -> Iterator[list[str]]:
    """Start ``count`` API processes; yield their base URLs; stop them on exit."""
    with run_replica_processes(settings, count, **env) as replicas:
        yield [r.url for r in replicas]


@dataclass
class Served:
    """A `handoffs serve` process: its base URL, process and log file."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_serve(settings: Settings, *args: str, **env: str) -> Iterator[Served]:
    """`handoffs serve` as an operator starts it, on a port number; SIGTERM (then SIGKILL) on exit.

    A free port can go to another test worker before serve binds it: three ports are tried.
    """
    from handoffs.embedded import free_port

    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = log_dir() / f"serve-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "handoffs.cli", "serve", "--port", str(port), *args],
                cwd=ROOT, env=replica_env(settings, **env), stdout=log, stderr=log,
            )  # fmt: skip
        try:
            if not wait_served(url, proc, log_path, "handoffs serve", timeout=60):
                continue  # the port went to someone else before serve bound it: another one
            yield Served(url, proc, log_path)
            return
        finally:
            if proc.poll() is None:
                stop_started(proc, seconds=30)
    pytest.fail("three free ports in a row were taken before handoffs serve could bind them")
