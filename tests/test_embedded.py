"""The embedded servers `make dev` and the suite run on: they stop when their user does."""

from __future__ import annotations

from pathlib import Path

import psutil

from handoffs.embedded import EmbeddedPostgres


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def test_a_new_postgres_is_stopped_on_stop_even_after_its_first_start_restarted_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    postgres = EmbeddedPostgres(data_dir)
    postgres.start()  # a new folder: initdb, then a restart to raise max_connections
    server = psutil.Process(_postmaster_pid(data_dir))
    assert server.is_running()
    # pgserver stops the postmaster it knows of: it must know of the restarted one. (Whether a
    # stale one still looks alive depends on who reaps it, so check what pgserver tracks.)
    assert postgres._server.get_pid() == server.pid
    postgres.stop()
    server.wait(timeout=10)  # raises TimeoutExpired if it was left running (Ctrl-C on `make dev` did)
    assert not server.is_running()
