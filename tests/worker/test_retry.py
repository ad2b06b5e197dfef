"""Failed jobs run again once their cause is fixed: `handoffs outbox --retry-failed`."""

from __future__ import annotations

import subprocess
from collections import Counter
from typing import Any

import httpx2
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoffs.config import Settings
from handoffs.db.models import EmailDelivery, OutboxMessage, SessionHandoff
from handoffs.enums import DeliveryStatus, OutboxStatus
from handoffs.events import EventBus
from handoffs.jobs.worker import FUNCTIONS
from handoffs.outbox.admin import retry_failed
from handoffs.outbox.arq_enqueue import ArqJobQueue
from handoffs.outbox.relay import OutboxRelay
from tests.conftest import Api, settle
from tests.support.fake_anthropic import VALID_OUTPUT, FakeMessagesAPI, message
from tests.support.replicas import run_cli
from tests.support.smtp_server import smtp_server
from tests.support.workers import fast_settings, run_jobs

pytestmark = pytest.mark.usefixtures("clean_redis")

SENIORS = ["ada@acme.test", "olivia@acme.test", "sam@acme.test"]


async def _escalate(api: Api) -> dict[str, Any]:
    session = await api.new_session("jane", psa_ticket_id="12345")
    handoff = await api.hand_off(session["id"], engineer_notes="Rebuilt the profile")
    await settle(api.client)
    return handoff


async def _outbox(db: AsyncSession, topic: str) -> OutboxMessage:
    db.expire_all()
    row = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == topic))
    assert row is not None
    return row


def _relay(sessionmaker: async_sessionmaker[AsyncSession], redis: Any) -> OutboxRelay:
    return OutboxRelay(sessionmaker, EventBus(redis), ArqJobQueue(redis))


async def test_a_failed_assessment_is_made_once_the_ai_service_takes_requests_again(
    api: Api, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, redis: Any
) -> None:
    handoff = await _escalate(api)
    worker_settings = fast_settings(settings, anthropic_api_key="sk-ant-test", smtp_url=None)
    error = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    refused = FakeMessagesAPI(httpx2.Response(401, json=error))
    await run_jobs(worker_settings, extra_ctx={"assessor": refused.assessor()})
    assert (await _outbox(db, "enrich_escalation")).status == OutboxStatus.failed

    retried = await retry_failed(sessionmaker, redis, _relay(sessionmaker, redis))

    assert [topic for _, topic in retried] == ["enrich_escalation"]  # only the failed one
    row = await _outbox(db, "enrich_escalation")
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.dispatched, 0, None)
    handoff_row = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff["id"]))
    assert handoff_row is not None
    assert (handoff_row.assessment_status, handoff_row.assessment_error) == ("pending", None)

    fixed = FakeMessagesAPI(message(VALID_OUTPUT))
    await run_jobs(worker_settings, extra_ctx={"assessor": fixed.assessor()})
    db.expire_all()
    handoff_row = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff["id"]))
    assert handoff_row is not None
    assert handoff_row.assessment_status == "ready"
    assert len(fixed.requests) == 1
    assert (await _outbox(db, "enrich_escalation")).status == OutboxStatus.done
    # Nothing failed is left, so a second retry finds nothing.
    assert await retry_failed(sessionmaker, redis, _relay(sessionmaker, redis)) == []


async def test_failed_mails_go_out_once_the_smtp_server_is_back_and_sent_ones_are_not_resent(
    api: Api, db: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, redis: Any
) -> None:
    handoff = await _escalate(api)
    with smtp_server() as (inbox, url):
        inbox.fail_next = 1  # the first recipient's mail is refused, the other two go out
        await run_jobs(fast_settings(settings, smtp_url=url, job_max_attempts=1))
        assert len(inbox.messages) == 2
        assert (await _outbox(db, "send_escalation_emails")).status == OutboxStatus.failed

        retried = await retry_failed(
            sessionmaker, redis, _relay(sessionmaker, redis), topic="send_escalation_emails"
        )
        assert [topic for _, topic in retried] == ["send_escalation_emails"]
        await run_jobs(fast_settings(settings, smtp_url=url))

    assert Counter(m["To"] for m in inbox.messages) == dict.fromkeys(SENIORS, 1)
    deliveries = (
        await db.scalars(select(EmailDelivery).where(EmailDelivery.handoff_id == handoff["id"]))
    ).all()
    assert {d.status for d in deliveries} == {DeliveryStatus.sent}


async def test_the_cli_retries_failed_jobs_of_one_topic(
    api: Api, db: AsyncSession, settings: Settings, redis: Any, dead_port: int
) -> None:
    await _escalate(api)
    await run_jobs(fast_settings(settings, smtp_url=f"smtp://127.0.0.1:{dead_port}", job_max_attempts=1))
    emails = await _outbox(db, "send_escalation_emails")
    assert emails.status == OutboxStatus.failed

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(settings, "outbox", *args)

    listed = cli()
    assert listed.returncode == 0, listed.stderr
    assert f"failed   send_escalation_emails   {emails.id} attempts=1" in listed.stdout

    nothing = cli("--retry-failed", "--topic", "push_to_psa")
    assert nothing.returncode == 0, nothing.stderr
    assert "no failed jobs to retry" in nothing.stdout

    retried = cli("--retry-failed")
    assert retried.returncode == 0, retried.stderr
    assert f"queued again: send_escalation_emails   {emails.id}" in retried.stdout
    assert "1 failed jobs queued again" in retried.stdout
    assert (await _outbox(db, "send_escalation_emails")).status == OutboxStatus.dispatched

    misuse = cli("--topic", "push_to_psa")
    assert misuse.returncode == 2
    assert "--topic goes with --retry-failed" in misuse.stderr


def test_the_worker_and_the_cli_know_every_job_by_its_one_name() -> None:
    from handoffs.cli import outbox
    from handoffs.enums import JobTopic

    assert sorted(f.__name__ for f in FUNCTIONS) == sorted(JobTopic)
    (topic,) = [p for p in outbox.params if p.name == "topic"]
    assert sorted(topic.type.choices) == sorted(JobTopic)  # type: ignore[attr-defined]
