"""Secrets at rest, as an operator meets them: the key setting, `handoffs rotate-secrets`, and
migration 0008 encrypting the rows an installation already has (docs/deployment.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any
from uuid import uuid4

import pytest
from alembic import command
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from handoffs.config import ConfigError, Settings
from handoffs.db.encryption import use_keys
from handoffs.db.engine import alembic_config, create_engine, create_sessionmaker
from handoffs.db.models import ChatIntegration, PsaConnection
from handoffs.db.tenancy import SYSTEM
from tests.conftest import Api
from tests.support.infra import TestServices, drop_database, recreate_database, with_database
from tests.support.replicas import ROOT, replica_env

PSA = "/api/v1/psa-connection"
CHAT = "/api/v1/integrations/chat"
PSA_BODY = {
    "vendor": "halo",
    "base_url": "https://acme.halopsa.com",
    "credentials": {"client_id": "halo-client", "client_secret": "HALO-SECRET-VALUE"},
}
SLACK_URL = "https://hooks.slack.com/services/T0/B0/SLACK-SECRET-PATH"


def _key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def keys(settings: Settings) -> Iterator[None]:
    """Tests here install other keys in this process (the in-process API's); the suite's after."""
    yield
    use_keys(settings.data_encryption_keys())


def _cli(settings: Settings, *args: str, data_key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handoffs.cli", *args],
        cwd=ROOT, env=replica_env(settings, DATA_ENCRYPTION_KEY=data_key),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def _tokens(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        psa = await conn.execute(text("SELECT credentials FROM psa_connections"))
        chat = await conn.execute(text("SELECT webhook_url FROM chat_integrations"))
        return [row[0] for rows in (psa, chat) for row in rows]


def _opens(key: str, token: str) -> bool:
    try:
        Fernet(key).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


async def _put_secrets(api: Api) -> None:
    for who, path, body in [
        ("ada", PSA, PSA_BODY),
        ("ada", CHAT, {"kind": "slack", "webhook_url": SLACK_URL}),
        (
            "gina",
            CHAT,
            {"kind": "teams", "webhook_url": "https://acme.webhook.office.com/webhookb2/TEAMS-SECRET"},
        ),
    ]:
        response = await api.call(who, "PUT", path, json=body)
        assert response.status_code == 200, response.text


async def _shown(api: Api) -> tuple[Any, ...]:
    psa = (await api.call("ada", "GET", PSA)).json()
    chats = [(await api.call(who, "GET", CHAT)).json() for who in ("ada", "gina")]
    return psa["credentials_set"], *((c["webhook_url_set"], c["webhook_host"]) for c in chats)


READABLE = (
    ["client_id", "client_secret"],
    (True, "hooks.slack.com"),
    (True, "acme.webhook.office.com"),
)


# -- the setting -----------------------------------------------------------------------------------


def test_without_data_encryption_key_the_key_is_hkdf_sha256_of_the_secret_key(tmp_path: Any) -> None:
    settings = Settings(secret_key="a-secret-key-of-some-length", data_dir=tmp_path)
    expected = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"handoffs data encryption key v1"
    ).derive(b"a-secret-key-of-some-length")
    assert settings.data_encryption_keys() == (base64.urlsafe_b64encode(expected).decode(),)
    assert replace(settings, secret_key="another").data_encryption_keys() != settings.data_encryption_keys()
    Fernet(settings.data_encryption_keys()[0])  # a Fernet key


def test_data_encryption_key_lists_keys_first_encrypting_and_refuses_a_malformed_one(tmp_path: Any) -> None:
    new, old = _key(), _key()
    settings = Settings(data_encryption_key=f" {new} , {old},", data_dir=tmp_path)
    assert settings.data_encryption_keys() == (new, old)
    with pytest.raises(ConfigError) as refused:
        replace(settings, data_encryption_key=f"{new},not-a-key-at-all").data_encryption_keys()
    assert str(refused.value) == (
        "DATA_ENCRYPTION_KEY: key 2 of 2 is not a Fernet key (32 bytes, url-safe base64); "
        "`handoffs data-key` prints a new one"
    )
    assert "not-a-key-at-all" not in str(refused.value)


def test_data_key_prints_a_new_key_or_the_derived_one(settings: Settings) -> None:
    printed = _cli(settings, "data-key", data_key="").stdout.strip()
    Fernet(printed)
    assert printed != _cli(settings, "data-key", data_key="").stdout.strip()
    derived = _cli(settings, "data-key", "--derived", data_key="")
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.strip() == settings.data_encryption_keys()[0]


# -- rotation --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("keys")
async def test_rotation_old_rows_read_under_both_keys_rotate_secrets_rewrites_them_then_the_old_key_goes(
    api: Api, settings: Settings, engine: AsyncEngine
) -> None:
    old, new = _key(), _key()
    use_keys([old])  # the installation as it ran so far
    await _put_secrets(api)
    assert await _shown(api) == READABLE

    use_keys([new, old])  # step 1: the new key first in the list, on every process
    assert await _shown(api) == READABLE  # rows written under the old key read fine
    assert all(_opens(old, token) for token in await _tokens(engine))

    rotated = _cli(settings, "rotate-secrets", "--batch-size", "2", data_key=f"{new},{old}")  # step 2
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.splitlines() == ["rewrote 3 rows with the first key (0 were already under it)"]
    tokens = await _tokens(engine)
    assert all(_opens(new, token) and not _opens(old, token) for token in tokens)
    again = _cli(settings, "rotate-secrets", data_key=f"{new},{old}")
    assert again.stdout.splitlines() == ["rewrote 0 rows with the first key (3 were already under it)"]
    assert await _tokens(engine) == tokens  # idempotent: nothing rewritten

    use_keys([new])  # step 3: the old key dropped
    assert await _shown(api) == READABLE
    assert "HALO-SECRET-VALUE" not in " ".join(tokens)


@pytest.mark.usefixtures("keys")
async def test_rotate_secrets_names_rows_no_key_reads_and_clears_them_only_when_asked(
    api: Api, settings: Settings, engine: AsyncEngine
) -> None:
    lost, new = _key(), _key()
    use_keys([lost])
    await _put_secrets(api)

    refused = _cli(settings, "rotate-secrets", data_key=new)
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == ["rewrote 0 rows with the first key (0 were already under it)"]
    assert refused.stderr.count("unreadable: ") == 3
    assert f"unreadable: psa_connections of account {api['ada'].account_id}" in refused.stderr
    assert "3 rows cannot be read with any configured key" in refused.stderr
    assert all(_opens(lost, token) for token in await _tokens(engine))  # left as they were

    cleared = _cli(settings, "rotate-secrets", "--clear-unreadable", data_key=new)
    assert cleared.returncode == 0, cleared.stderr
    assert "cleared 3 rows no key could read: their admins have to set them again" in cleared.stdout
    use_keys([new])
    assert await _shown(api) == ([], (False, None), (False, None))


# -- migration 0008 --------------------------------------------------------------------------------


@pytest.fixture
async def old_database(test_services: TestServices, settings: Settings) -> AsyncIterator[Settings]:
    """An empty database of its own, for migrating up and down without touching the suite's."""
    name = f"{test_services.database_name}_m0008"
    await recreate_database(test_services.admin_url, name)
    try:
        yield replace(settings, database_url=with_database(test_services.admin_url, name))
    finally:
        await drop_database(test_services.admin_url, name)


PLAIN_CREDENTIALS = {"client_id": "halo-client", "client_secret": "PLAIN-SECRET-BEFORE-0008"}
PLAIN_URL = "https://hooks.slack.com/services/T0/B0/PLAIN-URL-SECRET"


async def _insert_plain_rows(engine: AsyncEngine) -> None:
    """What an installation at 0007 holds: credentials as jsonb, the webhook URL as it was typed."""
    account = uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO accounts (id, name, slug, created_at, updated_at) VALUES (:id, 'Old', 'old', now(), now())"
            ),
            {"id": account},
        )
        await conn.execute(
            text(
                "INSERT INTO psa_connections (id, account_id, vendor, base_url, settings, credentials, enabled, "
                "created_at, updated_at) VALUES (:id, :account, 'halo', 'https://old.halopsa.com', '{}', "
                "CAST(:credentials AS jsonb), true, now(), now())"
            ),
            {"id": uuid4(), "account": account, "credentials": json.dumps(PLAIN_CREDENTIALS)},
        )
        await conn.execute(
            text(
                "INSERT INTO chat_integrations (id, account_id, kind, webhook_url, min_priority, created_at, "
                "updated_at) VALUES (:id, :account, 'slack', :url, 'normal', now(), now())"
            ),
            {"id": uuid4(), "account": account, "url": PLAIN_URL},
        )


