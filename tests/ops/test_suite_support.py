"""The suite's own helpers, where a mistake would hide failures rather than cause them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import browser
from tests.support.infra import TestServices
from tests.support.replicas import ROOT


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_chromium_fails_the_browser_tests_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="missing in CI"):
        browser.require_chromium()


def test_a_missing_chromium_skips_the_browser_tests_on_a_developers_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not installed"):
        browser.require_chromium()


def test_each_worker_gets_its_own_redis_database_and_a_sixteenth_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.infra import worker_redis_url

    urls = set()
    for n in range(15):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{n}")
        urls.add(worker_redis_url("redis://127.0.0.1:6379/0"))
    assert len(urls) == 15
    assert "redis://127.0.0.1:6379/0" not in urls
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw15")
    with pytest.raises(RuntimeError, match="at most 15 test workers"):
        worker_redis_url("redis://127.0.0.1:6379/0")


async def test_another_runs_test_database_is_kept_and_only_a_day_old_one_is_dropped(
    test_services: TestServices,
) -> None:
    import time

    from tests.support.infra import admin_connect, drop_database, recreate_database

    now = int(time.time())
    elsewhere = f"handoffs_test_{now - 600}_otherrun0000_gw3"  # a live run on another machine
    forgotten = f"handoffs_test_{now - 2 * 86400}_deadrun00000_gw0"
    mine = f"handoffs_test_{now}_suitesupport_gw99"
    for name in (elsewhere, forgotten):
        await recreate_database(test_services.admin_url, name)
    try:
        await recreate_database(test_services.admin_url, mine)
        conn = await admin_connect(test_services.admin_url)
        try:
            names = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        finally:
            await conn.close()
        assert elsewhere in names
        assert mine in names
        assert forgotten not in names
    finally:
        for name in (elsewhere, forgotten, mine):
            await drop_database(test_services.admin_url, name)


#: The concerns a setting's name starts with (docs/deployment.md, "Environment variables, Names").
SETTING_PREFIXES = (
    "DB_", "REDIS_", "SSE_", "JOB_", "WORKER_", "LADDER_", "LOGIN_", "AUTH_", "TOKEN_", "ANTHROPIC_", "AI_",
    "SMTP_", "LOG_", "SHUTDOWN_", "OUTBOX_", "OUTBOUND_", "METRICS_", "DATA_", "HANDOFFS_",
)  # fmt: skip
BARE_SETTING_NAMES = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PUBLIC_URL"}


def test_every_setting_is_named_by_its_concern_and_documented_in_a_table_row() -> None:
    from dataclasses import fields

    from handoffs.config import Settings

    docs = "\n".join(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))
    rows = [line for line in docs.splitlines() if line.startswith("|")]
    for name in (f.metadata["env"] for f in fields(Settings)):
        assert name in BARE_SETTING_NAMES or name.startswith(SETTING_PREFIXES), name
        assert any(f"`{name}`" in row for row in rows), f"{name} has no row in a docs/ table"


def test_every_setting_names_its_environment_variable_once_and_parses_by_its_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import fields

    from handoffs.config import ConfigError, Settings

    names = [f.metadata["env"] for f in fields(Settings)]
    assert len(names) == len(set(names)), "an environment variable named twice"
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    monkeypatch.setenv("HANDOFFS_DEBUG", "yes")
    monkeypatch.setenv("OUTBOX_FAST_PATH", "0")
    monkeypatch.setenv("PUBLIC_URL", "https://handoffs.example/")
    monkeypatch.setenv("WORKER_BATCH_WAIT_MS", "2.5")
    monkeypatch.setenv("SMTP_URL", "  ")  # blank counts as unset
    settings = Settings.from_env()
    assert (settings.db_pool_size, settings.debug, settings.outbox_fast_path) == (7, True, False)
    assert settings.public_url == "https://handoffs.example"
    assert settings.worker_batch_wait_ms == 2.5
    assert settings.smtp_url is None
    monkeypatch.setenv("JOB_MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match="JOB_MAX_ATTEMPTS must be a whole number, got 'many'"):
        Settings.from_env()


async def test_the_cleanup_outlasts_a_deadlock_with_a_request_still_in_flight(engine: AsyncEngine) -> None:
    """A transaction that read session_handoffs and then asks for escalation_policies (as a hand-off
    does) while ``clean_rows`` holds the policies and waits for the handoffs: PostgreSQL aborts the
    truncation, which waited first; the cleanup tries again once the other transaction is over."""
    import asyncio

    from tests.conftest import clean_rows
    from tests.support.polling import wait_lock_waiter

    async with engine.connect() as other:
        await other.execute(text("SELECT 1 FROM session_handoffs LIMIT 1"))
        cleaning = asyncio.create_task(clean_rows(engine))
        # The truncation holds escalation_policies and waits for the handoffs.
        await wait_lock_waiter(engine, "TRUNCATE")
        await other.execute(text("SELECT 1 FROM escalation_policies LIMIT 1"))
        await other.rollback()
    await asyncio.wait_for(cleaning, 10)
