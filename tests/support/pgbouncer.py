"""A PgBouncer of a test's own: Debian's ``pgbouncer`` in transaction pooling mode, in front of
the suite's PostgreSQL.

It listens on a unix socket in a folder of its own, so no port is raced for with other test
workers. Each database alias names its own pool size: ``pool_size=1`` makes every client share
one server connection, where anything a client leaves on it meets the next client.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from tests.support.polling import stop_started, wait_started

#: Debian installs it in /usr/sbin, which a non-root PATH may lack.
PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
#: Names the socket file (``.s.PGSQL.6432``) in the bouncer's own folder; nothing listens on TCP.
PORT = 6432


@dataclass(frozen=True)
class Bouncer:
    folder: Path
    user: str
    proc: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        return self.folder / "pgbouncer.log"

    def url(self, alias: str) -> str:
        """A plain ``postgresql://`` URL of one of its database aliases (``DATABASE_URL``'s form)."""
        return f"postgresql://{self.user}@/{alias}?host={self.folder}&port={PORT}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def upstream_of(url: str) -> dict[str, str]:
    """``[databases]`` connection options reaching the server of a ``postgresql://`` URL."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    options = {
        "host": query.get("host") or parts.hostname or "127.0.0.1",
        "port": str(query.get("port") or parts.port or 5432),
        "user": parts.username or "postgres",
    }
    if parts.password:
        options["password"] = parts.password
    return options


def _run_as(upstream_host: str) -> str | None:
    """PgBouncer refuses to run as root: then as the owner of the server's socket folder (who
    can reach it), or as nobody for a server on TCP."""
    if os.geteuid() != 0:
        return None
    if upstream_host.startswith("/"):
        owner = pwd.getpwuid(Path(upstream_host).stat().st_uid).pw_name
        if owner != "root":
            return owner
    return "nobody"


@contextmanager
def run_pgbouncer(upstream_url: str, pools: dict[str, tuple[str, int]]) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of ``upstream_url``'s server, for the block.

    ``pools``: alias -> (database, pool size). Trust auth on its socket, as the suite's
    servers have on theirs.
    """
    if PGBOUNCER is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    upstream = upstream_of(upstream_url)
    # Short: a unix socket's path has room for 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="pgb-", dir="/tmp"))
    server = " ".join(f"{key}={value}" for key, value in upstream.items())
    databases = "\n".join(
        f"{alias} = {server} dbname={database} pool_size={size}" for alias, (database, size) in pools.items()
    )
    (folder / "userlist.txt").write_text(f'"{upstream["user"]}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{databases}

[pgbouncer]
pool_mode = transaction
listen_addr =
listen_port = {PORT}
unix_socket_dir = {folder}
auth_type = trust
auth_file = {folder}/userlist.txt
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,options
"""
    )
    run_as = _run_as(upstream["host"])
    if run_as is not None:
        for path in (folder, *folder.iterdir()):
            shutil.chown(path, user=run_as)
    cmd = [PGBOUNCER, *(["-u", run_as] if run_as else []), str(folder / "pgbouncer.ini")]
    with (folder / "pgbouncer.log").open("wb") as log:  # it logs to stderr; the child keeps a copy
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    bouncer = Bouncer(folder, upstream["user"], proc)
    try:
        _wait_listening(bouncer)
        yield bouncer
    finally:
        stop_started(proc)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_listening(bouncer: Bouncer, timeout: float = 20.0) -> None:
    socket = bouncer.folder / f".s.PGSQL.{PORT}"
    wait_started(
        bouncer.proc,
        lambda: "process up" in bouncer.log() and socket.exists(),
        what="pgbouncer",
        log=bouncer.log,
        seconds=timeout,
        interval=0.05,
    )