@pytest.mark.usefixtures("keys")
async def test_migration_0008_encrypts_the_rows_already_there_and_downgrade_decrypts_them(
    old_database: Settings,
) -> None:
    key = _key()
    at_0007 = _cli(old_database, "migrate", "--revision", "0007", data_key=key)
    assert at_0007.returncode == 0, at_0007.stderr
    # The harness's, as conftest's: the login role; at 0007 there is no app role yet.
    engine = create_engine(old_database, scope=SYSTEM, app_role=False)
    try:
        await _insert_plain_rows(engine)
        # `handoffs migrate` with the installation's DATA_ENCRYPTION_KEY, as a deploy runs it.
        upgraded = _cli(old_database, "migrate", data_key=key)
        assert upgraded.returncode == 0, upgraded.stderr
        credentials, url = await _tokens(engine)
        assert "PLAIN-SECRET-BEFORE-0008" not in credentials
        assert "PLAIN-URL-SECRET" not in url
        assert json.loads(Fernet(key).decrypt(credentials.encode())) == PLAIN_CREDENTIALS
        assert Fernet(key).decrypt(url.encode()).decode() == PLAIN_URL

        use_keys([key])  # the app reads them back as the values
        async with create_sessionmaker(engine)() as db:
            assert (await db.scalar(select(PsaConnection.credentials))) == PLAIN_CREDENTIALS
            assert (await db.scalar(select(ChatIntegration.webhook_url))) == PLAIN_URL

        await asyncio.to_thread(command.downgrade, alembic_config(old_database), "0007")
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT credentials, webhook_url FROM psa_connections, chat_integrations")
                )
            ).one()
        assert tuple(row) == (PLAIN_CREDENTIALS, PLAIN_URL)
    finally:
        await engine.dispose()
