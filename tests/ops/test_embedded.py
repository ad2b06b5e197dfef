"""The embedded servers `make dev` and the suite run on: any data folder, errors in the
servers' own words, and they stop when their user does, however it ends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from redis import Redis

from handoffs.config import Settings
from handoffs.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError


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


def test_redis_starts_in_a_relative_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # redis-server changes into --dir before it opens its files: `make dev`'s default `.data`
    # is relative, and failed exactly so.
    monkeypatch.chdir(tmp_path)
    redis = EmbeddedRedis(Path(".data") / "redis")
    try:
        redis.start()
        assert redis.data_dir == tmp_path / ".data" / "redis"
        assert Redis.from_url(redis.url).ping()
    finally:
        redis.stop()


def test_settings_resolve_a_relative_data_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HANDOFFS_DATA_DIR", "here/data")
    assert Settings.from_env().data_dir == tmp_path / "here" / "data"
    assert Settings(data_dir=Path("~/x")).data_dir == Path.home() / "x"


def test_a_redis_that_cannot_start_says_why_in_its_own_words(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        redis = EmbeddedRedis(tmp_path / "redis", port=port)
        with pytest.raises(EmbeddedServerError) as failure:
            redis.start()
    message = str(failure.value)
    assert message.startswith("embedded Redis (redis-server on 127.0.0.1:")
    assert "exited with code 1" in message
    assert "Address already in use" in message  # redis-server's own log line, quoted


def test_a_postgres_that_cannot_start_says_why_in_its_own_words(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    data_dir.mkdir()
    (data_dir / "PG_VERSION").write_text("9\n")  # a folder of another PostgreSQL
    with pytest.raises(EmbeddedServerError) as failure:
        EmbeddedPostgres(data_dir).start()
    message = str(failure.value)
    assert message.startswith(f"embedded PostgreSQL did not start in {data_dir} (pg_ctl exited with code 1)")
    assert "the end of its log" in message
    # The server's own words, not a pointer to a file.
    assert "could not access the server configuration file" in message


def test_a_stale_redis_of_a_dead_starter_is_stopped_on_the_next_start(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "redis")
    first.start()
    assert first._proc is not None
    stale = psutil.Process(first._proc.pid)
    # What a killed starter leaves: the server running, its state naming a starter that is gone.
    orphan, orphans_watchdog = first._proc, first._watchdog
    first._watchdog = None
    first._proc = None
    state = json.loads((first.data_dir / "server.json").read_text())
    (first.data_dir / "server.json").write_text(json.dumps({**state, "starter": _dead_pid()}))

    second = EmbeddedRedis(tmp_path / "redis")
    try:
        second.start()
        stale.wait(timeout=10)
        assert Redis.from_url(second.url).ping()
    finally:
        second.stop()
        orphan.wait(timeout=10)
        assert orphans_watchdog is not None
        orphans_watchdog.dismiss()


def test_a_redis_whose_starter_lives_is_shared_not_stopped(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "redis")
    first.start()
    try:
        with open(first.data_dir / "server.json") as f:
            state = json.load(f)
        (first.data_dir / "server.json").write_text(json.dumps({**state, "starter": os.getppid()}))
        second = EmbeddedRedis(tmp_path / "redis")
        assert second.start() == first.url
        second.stop()  # not its own: left running
        assert Redis.from_url(first.url).ping()
    finally:
        first.stop()


def test_a_dead_user_left_in_pgservers_list_does_not_keep_postgres_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    postgres = EmbeddedPostgres(data_dir)
    postgres.start()
    server = psutil.Process(_postmaster_pid(data_dir))
    handles = data_dir / ".handle_pids.json"
    handles.write_text(json.dumps([*json.loads(handles.read_text()), _dead_pid()]))  # a `kill -9`ed user
    postgres.stop()
    server.wait(timeout=30)


STARTER = """
import sys, time
from pathlib import Path
from handoffs.embedded import EmbeddedPostgres, EmbeddedRedis
folder = Path(sys.argv[1])
EmbeddedPostgres(folder / "postgres").start()
redis = EmbeddedRedis(folder / "redis")
redis.start()
print(redis._proc.pid, flush=True)
time.sleep(600)
"""


def test_servers_die_with_a_starter_that_is_killed(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert starter.stdout is not None
        redis = psutil.Process(int(starter.stdout.readline()))
        postgres = psutil.Process(_postmaster_pid(tmp_path / "postgres"))
    finally:
        starter.kill()  # SIGKILL: no atexit, no finally
        starter.wait()
        assert starter.stdout is not None
        starter.stdout.close()
    # The watchdogs stop both; wait() raises TimeoutExpired if either were left running.
    redis.wait(timeout=30)
    postgres.wait(timeout=60)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
