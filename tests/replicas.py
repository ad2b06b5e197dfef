"""Real API replicas: separate uvicorn processes on their own ports, sharing the test database and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from handoffs.config import Settings
from handoffs.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]


def replica_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DATABASE_URL=settings.database_url or "",
        REDIS_URL=settings.redis_url or "",
        SECRET_KEY=settings.secret_key,
        HANDOFFS_DATA_DIR=str(settings.data_dir),
        DB_POOL_SIZE="20",
        **extra,
    )
    return env


@contextmanager
def run_replicas(settings: Settings, count: int = 2, timeout: float = 30.0) -> Iterator[list[str]]:
    """Start ``count`` API processes; yield their base URLs; stop them on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    log_dir = (
        ROOT / ".data" / "test" / "logs" / f"{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}-{os.getpid()}"
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for index in range(count):
            port = free_port()
            log = (log_dir / f"replica-{index}-{port}.log").open("wb")
            cmd = [sys.executable, "-m", "uvicorn", "handoffs.app:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *os.environ.get("REPLICA_UVICORN_ARGS", "").split()]  # fmt: skip
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=replica_env(settings), stdout=log, stderr=log))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + timeout
        for url, proc in zip(urls, procs, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"replica {url} exited with {proc.returncode}; see {log_dir}")
                try:
                    if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica {url} did not become ready; see {log_dir}")
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
