"""What the benchmarks share: their services and seed data, the event loop, CPU accounting, run info.

A benchmark run as a script imports this as ``common`` (its folder, bench/, is
then ``sys.path[0]``, from the repo root or from inside bench/); uvicorn's API
process imports ``bench.escalate``, which imports it as ``bench.common``.
Everything from ``handoffs`` is imported where it is used, as in the scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]

#: The escalation both escalate.py and assessment.py send: a junior's notes, as typed.
ESCALATE_BODY = json.dumps(
    {
        "intent": "escalate",
        "priority": "high",
        "engineer_notes": "Tried re-creating the Outlook profile and clearing the OST cache; "
        "sync still fails after the mailbox move. Needs someone with Exchange admin access.",
    }
).encode()


async def login(base_url: str, email: str) -> str:
    """A demo user's bearer token, from the real ``POST /api/v1/auth/login``."""
    import httpx

    from handoffs.domain.accounts.service import DEMO_PASSWORD

    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post("/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
        response.raise_for_status()
        return str(response.json()["access_token"])


# -- processes the benches start: servers ready once a URL answers, workers once arq reports ------


def spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` from the repo root, its output to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def http_process(
    cmd: list[str], env: dict[str, str], log_path: Path, ready_url: str, *, what: str, seconds: float = 60
) -> Iterator[int]:
    """Run ``cmd`` (output to ``log_path``) until ``ready_url`` answers 200; yield its pid; stop it."""
    import httpx

    proc = spawn(cmd, env, log_path)
    try:
        deadline = time.monotonic() + seconds
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not become ready:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _health_key() -> str:
    from arq.constants import default_queue_name, health_check_key_suffix

    return default_queue_name + health_check_key_suffix


async def clear_health(redis: Any) -> None:
    """Remove arq's health record, so ``wait_healthy`` waits for the next worker's own."""
    await redis.delete(_health_key())


async def wait_healthy(redis: Any, is_alive: Callable[[], bool], seconds: float = 60) -> None:
    """Wait for the worker's first health-check record: written after on_startup, by its first poll."""
    deadline = time.monotonic() + seconds
    while not await redis.exists(_health_key()):
        if not is_alive():
            raise RuntimeError("the worker exited during start-up; see its log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not report healthy within {seconds}s")
        await asyncio.sleep(0.05)


async def start_worker(
    redis: Any, cmd: list[str], env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start a worker process (output to ``log_path``) and wait until arq reports it healthy."""
    await clear_health(redis)
    proc = spawn(cmd, env, log_path)
    await wait_healthy(redis, lambda: proc.poll() is None)
    return proc


async def stop_worker(proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """SIGTERM, as an orchestrator stops a worker (arq finishes its jobs), then SIGKILL."""
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(proc.wait, seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)


# -- services: PostgreSQL + Redis, a data dir, a secret -------------------------------------------


@dataclass
class Stack:
    """One run's services (``handoffs.embedded.services``), its temporary data dir and its secret key."""

    svc: Any
    data_dir: Path
    secret: str

    def settings(self) -> Any:
        """Settings for this process, built from the stack alone (not from the environment)."""
        from handoffs.config import Settings

        return Settings(
            database_url=self.svc.database_url,
            redis_url=self.svc.redis_url,
            secret_key=self.secret,
            data_dir=self.data_dir,
        )

    def env(self, *, pythonpath: bool) -> dict[str, str]:
        """This process's environment pointed at the stack, for the processes a benchmark starts.

        ``pythonpath`` puts the repo root first on PYTHONPATH, so they can import ``bench.*``.
        """
        env = {
            **os.environ,
            "DATABASE_URL": self.svc.database_url,
            "REDIS_URL": self.svc.redis_url,
            "SECRET_KEY": self.secret,
            "HANDOFFS_DATA_DIR": str(self.data_dir),
        }
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        return env

    def describe(self) -> str:
        svc = self.svc
        return (
            f"services: postgres {'embedded' if svc.postgres else 'external'}, "
            f"redis {'embedded' if svc.redis else 'external'}"
        )


@contextlib.contextmanager
def start_stack(prefix: str, keep_data: bool) -> Iterator[Stack]:
    """Embedded PostgreSQL and Redis in a fresh temp dir (unless DATABASE_URL / REDIS_URL are set).

    The data dir is removed afterwards unless ``keep_data``.
    """
    from handoffs.embedded import services

    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    secret = secrets.token_urlsafe(48)
    try:
        with services(
            data_dir, os.environ.get("DATABASE_URL") or None, os.environ.get("REDIS_URL") or None
        ) as svc:
            yield Stack(svc, data_dir, secret)
    finally:
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)


def service_pids(svc: Any) -> list[int]:
    """PIDs of the embedded PostgreSQL postmaster and redis-server (none for external services)."""
    pids = []
    if svc.postgres is not None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pidfile = svc.postgres.data_dir / "postmaster.pid"
            pids.append(int(pidfile.read_text().splitlines()[0]))
    proc = getattr(svc.redis, "_proc", None)
    if proc is not None:
        pids.append(proc.pid)
    return pids


# -- data -----------------------------------------------------------------------------------------


@dataclass
class Seeded:
    user_id: UUID
    account_id: UUID


async def seed(settings: Any, email: str) -> Seeded:
    """The demo accounts and users (``seed_demo``); returns the demo user with ``email``."""
    from sqlalchemy import select

    from handoffs.db.engine import create_engine, create_sessionmaker
    from handoffs.db.models import User
    from handoffs.db.tenancy import SYSTEM
    from handoffs.domain.accounts.service import seed_demo

    engine = create_engine(settings, scope=SYSTEM, app_role=False)  # as the tests' harness
    try:
        async with create_sessionmaker(engine)() as db:
            await seed_demo(db)
            user = await db.scalar(select(User).where(User.email == email))
            assert user is not None
            return Seeded(user_id=user.id, account_id=user.account_id)
    finally:
        await engine.dispose()


def migrate_and_seed(settings: Any, email: str) -> Seeded:
    """Migrate the database to the latest schema, then ``seed`` it."""
    from handoffs.db.engine import migrate

    migrate(settings)
    return asyncio.run(seed(settings, email))


# -- running and measuring ------------------------------------------------------------------------


def run_loop(coro: Any) -> Any:
    """The load generator on uvloop when available (as the server is), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def service_cpu(proc: Any) -> float:
    """A service's CPU seconds: its own, its reaped children's (exited backends) and its live children's.

    ``proc`` is a ``psutil.Process``; 0.0 once it is gone.
    """
    import psutil

    try:
        t = proc.cpu_times()
        total = float(t.user + t.system + t.children_user + t.children_system)
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
    except psutil.Error:
        return 0.0
    return total


def busy_seconds(t: Any) -> float:
    """CPU seconds the machine has been busy (all cores; all but idle, iowait and steal).

    ``t`` is ``psutil.cpu_times()``.
    """
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


# -- what ran where --------------------------------------------------------------------------------


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (None where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    cpu = cpu_model()
    if cpu is not None:
        info["cpu"] = cpu
    return info


def git_state() -> dict[str, Any]:
    """The commit measured, and which files under src/ differed from it (uncommitted work)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_src": git("status", "--short", "src").splitlines(),
    }


def command_line(name: str, argv: list[str] | None) -> str:
    """How the benchmark ``name`` was run, as its JSON records it."""
    return " ".join([".venv/bin/python", f"bench/{name}.py", *(argv or sys.argv[1:])])


def write_json(data: dict[str, Any], path: Path | None, name: str) -> None:
    """Write ``data`` to ``path`` (default bench/out/<name>-<local time>.json) and say where."""
    out = path or ROOT / "bench" / "out" / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str))
    print(f"\nJSON: {out}")
