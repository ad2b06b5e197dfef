"""PSA write-back against a local fake vendor server, through the real adapters and worker."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import PsaConnection, SessionHandoff
from handoffs.enums import PsaVendor
from handoffs.integrations.psa import PsaError, adapter_for
from tests.conftest import Api, settle
from tests.support.fake_psa import FakePsa, Reply, fake_psa_server
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
    assert (row.psa_sync_status, row.psa_sync_error) == (
        "failed",
        "ConnectWise refused the credentials (401)",
    )


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


# -- addresses and what engineers see of a failure (issue #14) ----------------------------------

#: What the worker runs with in production: no host is allowed beyond public https ones.
PRODUCTION = {"outbound_allowed_hosts": ""}


async def _engineer_answers(api: Api, handoff: dict[str, Any]) -> str:
    """Everything an engineer of the account can read about the handoff, as one text."""
    session = {"id": handoff["session_id"]}
    answers = [
        await api.read("jane", session, handoff),
        await api.read("sam", session, handoff, "timeline"),
        await api.call("sam", "GET", f"/api/v1/ai-sessions/{handoff['session_id']}/handoffs"),
        await api.call("sam", "GET", "/api/v1/handoffs", params={"state": "open"}),
    ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return " ".join(a.text for a in answers)


async def test_the_internal_servers_403_body_reaches_the_admins_and_the_log_but_no_engineer(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    """The finding: an address answering 403 with its secrets, and echoing what we sent."""
    caplog.set_level(logging.DEBUG)
    await _configure(api, "halo", psa.url)
    psa.fail_with = [Reply(403, "Forbidden. db_password=hunter2 (you sent client_secret=halo-secret)")]
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    assert psa.paths() == ["POST /auth/token"]  # refused at once: not retried
    row = await _handoff(db, handoff["id"])
    assert (row.psa_sync_status, row.psa_sync_error) == ("failed", "Halo refused the credentials (403)")

    seen = await _engineer_answers(api, handoff)
    assert "Halo refused the credentials (403)" in seen
    assert "hunter2" not in seen

    shown = (await api.call("ada", "GET", "/api/v1/psa-connection")).json()
    assert shown["last_error"]["reason"] == "Halo refused the credentials (403)"
    assert shown["last_error"]["detail"] == (
        "Halo: POST /auth/token answered 403: Forbidden. db_password=hunter2 (you sent client_secret=[redacted])"
    )
    assert (shown["last_error"]["handoff_id"], shown["last_error"]["step"]) == (
        handoff["id"],
        "escalation_note",
    )
    assert "_last_error" not in shown["settings"]
    assert "db_password=hunter2" in caplog.text
    assert "halo-secret" not in caplog.text
    assert "halo-secret" not in str(shown)
    # The admins' next PUT keeps what they came to read.
    kept = await api.call(
        "ada", "PUT", "/api/v1/psa-connection", json={"vendor": "halo", "base_url": psa.url}
    )
    assert kept.json()["last_error"] == shown["last_error"]


async def test_a_server_error_shows_engineers_the_status_and_admins_the_answer(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession
) -> None:
    await _configure(api, "connectwise", psa.url)
    psa.fail_with = [Reply(500, "stack trace: at Internal.Db(password=hunter2)")] * 5
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    row = await _handoff(db, handoff["id"])
    assert row.psa_sync_status == "failed"
    assert row.psa_sync_error == "gave up after 5 attempts: ConnectWise answered 500"
    assert "hunter2" not in await _engineer_answers(api, handoff)
    detail = (await api.call("olivia", "GET", "/api/v1/psa-connection")).json()["last_error"]["detail"]
    assert detail.endswith("answered 500: stack trace: at Internal.Db(password=hunter2)")


async def test_a_redirect_is_not_followed(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession
) -> None:
    await _configure(api, "connectwise", psa.url)
    psa.fail_with = [Reply(302, headers={"Location": f"{psa.url}/internal-admin"})]
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    assert len(psa.calls) == 1  # the Location was not asked for
    row = await _handoff(db, handoff["id"])
    assert (row.psa_sync_status, row.psa_sync_error) == (
        "failed", "ConnectWise answered with a redirect (302), which is not followed",
    )  # fmt: skip
    detail = (await api.call("ada", "GET", "/api/v1/psa-connection")).json()["last_error"]["detail"]
    assert f"Location: {psa.url}/internal-admin" in detail


@pytest.mark.parametrize("where", ["localhost", "127.0.0.1"])
async def test_an_address_inside_our_network_is_refused_when_connecting_and_nothing_reaches_it(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession, where: str
) -> None:
    """Saved while the installation allowed it (or before this check existed), pushed by a worker
    with the production policy: ``localhost`` is only found to be loopback by resolving it."""
    base_url = f"https://localhost:{psa.port}" if where == "localhost" else psa.url
    await _configure(api, "halo", base_url)
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings, **PRODUCTION))
    assert psa.calls == []
    row = await _handoff(db, handoff["id"])
    assert (row.psa_sync_status, row.psa_sync_error) == (
        "failed", "the PSA address is not allowed (a loopback address)",
    )  # fmt: skip
    detail = (await api.call("ada", "GET", "/api/v1/psa-connection")).json()["last_error"]["detail"]
    assert (
        detail
        == f"Halo: POST /auth/token: {where}: a loopback address is not allowed (OUTBOUND_ALLOWED_HOSTS)"
    )


async def test_a_host_that_does_not_resolve_is_retried_and_says_so(
    api: Api, settings: Settings, db: AsyncSession
) -> None:
    await _configure(api, "autotask", "https://psa.invalid")
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings, job_max_attempts=2))
    row = await _handoff(db, handoff["id"])
    assert (
        row.psa_sync_error == "gave up after 2 attempts: could not reach Autotask (the name does not resolve)"
    )


@pytest.mark.parametrize(
    ("failure", "reason", "transient"),
    [
        (httpx.ReadTimeout("timed out reading https://acme.halopsa.com/api/Actions"), "could not reach Halo (timeout)", True),
        (httpx.ConnectError("[Errno 111] Connection refused"), "could not reach Halo (connection refused)", True),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed certificate"), "could not reach Halo (TLS failed)", True),
        (httpx.RemoteProtocolError("peer closed"), "could not reach Halo (RemoteProtocolError)", True),
    ],
)  # fmt: skip
async def test_a_network_failure_reads_as_could_not_reach_the_vendor(
    failure: Exception, reason: str, transient: bool
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    connection = PsaConnection(vendor=PsaVendor.halo, base_url="https://acme.halopsa.com", settings={}, enabled=True,
                               credentials={"client_id": "c", "client_secret": "s"})  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as http:
        adapter = adapter_for(connection, http)
        assert adapter is not None
        with pytest.raises(PsaError) as raised:
            await adapter.add_note("1", "note")
    assert (raised.value.reason, raised.value.transient, raised.value.__cause__) == (reason, transient, None)


async def test_a_token_endpoint_answering_a_page_instead_of_a_token_fails_in_words(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession
) -> None:
    await _configure(api, "halo", psa.url)
    psa.fail_with = [Reply(200, "<html>Internal admin. db_password=hunter2</html>")]
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings))
    row = await _handoff(db, handoff["id"])
    assert row.psa_sync_error == "Halo's token endpoint answered without an access token"
    assert "hunter2" not in await _engineer_answers(api, handoff)
    detail = (await api.call("ada", "GET", "/api/v1/psa-connection")).json()["last_error"]["detail"]
    assert "db_password=hunter2" in detail
