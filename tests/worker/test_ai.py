"""AI enrichment through the real anthropic SDK (fake HTTP transport) and the real arq worker."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import OutboxMessage, SessionHandoff
from handoffs.enums import OutboxStatus
from handoffs.events import EventBus
from handoffs.integrations.ai import SYSTEM_PROMPT, TOOL_NAME
from tests.conftest import Api, settle
from tests.support.fake_anthropic import (
    MODEL,
    VALID_OUTPUT,
    FakeMessagesAPI,
    FlakyOnceAssessor,
    message,
    overloaded,
)
from tests.support.workers import fast_settings, job_context, run_jobs

pytestmark = pytest.mark.usefixtures("clean_redis")


async def _escalate(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    session = await api.new_session(
        "jane", psa_ticket_id="12345", problem_summary="Outlook is failing to sync email"
    )
    for role, content in [("user", "Outlook says Disconnected"), ("assistant", "Try restarting Outlook")]:
        await api.call(
            "jane",
            "POST",
            f"/api/v1/ai-sessions/{session['id']}/messages",
            json={"role": role, "content": content},
        )
    handoff = await api.hand_off(session["id"], engineer_notes="Ran the Inbox Repair Tool")
    await settle(api.client)
    return session, handoff


async def _handoff(db: AsyncSession, handoff_id: str) -> SessionHandoff:
    db.expire_all()
    row = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff_id))
    assert row is not None
    return row


async def _events(redis: Any, account_id: Any) -> list[dict[str, Any]]:
    events = await EventBus(redis).history_after(account_id, "0-0")
    assert events is not None
    return [{"type": e.type, **e.data, "handoff_id": e.handoff_id} for e in events]


async def test_assessment_is_stored_with_tokens_and_announced(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    session, handoff = await _escalate(api)
    fake = FakeMessagesAPI(message(VALID_OUTPUT, text="Here is my assessment."))
    await run_jobs(
        fast_settings(settings, anthropic_api_key="sk-ant-test"), extra_ctx={"assessor": fake.assessor()}
    )

    row = await _handoff(db, handoff["id"])
    assert row.assessment_status == "ready"
    assert row.ai_assessment is not None
    assert row.ai_assessment["likely_cause"] == VALID_OUTPUT["assessment"]["likely_cause"]
    assert row.ai_assessment["source"] == "anthropic"
    assert (row.ai_model, row.ai_input_tokens, row.ai_output_tokens, row.ai_cache_read_tokens) == (
        MODEL,
        1200,
        350,
        900,
    )
    detail = (await api.call("jane", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
    assert detail["escalation_package"]["summary"] == VALID_OUTPUT["escalation_package"]["summary"]

    # What the SDK sent: the cached system prompt, the forced tool, the transcript.
    (body,) = fake.requests
    assert body["model"] == MODEL
    assert body["system"] == [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}]
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert body["tools"][0]["name"] == TOOL_NAME
    prompt = body["messages"][0]["content"]
    assert "Ticket: #12345" in prompt
    assert "Ran the Inbox Repair Tool" in prompt
    assert "[assistant] Try restarting Outlook" in prompt
    assert fake.headers[0]["authorization"] == "Bearer sk-ant-test"
    assert "anthropic-version" in fake.headers[0]

    events = await _events(redis, api["jane"].account_id)
    ready = [e for e in events if e["type"] == "handoff_assessment_ready"]
    assert len(ready) == 1
    assert ready[0]["handoff_id"] == handoff["id"]
    assert ready[0]["assessment"]["likely_cause"] == VALID_OUTPUT["assessment"]["likely_cause"]


async def test_overloaded_twice_then_success_is_retried_to_ready(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    _, handoff = await _escalate(api)
    fake = FakeMessagesAPI(overloaded(), overloaded(), message(VALID_OUTPUT))
    await run_jobs(
        fast_settings(settings, anthropic_api_key="sk-ant-test"), extra_ctx={"assessor": fake.assessor()}
    )
    row = await _handoff(db, handoff["id"])
    assert row.assessment_status == "ready"
    assert len(fake.requests) == 3
    outbox = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "enrich_escalation"))
    assert outbox is not None
    assert (outbox.status, outbox.attempts) == (OutboxStatus.done, 3)


async def test_overloaded_every_time_fails_with_a_readable_reason(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    _, handoff = await _escalate(api)
    fake = FakeMessagesAPI(overloaded())
    await run_jobs(
        fast_settings(settings, anthropic_api_key="sk-ant-test", job_max_attempts=3),
        extra_ctx={"assessor": fake.assessor()},
    )
    row = await _handoff(db, handoff["id"])
    assert row.assessment_status == "failed"
    assert row.assessment_error is not None
    assert "overloaded (529)" in row.assessment_error
    assert "gave up after 3 attempts" in row.assessment_error
    assert len(fake.requests) == 3
    # The senior is not left empty-handed: the offline result stands in, marked so, with a package.
    assert row.ai_assessment is not None
    assert row.ai_assessment["source"] == "offline"
    assert "overloaded (529)" in row.ai_assessment["fallback_reason"]
    assert "could not be made" in row.ai_assessment["disclaimer"]
    detail = (await api.call("jane", "GET", f"/api/v1/ai-sessions/{handoff['session_id']}")).json()
    assert detail["escalation_package"]["source"] == "offline"
    failed = [
        e for e in await _events(redis, api["jane"].account_id) if e["type"] == "handoff_assessment_failed"
    ]
    assert len(failed) == 1
    assert failed[0]["assessment"]["source"] == "offline"


async def test_malformed_output_is_retried_once_then_failed_with_the_reason(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    _, handoff = await _escalate(api)
    broken = {"assessment": {"likely_cause": "x", "risk": "catastrophic"}, "escalation_package": {}}
    fake = FakeMessagesAPI(message(broken))
    await run_jobs(
        fast_settings(settings, anthropic_api_key="sk-ant-test"), extra_ctx={"assessor": fake.assessor()}
    )
    row = await _handoff(db, handoff["id"])
    assert row.assessment_status == "failed"
    assert len(fake.requests) == 2
    assert row.assessment_error is not None
    assert "record_assessment input was invalid" in row.assessment_error
    response = await api.call(
        "sam", "GET", f"/api/v1/ai-sessions/{handoff['session_id']}/handoffs/{handoff['id']}"
    )
    assert response.json()["assessment_status"] == "failed"
    assert "could not be made" in response.json()["assessment_error"]


async def test_a_text_answer_without_the_tool_counts_as_invalid(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    _, handoff = await _escalate(api)
    fake = FakeMessagesAPI(message(None, text="I think it's DNS."), message(VALID_OUTPUT))
    await run_jobs(
        fast_settings(settings, anthropic_api_key="sk-ant-test"), extra_ctx={"assessor": fake.assessor()}
    )
    assert (await _handoff(db, handoff["id"])).assessment_status == "ready"
    assert len(fake.requests) == 2


async def test_a_refused_request_fails_at_once(api: Api, db: AsyncSession, settings: Settings) -> None:
    import httpx2 as httpx

    _, handoff = await _escalate(api)
    error = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    fake = FakeMessagesAPI(httpx.Response(401, json=error))
    await run_jobs(
        fast_settings(settings, anthropic_api_key="sk-ant-test"), extra_ctx={"assessor": fake.assessor()}
    )
    row = await _handoff(db, handoff["id"])
    assert row.assessment_status == "failed"
    assert len(fake.requests) == 1
    assert "refused the request (401)" in (row.assessment_error or "")


async def test_running_the_job_twice_calls_the_model_once(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    from arq.connections import ArqRedis

    _, handoff = await _escalate(api)
    fake = FakeMessagesAPI(message(VALID_OUTPUT))
    worker_settings = fast_settings(settings, anthropic_api_key="sk-ant-test")
    await run_jobs(worker_settings, extra_ctx={"assessor": fake.assessor()})
    outbox = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "enrich_escalation"))
    assert outbox is not None
    # Enqueue it again under a fresh job id (as a lost-and-resent job would be), and run it.
    arq = ArqRedis(connection_pool=redis.connection_pool)
    await arq.enqueue_job("enrich_escalation", str(outbox.id), _job_id=f"again-{outbox.id}")
    await run_jobs(worker_settings, extra_ctx={"assessor": fake.assessor()})
    assert len(fake.requests) == 1
    assert (await _handoff(db, handoff["id"])).assessment_status == "ready"


async def test_without_an_api_key_the_offline_assessor_says_so(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    _, handoff = await _escalate(api)
    await run_jobs(fast_settings(settings, anthropic_api_key=None))
    row = await _handoff(db, handoff["id"])
    assert row.assessment_status == "ready"
    assert row.ai_assessment is not None
    assert row.ai_assessment["source"] == "offline"
    assert "not an AI assessment" in row.ai_assessment["disclaimer"]
    assert "mail client" in row.ai_assessment["likely_cause"]
    assert "Ran the Inbox Repair Tool" in row.ai_assessment["what_was_tried"]
    assert (row.ai_input_tokens, row.ai_output_tokens) == (0, 0)


@pytest.mark.expect_error_logs  # the runner logs the unexpected error with its traceback
async def test_an_unexpected_error_is_retried_not_dropped(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    _, handoff = await _escalate(api)
    flaky = FlakyOnceAssessor()
    await run_jobs(fast_settings(settings), extra_ctx={"assessor": flaky})
    assert flaky.calls == 2
    assert (await _handoff(db, handoff["id"])).assessment_status == "ready"
    outbox = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "enrich_escalation"))
    assert outbox is not None
    assert (outbox.status, outbox.attempts) == (OutboxStatus.done, 2)


async def test_concurrent_jobs_share_their_reads_and_writes(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    import asyncio

    from handoffs.integrations.ai import AssessmentInput, AssessmentResult, OfflineAssessor
    from handoffs.jobs.context import job_context as context_of
    from handoffs.jobs.enrichment import _load, _store

    class Thinking:
        async def assess(self, data: AssessmentInput, progress: Any = None) -> AssessmentResult:
            await asyncio.sleep(0.05)
            return await OfflineAssessor().assess(data)

    handoffs = [(await _escalate(api))[1] for _ in range(8)]
    worker = await run_jobs(
        fast_settings(settings, worker_batch_wait_ms=200), extra_ctx={"assessor": Thinking()}
    )

    for handoff in handoffs:
        assert (await _handoff(db, handoff["id"])).assessment_status == "ready"
    account_id = handoffs[0]["account_id"]
    ready = [
        e["handoff_id"] for e in await _events(redis, account_id) if e["type"] == "handoff_assessment_ready"
    ]
    assert sorted(ready) == sorted(h["id"] for h in handoffs)  # one event each
    jc = context_of(worker.ctx)
    loads, stores = jc.coalesced(_load), jc.coalesced(_store)
    assert (loads.items, stores.items) == (8, 8)
    # Shared statements, not one per job:
    assert loads.batches < 8
    assert stores.batches < 8


async def test_two_results_for_one_handoff_in_one_batch_store_one(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    import json
    from uuid import UUID

    from uuid_utils.compat import uuid7

    from handoffs.events import HandoffAssessmentReady, event_payload
    from handoffs.jobs.enrichment import _store, _Stored

    session, handoff = await _escalate(api)
    outbox = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "enrich_escalation"))
    assert outbox is not None

    def result(summary: str, attempt: int) -> _Stored:
        return _Stored(
            handoff_id=UUID(handoff["id"]),
            assessment=json.dumps({"likely_cause": summary}),
            status="ready",
            error=None,
            model="m",
            input_tokens=10,
            output_tokens=5,
            cache_read_tokens=0,
            cache_write_tokens=0,
            cost_usd=0.0001,
            package=json.dumps({"summary": summary}),
            event_id=uuid7(),
            timeline_id=uuid7(),
            timeline_kind="assessment_ready",
            timeline_detail=json.dumps({"source": "test"}),
            account_id=outbox.account_id,
            event=json.dumps(
                event_payload(
                    HandoffAssessmentReady(
                        handoff_id=handoff["id"],
                        session_id=session["id"],
                        account_id=str(outbox.account_id),
                        assessment={"likely_cause": summary},
                    )
                )
            ),
            outbox_id=outbox.id,
            outbox_status="done",
            attempt=attempt,
        )

    async with job_context(settings, redis) as jc:
        stored = await _store(jc, [result("first", 1), result("second", 2)])

    assert sorted(stored) == [False, True]  # two racing runs: one stores, the other is told so
    row = await _handoff(db, handoff["id"])
    winner = "first" if stored[0] else "second"
    assert row.ai_assessment == {"likely_cause": winner}
    assert row.ai_input_tokens == 10  # counted once
    detail = (await api.call("jane", "GET", f"/api/v1/ai-sessions/{session['id']}")).json()
    assert detail["escalation_package"] == {"summary": winner}
    db.expire_all()
    events = (await db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "event"))).all()
    assert len([e for e in events if e.payload.get("type") == "handoff_assessment_ready"]) == 1
    await db.refresh(outbox)
    assert outbox.status == OutboxStatus.done
