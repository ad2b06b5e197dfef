"""After resolve: the PSA ticket gets the resolution once per step, the junior one email, and the
workers' steps land in the timeline; against a local fake vendor, a real SMTP server and arq."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import OutboxMessage
from tests.conftest import Api, settle
from tests.support.fake_psa import FakePsa, fake_psa_server
from tests.support.smtp_server import Inbox, smtp_server
from tests.support.workers import fast_settings, run_jobs

pytestmark = pytest.mark.usefixtures("clean_redis")

CW = "/v4_6_release/apis/3.0/service/tickets/4242"
CONNECTIONS: dict[str, dict[str, Any]] = {
    "connectwise": {
        "settings": {"company_id": "acme", "escalated_status": "Escalated", "resolved_status": "Resolved"},
        "credentials": {"public_key": "pub", "private_key": "priv", "client_id": "client-1"},
    },
    "autotask": {
        "settings": {"escalated_status_id": 8, "resolved_status_id": 5},
        "credentials": {"integration_code": "CODE", "username": "api@acme.test", "secret": "s3cret"},
    },
    "halo": {
        "settings": {"escalated_status_id": 3, "resolved_status_id": 9},
        "credentials": {"client_id": "halo-client", "client_secret": "halo-secret"},
    },
}


@pytest.fixture
def psa() -> Iterator[FakePsa]:
    with fake_psa_server() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    with smtp_server() as server:
        yield server


async def configure(api: Api, vendor: str, url: str) -> None:
    body = {"vendor": vendor, "base_url": url, **CONNECTIONS[vendor]}
    response = await api.call("ada", "PUT", "/api/v1/psa-connection", json=body)
    assert response.status_code == 200, response.text


async def escalate_and_claim(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    session = await api.new_session("jane", psa_ticket_id="4242", problem_summary="VPN drops every hour")
    handoff = await api.hand_off(session["id"], engineer_notes="Reinstalled the VPN client")
    assert (await api.act("sam", session, handoff, "claim")).status_code == 200
    return session, handoff


async def resolve(api: Api, session: dict[str, Any], handoff: dict[str, Any]) -> None:
    body = {"resolution": "Raised the IKE lifetime to 8 h on the firewall.", "outcome": "fixed"}
    response = await api.act("sam", session, handoff, "resolve", body)
    assert response.status_code == 200, response.text
    await settle(api.client)


async def run_again(db: AsyncSession, redis: Any, settings: Settings, topic: str, phase: str | None) -> None:
    """Run a job a second time under a new arq id, as a duplicate delivery would."""
    rows = (await db.scalars(select(OutboxMessage).where(OutboxMessage.topic == topic))).all()
    (row_id,) = [str(r.id) for r in rows if r.payload.get("phase") == phase]
    await db.rollback()
    arq = ArqRedis(connection_pool=redis.connection_pool)
    await arq.enqueue_job(topic, row_id, _job_id=f"again-{row_id}")
    await run_jobs(settings)


async def test_a_failed_escalation_status_call_is_retried_without_posting_the_note_twice(
    api: Api, settings: Settings, psa: FakePsa
) -> None:
    await configure(api, "connectwise", psa.url)
    await escalate_and_claim(api)
    psa.fail_with = [0, 503]  # the note goes through, the status change fails once
    await run_jobs(fast_settings(settings))
    assert psa.paths() == [f"POST {CW}/notes", f"PATCH {CW}", f"PATCH {CW}"]


async def test_connectwise_gets_the_resolution_once_however_often_the_job_runs(
    api: Api, settings: Settings, psa: FakePsa, db: AsyncSession, redis: Any
) -> None:
    await configure(api, "connectwise", psa.url)
    session, handoff = await escalate_and_claim(api)
    fast = fast_settings(settings)
    await run_jobs(fast)
    escalation_calls = len(psa.calls)
    await resolve(api, session, handoff)
    psa.fail_with = [0, 503]  # the resolution note goes through, the status change fails once
    await run_jobs(fast)
    await run_again(db, redis, fast, "push_to_psa", "resolution")
    resolution_calls = psa.calls[escalation_calls:]
    assert [f"{c.method} {c.path}" for c in resolution_calls] == [
        f"POST {CW}/notes",
        f"PATCH {CW}",
        f"PATCH {CW}",
    ]
    note = resolution_calls[0].body
    assert (note["resolutionFlag"], note["internalAnalysisFlag"]) == (True, False)
    assert note["text"].startswith("Resolved by Sam Senior (fixed) in handoffs:")
    assert "Raised the IKE lifetime" in note["text"]
    assert resolution_calls[-1].body == [{"op": "replace", "path": "status/name", "value": "Resolved"}]
    timeline = (await api.read("jane", session, handoff, "timeline")).json()
    synced = [e["detail"] for e in timeline if e["kind"] == "psa_synced"]
    assert synced == [
        {"phase": "escalation", "vendor": "connectwise", "ticket": "4242"},
        {"phase": "resolution", "vendor": "connectwise", "ticket": "4242"},
    ]


@pytest.mark.parametrize(
    ("vendor", "paths", "check"),
    [
        ("autotask", ["PATCH /ATServicesRest/V1.0/Tickets", "PATCH /ATServicesRest/V1.0/Tickets"],
         lambda calls: calls[0].body["resolution"].startswith("Resolved by Sam Senior")
         and calls[1].body == {"id": 4242, "status": 5}),
        ("halo", ["POST /api/Actions", "POST /api/Tickets"],
         lambda calls: calls[0].body[0]["outcome"] == "Resolution"
         and calls[1].body == [{"id": 4242, "status_id": 9}]),
    ],
)  # fmt: skip
async def test_autotask_and_halo_get_the_resolution_where_they_keep_it(
    api: Api, settings: Settings, psa: FakePsa, vendor: str, paths: list[str], check: Any
) -> None:
    await configure(api, vendor, psa.url)
    session, handoff = await escalate_and_claim(api)
    await run_jobs(fast_settings(settings))
    before = len(psa.calls)
    await resolve(api, session, handoff)
    await run_jobs(fast_settings(settings))
    calls = psa.calls[before:]
    assert [f"{c.method} {c.path}" for c in calls if not c.path.endswith("/token")] == paths
    assert check([c for c in calls if not c.path.endswith("/token")])


async def test_a_rejected_resolution_push_shows_in_the_timeline_and_never_fails_the_resolve(
    api: Api, settings: Settings, psa: FakePsa
) -> None:
    await configure(api, "connectwise", psa.url)
    session, handoff = await escalate_and_claim(api)
    await run_jobs(fast_settings(settings))
    await resolve(api, session, handoff)
    psa.fail_with = [403]
    await run_jobs(fast_settings(settings))
    shown = (await api.read("jane", session, handoff)).json()
    assert (shown["state"], shown["psa_sync_status"]) == ("resolved", "failed")
    timeline = (await api.read("jane", session, handoff, "timeline")).json()
    (failed,) = [e["detail"] for e in timeline if e["kind"] == "psa_failed"]
    assert failed["phase"] == "resolution"
    assert "403" in failed["reason"]


async def test_the_junior_gets_one_resolution_email_however_often_the_job_runs(
    api: Api, settings: Settings, smtp: tuple[Inbox, str], db: AsyncSession, redis: Any
) -> None:
    inbox, url = smtp
    session, handoff = await escalate_and_claim(api)
    fast = fast_settings(settings, smtp_url=url, smtp_from="desk@acme.test")
    await run_jobs(fast)
    escalation_mails = len(inbox.messages)
    await resolve(api, session, handoff)
    await run_jobs(fast)
    await run_again(db, redis, fast, "send_resolution_email", None)
    mails = inbox.messages[escalation_mails:]
    assert [m["To"] for m in mails] == ["jane@acme.test"]
    assert mails[0]["Subject"] == "Resolved by Sam Senior: VPN drops every hour"
    body = mails[0].get_payload(decode=True).decode()
    assert "Hi Jane," in body
    assert "Raised the IKE lifetime to 8 h" in body
    assert f"/sessions/{session['id']}/handoffs/{handoff['id']}" in body
    kinds = [e["detail"].get("kind") for e in (await api.read("jane", session, handoff, "timeline")).json()
             if e["kind"] == "emails_sent"]  # fmt: skip
    assert kinds == ["escalation", "resolved"]


async def test_the_workers_steps_are_in_the_timeline(
    api: Api, settings: Settings, smtp: tuple[Inbox, str], psa: FakePsa
) -> None:
    _, url = smtp
    await configure(api, "connectwise", psa.url)
    session = await api.new_session("jane", psa_ticket_id="4242")
    handoff = await api.hand_off(session["id"])
    await settle(api.client)
    await run_jobs(fast_settings(settings, smtp_url=url))
    kinds = [e["kind"] for e in (await api.read("sam", session, handoff, "timeline")).json()]
    assert kinds[0] == "created"
    assert sorted(kinds[1:]) == ["assessment_ready", "emails_sent", "psa_synced"]
