"""Escalation emails over real SMTP (aiosmtpd): one per recipient, however often the job runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import EmailDelivery, OutboxMessage
from handoffs.enums import DeliveryStatus, OutboxStatus
from tests.conftest import Api, settle
from tests.support.smtp_server import Inbox, smtp_server
from tests.support.workers import fast_settings, run_jobs

pytestmark = pytest.mark.usefixtures("clean_redis")
SENIORS = ("sam@acme.test", "ada@acme.test", "olivia@acme.test")


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    with smtp_server() as server:
        yield server


async def _escalate(api: Api) -> dict[str, Any]:
    session = await api.new_session(
        "jane", psa_ticket_id="12345", problem_summary="Outlook is failing to sync email for finance"
    )
    handoff = await api.hand_off(session["id"], engineer_notes="Rebuilt the profile", priority="high")
    await settle(api.client)
    return handoff


async def test_each_senior_gets_one_mail_with_the_escalation(
    api: Api, settings: Settings, smtp: tuple[Inbox, str]
) -> None:
    inbox, url = smtp
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings, smtp_url=url, smtp_from="desk@acme.test"))
    assert sorted(m["To"] for m in inbox.messages) == sorted(SENIORS)
    assert inbox.connections == 1  # one SMTP connection carried all of the job's mails
    mail = inbox.to("sam@acme.test")[0]
    assert mail["Subject"] == "Escalation from Jane · #12345: Outlook is failing to sync email for finance"
    assert mail["From"] == "desk@acme.test"
    body = mail.get_payload(decode=True).decode()
    assert "Hi Sam," in body
    assert "Rebuilt the profile" in body
    assert "Ticket: #12345" in body
    assert f"/sessions/{handoff['session_id']}/handoffs/{handoff['id']}" in body


async def test_running_and_enqueueing_the_job_twice_still_mails_once(
    api: Api, settings: Settings, smtp: tuple[Inbox, str], db: AsyncSession, redis: Any
) -> None:
    inbox, url = smtp
    await _escalate(api)
    worker_settings = fast_settings(settings, smtp_url=url)
    row = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "send_escalation_emails"))
    assert row is not None
    arq = ArqRedis(connection_pool=redis.connection_pool)
    # A duplicate enqueue under the same job id is refused by arq; under another id it runs.
    assert await arq.enqueue_job("send_escalation_emails", str(row.id), _job_id=str(row.id)) is None
    await arq.enqueue_job("send_escalation_emails", str(row.id), _job_id=f"dup-{row.id}")
    await run_jobs(worker_settings)
    await arq.enqueue_job("send_escalation_emails", str(row.id), _job_id=f"again-{row.id}")
    await run_jobs(worker_settings)
    assert Counter(m["To"] for m in inbox.messages) == dict.fromkeys(SENIORS, 1)


async def test_a_temporary_smtp_failure_is_retried(
    api: Api, settings: Settings, smtp: tuple[Inbox, str], db: AsyncSession
) -> None:
    inbox, url = smtp
    inbox.fail_next = 2
    await _escalate(api)
    await run_jobs(fast_settings(settings, smtp_url=url))
    assert Counter(m["To"] for m in inbox.messages) == dict.fromkeys(SENIORS, 1)
    deliveries = (await db.scalars(select(EmailDelivery))).all()
    assert {d.status for d in deliveries} == {DeliveryStatus.sent}
    assert sum(d.attempts for d in deliveries) == len(SENIORS) + 2


async def test_an_unreachable_smtp_server_is_retried_then_each_delivery_says_why(
    api: Api, settings: Settings, db: AsyncSession, dead_port: int
) -> None:
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings, smtp_url=f"smtp://127.0.0.1:{dead_port}", job_max_attempts=3))
    deliveries = (
        await db.scalars(select(EmailDelivery).where(EmailDelivery.handoff_id == handoff["id"]))
    ).all()
    assert sorted(d.email for d in deliveries) == sorted(SENIORS)
    assert {d.status for d in deliveries} == {DeliveryStatus.failed}
    assert {d.attempts for d in deliveries} == {3}
    assert all("connect" in (d.last_error or "").lower() for d in deliveries), [
        d.last_error for d in deliveries
    ]
    row = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "send_escalation_emails"))
    assert row is not None
    assert (row.status, row.attempts) == (OutboxStatus.failed, 3)


async def test_without_smtp_deliveries_are_recorded_as_skipped(
    api: Api, settings: Settings, db: AsyncSession
) -> None:
    handoff = await _escalate(api)
    await run_jobs(fast_settings(settings, smtp_url=None))
    deliveries = (
        await db.scalars(select(EmailDelivery).where(EmailDelivery.handoff_id == handoff["id"]))
    ).all()
    assert sorted(d.email for d in deliveries) == sorted(SENIORS)
    assert {d.status for d in deliveries} == {DeliveryStatus.skipped}
    assert {d.last_error for d in deliveries} == {"SMTP_URL is not configured"}


async def test_a_targeted_escalation_mails_only_the_target(
    api: Api, settings: Settings, smtp: tuple[Inbox, str]
) -> None:
    inbox, url = smtp
    session = await api.new_session("jane")
    await api.hand_off(session["id"], target_user_id=str(api["ada"].id))
    await settle(api.client)
    await run_jobs(fast_settings(settings, smtp_url=url))
    assert [m["To"] for m in inbox.messages] == ["ada@acme.test"]


async def test_park_sends_no_mail(api: Api, settings: Settings, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    session = await api.new_session("jane")
    await api.hand_off(session["id"], intent="park")
    await settle(api.client)
    await run_jobs(fast_settings(settings, smtp_url=url))
    assert inbox.messages == []
