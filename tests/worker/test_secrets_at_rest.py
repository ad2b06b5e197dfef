"""PSA credentials and chat webhook URLs at rest: Fernet tokens in the database, plain values
for the API and the worker, and a clear failure when the configured key cannot read them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handoffs.config import Settings
from handoffs.db.encryption import use_keys
from tests.conftest import Api
from tests.support.fake_chat import SECRET_TOKEN, FakeChat, fake_chat_server
from tests.support.fake_psa import FakePsa, fake_psa_server
from tests.support.workers import fast_settings, run_jobs
from tests.worker.test_psa import CONNECTIONS, _configure, _escalate, _handoff

pytestmark = pytest.mark.usefixtures("clean_redis")

UNREADABLE = "the stored PSA credentials cannot be read with the configured DATA_ENCRYPTION_KEY"


@pytest.fixture
def psa() -> Iterator[FakePsa]:
    with fake_psa_server() as fake:
        yield fake


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    with fake_chat_server() as fake:
        yield fake


@pytest.fixture
def another_key(settings: Settings) -> Iterator[Settings]:
    """The settings of an installation that lost its key: another DATA_ENCRYPTION_KEY. The process's
    keys are the suite's again afterwards (a worker installs its settings' keys as it starts)."""
    yield replace(settings, data_encryption_key=Fernet.generate_key().decode())
    use_keys(settings.data_encryption_keys())


async def _raw(engine: AsyncEngine, sql: str) -> list[str]:
    async with engine.connect() as conn:
        return [row[0] for row in await conn.execute(text(sql))]


async def test_the_database_holds_fernet_tokens_and_the_api_and_worker_the_values(
    api: Api, settings: Settings, psa: FakePsa, chat: FakeChat, engine: AsyncEngine, db: AsyncSession
) -> None:
    await _configure(api, "halo", psa.url)
    response = await api.call(
        "ada", "PUT", "/api/v1/integrations/chat", json={"kind": "slack", "webhook_url": chat.url}
    )
    assert response.status_code == 200, response.text

    (credentials,) = await _raw(engine, "SELECT credentials FROM psa_connections")
    (webhook_url,) = await _raw(engine, "SELECT webhook_url FROM chat_integrations")
    for secret in ("halo-secret", "halo-client"):
        assert secret not in credentials
    assert SECRET_TOKEN not in webhook_url
    assert "127.0.0.1" not in webhook_url  # the whole URL, not only its path
    fernet = Fernet(settings.data_encryption_keys()[0])
    assert json.loads(fernet.decrypt(credentials.encode())) == CONNECTIONS["halo"]["credentials"]
    assert fernet.decrypt(webhook_url.encode()).decode() == chat.url

    shown = (await api.call("ada", "GET", "/api/v1/psa-connection")).json()
    assert shown["credentials_set"] == ["client_id", "client_secret"]
    assert (await api.call("ada", "GET", "/api/v1/integrations/chat")).json()["webhook_host"] == "127.0.0.1"

    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    token = psa.calls[0]
    assert (token.body["client_id"], token.body["client_secret"]) == ("halo-client", "halo-secret")
    assert len(chat.posts) == 1  # posted to the decrypted URL
    assert (await _handoff(db, handoff["id"])).psa_sync_status == "synced"


@pytest.mark.expect_error_logs  # the API's 500 is logged: an operator has to act
async def test_with_a_wrong_key_the_push_fails_in_our_words_and_the_admins_are_told(
    api: Api, settings: Settings, another_key: Settings, psa: FakePsa, db: AsyncSession
) -> None:
    await _configure(api, "halo", psa.url)
    handoff = await _escalate(api)
    await run_jobs(fast_settings(another_key))
    assert psa.calls == []  # nothing was sent with credentials it could not read
    row = await _handoff(db, handoff["id"])
    assert (row.psa_sync_status, row.psa_sync_error) == ("failed", UNREADABLE)

    # The admin's settings page, on a process with the wrong key: a clear 500, no key, no token.
    answer = await api.call("ada", "GET", "/api/v1/psa-connection")
    assert answer.status_code == 500
    assert answer.json()["detail"].startswith(
        "The stored PSA credentials cannot be read with the configured DATA_ENCRYPTION_KEY"
    )
    for key in (*another_key.data_encryption_keys(), *settings.data_encryption_keys()):
        assert key not in answer.text

    use_keys(settings.data_encryption_keys())  # the operator configures the right key again
    shown = (await api.call("ada", "GET", "/api/v1/psa-connection")).json()
    assert shown["credentials_set"] == ["client_id", "client_secret"]
    assert (shown["last_error"]["step"], shown["last_error"]["reason"]) == ("credentials", UNREADABLE)
    assert shown["last_error"]["handoff_id"] == handoff["id"]


async def test_with_a_wrong_key_the_chat_post_fails_and_the_timeline_says_why(
    api: Api, another_key: Settings, chat: FakeChat
) -> None:
    response = await api.call(
        "ada", "PUT", "/api/v1/integrations/chat", json={"kind": "slack", "webhook_url": chat.url}
    )
    assert response.status_code == 200, response.text
    session, handoff = await api.escalated("jane", priority="high")
    await run_jobs(fast_settings(another_key))
    assert chat.posts == []
    timeline: list[dict[str, Any]] = (await api.read("sam", session, handoff, "timeline")).json()
    (failed,) = [e for e in timeline if e["kind"].startswith("chat_")]
    assert failed["kind"] == "chat_failed"
    assert failed["detail"]["reason"] == (
        "the stored chat webhook URL cannot be read with the configured DATA_ENCRYPTION_KEY"
    )
