"""The README's first command, `make dev`, run as a newcomer runs it: a fresh copy, no settings.

It must serve (``/health/ready``, the demo login), tell a quiet story on the
console, and on Ctrl-C stop everything it started. A green suite once proved
nothing about `make dev`: the tests used absolute data folders, the README's
default is relative, and `make dev` failed on every fresh clone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from handoffs.embedded import free_port
from tests.support.replicas import ROOT, wait_served

pytestmark = pytest.mark.slow

#: The virtual environment this suite runs in; the copy's `make dev` uses it instead of
#: installing its own (`.ci/run` and ../shared/bin/fresh-clone-check cover the install).
VENV = Path(sys.executable).parent.parent
#: What a person's shell would not have set on a fresh machine.
UNSET = ("DATABASE_URL", "REDIS_URL", "HANDOFFS_DATA_DIR", "SECRET_KEY", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def fresh_copy(target: Path) -> Path:
    """The repository's files as a clone would have them (tracked, plus new files not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)  # keeps mtimes: make sees the venv as up to date
    return target


def processes_of(folder: Path) -> list[psutil.Process]:
    """Every process started from, or working in, ``folder`` (redis-server rewrites its command line)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(folder) in cmdline or str(proc.info["cwd"] or "").startswith(str(folder)):
            found.append(proc)
    return found


@pytest.fixture
def copy(tmp_path: Path) -> Iterator[Path]:
    folder = fresh_copy(tmp_path / "handoffs")
    yield folder
    for proc in processes_of(folder):  # only after a failure: the test itself leaves none
        proc.kill()


def start_make_dev(copy: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`make dev PORT=<free>` in ``copy``, ready; another port if the first was taken before it bound."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(copy / "src")  # the copy's code, not the checkout's editable install
    for _ in range(3):
        port = free_port()  # make dev takes a port number, as a person gives it
        url = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            # `-o`: the venv's install stamp counts as up to date, so make does not reinstall it.
            make = subprocess.Popen(
                ["make", "-o", f"{VENV}/.installed", "dev", f"VENV={VENV}", f"PORT={port}"],
                cwd=copy, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            if wait_served(url, make, log, "make dev"):
                return make, url
        except BaseException:
            os.killpg(make.pid, signal.SIGINT)
            make.wait(timeout=60)
            raise
        make.wait(timeout=60)
    pytest.fail("three free ports in a row were taken before make dev could bind them")


def test_make_dev_on_a_fresh_copy_serves_the_demo_and_ctrl_c_stops_everything(copy: Path) -> None:
    log = copy.parent / "make-dev.log"
    make, url = start_make_dev(copy, log)
    try:
        login = httpx.post(f"{url}/api/v1/auth/login", json={"email": "jane@acme.test", "password": "demo"})
        assert login.status_code == 200, login.text
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        # The default data folder, relative to where make ran.
        assert (copy / ".data" / "postgres" / "PG_VERSION").exists()
        assert (copy / ".data" / "redis" / "redis.log").exists()
        started = processes_of(copy)
        commands = [" ".join(p.cmdline()) for p in started]
        assert any("pginstall/bin/postgres" in c for c in commands), commands
        assert any("redis-server" in c for c in commands), commands
    finally:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        make.wait(timeout=60)
    _, left = psutil.wait_procs(started, timeout=30)
    assert not left, f"still running after Ctrl-C: {[' '.join(p.cmdline()) for p in left]}"

    console = log.read_text()
    assert f"handoffs is running at {url}" in console
    assert '"POST /api/v1/auth/login HTTP/1.1" 200' in console
    assert "Application shutdown complete" in console
    # A story of requests: no tracebacks, nothing that merely polled or repeated the banner.
    for noise in ("Traceback", "alembic.runtime.plugins", "XDG_RUNTIME_DIR", "→ cron:sweep_outbox",
                  "recording health", "ANTHROPIC_API_KEY is not set"):  # fmt: skip
        assert noise not in console, f"{noise!r} on the dev console:\n{console}"
