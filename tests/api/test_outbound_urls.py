"""PSA and chat addresses are checked when an admin saves them, with the production policy
(``OUTBOUND_ALLOWED_HOSTS`` unset): https, a public host, no credentials in the URL (issue #14)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from handoffs.app import create_app
from handoffs.config import Settings
from tests.conftest import Actor

PSA = "/api/v1/psa-connection"
CHAT = "/api/v1/integrations/chat"


@pytest.fixture(scope="module")
async def production(settings: Settings, engine: AsyncEngine) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The API as a production installation runs it: the same database, no allowed hosts."""
    async with AsyncTestClient(app=create_app(replace(settings, outbound_allowed_hosts=""))) as client:
        yield client


@pytest.fixture(autouse=True)
async def no_chat_integrations(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM chat_integrations"))


async def _put(
    client: AsyncTestClient[Litestar], who: Actor, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    response = await client.put(path, json=body, headers=who.headers)
    return response.status_code, response.json()


REFUSED = [
    ("http://127.0.0.1:8399/internal-admin", "base_url must name a public host, not a loopback address"),
    ("https://10.0.0.5/", "base_url must name a public host, not a private network address"),
    ("https://192.168.1.20/", "base_url must name a public host, not a private network address"),
    ("https://100.64.0.1/", "base_url must name a public host, not a private network address"),
    ("https://[::1]/", "base_url must name a public host, not a loopback address"),
    ("https://[fd00::5]/", "base_url must name a public host, not a private network address"),
    ("https://[::ffff:127.0.0.1]/", "base_url must name a public host, not a loopback address"),
    ("https://[::ffff:a00:5]/", "base_url must name a public host, not a private network address"),
    ("https://169.254.169.254/latest/meta-data", "base_url must name a public host, not a link-local address"),
    ("https://0.0.0.0/", "base_url must name a public host, not an unspecified address"),
    ("https://224.0.0.1/", "base_url must name a public host, not a multicast address"),
    ("https://2130706433/", "base_url must name a public host, not a numeric host that is not a plain dotted IPv4 address"),
    ("https://0x7f.0.0.1/", "base_url must name a public host, not a numeric host that is not a plain dotted IPv4 address"),
    ("https://017700000001/", "base_url must name a public host, not a numeric host that is not a plain dotted IPv4 address"),
    ("https://127.1/", "base_url must name a public host, not a numeric host that is not a plain dotted IPv4 address"),
    ("https://user:pw@acme.halopsa.com/", "base_url must not contain a user name or password"),
    ("http://acme.halopsa.com", "base_url must use https"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "detail"), REFUSED)
async def test_a_psa_address_inside_our_network_or_not_https_is_a_400_naming_the_field(
    production: AsyncTestClient[Litestar], actors: dict[str, Actor], url: str, detail: str
) -> None:
    status, answer = await _put(production, actors["ada"], PSA, {"vendor": "connectwise", "base_url": url})
    assert (status, answer["detail"]) == (400, detail)
    shown = (await production.get(PSA, headers=actors["ada"].headers)).json()
    assert shown["vendor"] == "none"  # nothing was written


async def test_halos_auth_url_is_checked_as_well(
    production: AsyncTestClient[Litestar], actors: dict[str, Actor]
) -> None:
    body = {"vendor": "halo", "base_url": "https://acme.halopsa.com",
            "settings": {"auth_url": "http://127.0.0.1:8399/auth"}}  # fmt: skip
    status, answer = await _put(production, actors["ada"], PSA, body)
    assert (status, answer["detail"]) == (
        400,
        "settings.auth_url must name a public host, not a loopback address",
    )


async def test_a_public_https_psa_address_is_saved(
    production: AsyncTestClient[Litestar], actors: dict[str, Actor]
) -> None:
    body = {"vendor": "halo", "base_url": "https://acme.halopsa.com",
            "settings": {"auth_url": "https://acme.halopsa.com/auth", "escalated_status_id": 3}}  # fmt: skip
    status, shown = await _put(production, actors["olivia"], PSA, body)
    assert status == 200, shown
    assert (shown["base_url"], shown["settings"]["auth_url"]) == (
        "https://acme.halopsa.com",
        "https://acme.halopsa.com/auth",
    )
    assert shown["last_error"] is None


async def test_the_services_own_setting_names_are_not_an_admins(
    production: AsyncTestClient[Litestar], actors: dict[str, Actor]
) -> None:
    body = {"vendor": "halo", "base_url": "https://acme.halopsa.com",
            "settings": {"_last_error": "forged"}}  # fmt: skip
    status, answer = await _put(production, actors["ada"], PSA, body)
    assert (status, answer["detail"]) == (400, "settings names may not start with '_' (_last_error)")


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://127.0.0.1:8399/services/T/B/x", "webhook_url must name a public host, not a loopback address"),
        ("https://[::1]/services/T/B/x", "webhook_url must name a public host, not a loopback address"),
        ("https://10.1.2.3/services/T/B/x", "webhook_url must name a public host, not a private network address"),
        ("https://2130706433/services/T/B/x", "webhook_url must name a public host, not a numeric host that is not a plain dotted IPv4 address"),
        ("http://localhost:8399/services/T/B/x", "webhook_url must use https"),
    ],
)  # fmt: skip
async def test_a_chat_webhook_inside_our_network_is_a_400_naming_the_field(
    production: AsyncTestClient[Litestar], actors: dict[str, Actor], url: str, detail: str
) -> None:
    status, answer = await _put(production, actors["ada"], CHAT, {"kind": "slack", "webhook_url": url})
    assert (status, answer["detail"]) == (400, detail)
    assert "/services/T/B/x" not in str(answer)
