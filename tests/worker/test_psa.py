"""PSA write-back against a local fake vendor server, through the real adapters and worker."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import SessionHandoff
from tests.conftest import Api, settle
from tests.support.fake_psa import FakePsa, fake_psa_server
from tests.support.workers import fast_settings, run_jobs

pytestmark = pytest.mark.usefixtures("clean_redis")


@pytest.fixture
def psa() -> Iterator[FakePsa]:
    with fake_psa_server() as fake:
        yield fake


CONNECTIONS: dict[str, dict[str, Any]] = {
    "connectwise": {
        "settings": {"company_id": "acme", "escalated_status": "Escalated"},
        "credentials": {"public_key": "pub", "private_key": "PRIVATE-KEY-VALUE", "client_id": "client-1"},
    },
    "autotask": {
        "settings": {"escalated_status_id": 8},
        "credentials": {"integration_code": "CODE", "username": "api@acme.test", "secret": "s3cret"},
    },
    "halo": {
        "settings": {"escalated_status_id": 3},
        "credentials": {"client_id": "halo-client", "client_secret": "halo-secret"},
    },
}


async def _configure(api: Api, vendor: str, base_url: str) -> dict[str, Any]:
    body = {"vendor": vendor, "base_url": base_url, **CONNECTIONS[vendor]}
    response = await api.call("ada", "PUT", "/api/v1/psa-connection", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _escalate(api: Api, ticket: str = "4242") -> dict[str, Any]:
    session = await api.new_session("jane", psa_ticket_id=ticket, problem_summary="VPN drops every hour")
    await api.call(
        "jane",
        "POST",
        f"/api/v1/ai-sessions/{session['id']}/messages",
        json={"role": "user", "content": "VPN dropped again"},
    )
    handoff = await api.hand_off(session["id"], engineer_notes="Reinstalled the VPN client")
    await settle(api.client)
    return handoff


async def _handoff(db: AsyncSession, handoff_id: str) -> SessionHandoff:
    db.expire_all()
    row = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff_id))
    assert row is not None
    return row


async def test_connectwise_gets_a_note_and_a_status_change(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession
) -> None:
    await _configure(api, "connectwise", psa.url)
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    assert psa.paths() == [
        "POST /v4_6_release/apis/3.0/service/tickets/4242/notes",
        "PATCH /v4_6_release/apis/3.0/service/tickets/4242",
    ]
    note, status = psa.calls
    assert (
        note.headers["authorization"] == "Basic " + base64.b64encode(b"acme+pub:PRIVATE-KEY-VALUE").decode()
    )
    assert note.headers["clientid"] == "client-1"
    assert note.body["internalAnalysisFlag"] is True
    assert "VPN drops every hour" in note.body["text"]
    assert "Reinstalled the VPN client" in note.body["text"]
    assert status.body == [{"op": "replace", "path": "status/name", "value": "Escalated"}]
    row = await _handoff(db, handoff["id"])
    assert (row.psa_sync_status, row.psa_sync_error) == ("synced", None)
    assert row.psa_synced_at is not None


async def test_autotask_gets_a_ticket_note_and_status(api: Api, settings: Settings, psa: FakePsa) -> None:
    await _configure(api, "autotask", psa.url)
    await _escalate(api)
    await run_jobs(fast_settings(settings))
    assert psa.paths() == [
        "POST /ATServicesRest/V1.0/Tickets/4242/Notes",
        "PATCH /ATServicesRest/V1.0/Tickets",
    ]
    note, status = psa.calls
    assert (note.headers["apiintegrationcode"], note.headers["username"], note.headers["secret"]) == (
        "CODE", "api@acme.test", "s3cret",
    )  # fmt: skip
    assert note.body["ticketID"] == 4242
    assert "VPN drops every hour" in note.body["description"]
    assert status.body == {"id": 4242, "status": 8}


async def test_halo_gets_a_token_then_an_action_and_status(
    api: Api, settings: Settings, psa: FakePsa
) -> None:
    await _configure(api, "halo", psa.url)
    await _escalate(api)
    await run_jobs(fast_settings(settings))
    assert psa.paths() == ["POST /auth/token", "POST /api/Actions", "POST /api/Tickets"]
    token, action, status = psa.calls
    assert token.body == {
        "grant_type": "client_credentials", "client_id": "halo-client", "client_secret": "halo-secret", "scope": "all",
    }  # fmt: skip
    assert action.headers["authorization"] == "Bearer halo-token"
    assert action.body[0]["ticket_id"] == 4242
    assert action.body[0]["hiddenfromuser"] is True
    assert status.body == [{"id": 4242, "status_id": 3}]


async def test_a_503_then_200_is_retried_and_shows_synced(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession
) -> None:
    await _configure(api, "connectwise", psa.url)
    psa.fail_with = [503]
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    notes = [c for c in psa.calls if c.path.endswith("/notes")]
    assert len(notes) == 2
    assert (await _handoff(db, handoff["id"])).psa_sync_status == "synced"
    shown = await api.call(
        "sam", "GET", f"/api/v1/ai-sessions/{handoff['session_id']}/handoffs/{handoff['id']}"
    )
    assert shown.json()["psa_sync_status"] == "synced"


async def test_rejected_credentials_fail_at_once_with_the_reason(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession
) -> None:
    await _configure(api, "connectwise", psa.url)
    psa.fail_with = [401]
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    assert len(psa.calls) == 1
    row = await _handoff(db, handoff["id"])
    assert row.psa_sync_status == "failed"
    assert "answered 401" in (row.psa_sync_error or "")


async def test_without_a_psa_the_handoff_says_not_applicable(
    api: Api, settings: Settings, db: AsyncSession
) -> None:
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    assert (await _handoff(db, handoff["id"])).psa_sync_status == "not_applicable"


async def test_credentials_are_never_returned(api: Api, psa: FakePsa) -> None:
    shown = await _configure(api, "connectwise", psa.url)
    assert "PRIVATE-KEY-VALUE" not in str(shown)
    assert shown["credentials_set"] == ["client_id", "private_key", "public_key"]
    assert shown["credentials_missing"] == []
    again = await api.call("olivia", "GET", "/api/v1/psa-connection")
    assert "PRIVATE-KEY-VALUE" not in again.text
    # Updating without credentials keeps them.
    kept = await api.call(
        "ada", "PUT", "/api/v1/psa-connection", json={"vendor": "connectwise", "base_url": psa.url}
    )
    assert kept.json()["credentials_set"] == ["client_id", "private_key", "public_key"]


@pytest.mark.parametrize("who", ["jane", "victor"])
async def test_only_admins_and_owners_configure_the_psa(api: Api, who: str) -> None:
    assert (await api.call(who, "GET", "/api/v1/psa-connection")).status_code == 403
    response = await api.call(who, "PUT", "/api/v1/psa-connection", json={"vendor": "none"})
    assert response.status_code == 403


async def test_a_psa_vendor_needs_a_base_url(api: Api) -> None:
    response = await api.call("ada", "PUT", "/api/v1/psa-connection", json={"vendor": "halo"})
    assert response.status_code == 400
    assert "base_url" in response.json()["detail"]
