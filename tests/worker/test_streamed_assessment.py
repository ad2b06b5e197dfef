"""The assessment a senior can watch and trust: streamed live, retried, never lost, priced.

The real anthropic SDK streams from a fake Messages API that sends Server-Sent Events in the
documented shapes (tests/support/fake_anthropic.py); the real arq worker runs the job; the
deltas cross Redis to a subscriber on another API replica.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import OutboxMessage, SessionHandoff, TimelineEntry
from handoffs.enums import OutboxStatus
from handoffs.integrations.ai.prompt import SYSTEM_PROMPT, estimated_prefix_tokens, prefix_is_cacheable
from handoffs.jobs.enrichment import ai_failure
from handoffs.jobs.live_assessment import field_being_written
from handoffs.pricing import DEFAULT_PRICES, cost_usd, parse_prices
from tests.conftest import Api, settle
from tests.support.fake_anthropic import (
    MODEL,
    VALID_OUTPUT,
    FakeMessagesAPI,
    Streamed,
    message,
    overloaded,
)
from tests.support.sse import open_stream, stream_http
from tests.support.workers import fast_settings, run_jobs

pytestmark = pytest.mark.usefixtures("clean_redis")


async def _escalate(api: Api, summary: str = "Outlook is failing to sync email") -> dict[str, Any]:
    session = await api.new_session("jane", psa_ticket_id="12345", problem_summary=summary)
    await api.call(
        "jane", "POST", f"/api/v1/ai-sessions/{session['id']}/messages",
        json={"role": "user", "content": "Outlook says Disconnected"},
    )  # fmt: skip
    handoff = await api.hand_off(session["id"], engineer_notes="Ran the Inbox Repair Tool")
    await settle(api.client)
    return handoff


def _path(handoff: dict[str, Any]) -> str:
    return f"/api/v1/ai-sessions/{handoff['session_id']}/handoffs/{handoff['id']}"


async def _row(db: AsyncSession, handoff: dict[str, Any]) -> SessionHandoff:
    db.expire_all()
    row = await db.scalar(select(SessionHandoff).where(SessionHandoff.id == handoff["id"]))
    assert row is not None
    return row


def _ai(settings: Settings, **changes: Any) -> Settings:
    return fast_settings(settings, anthropic_api_key="sk-ant-test", **changes)


# -- streaming -----------------------------------------------------------------------------


async def test_deltas_reach_a_subscriber_on_another_replica_in_order_and_coalesced(
    api: Api, settings: Settings, stream_replicas: list[str]
) -> None:
    handoff = await _escalate(api)
    # ~1,000 characters in 8-character chunks, 10 ms apart: about 130 chunks over ~1.3 s.
    fake = FakeMessagesAPI(Streamed(message(VALID_OUTPUT), chunk=8, delay=0.01))
    async with stream_http() as http, open_stream(http, stream_replicas[1], api["sam"].token) as sam:
        await sam.ready()
        started = time.monotonic()
        await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()})
        took = time.monotonic() - started
        events = await sam.until(lambda e: e.event == "handoff_assessment_ready", within=15)

    deltas = [e for e in events if e.event == "handoff_assessment_delta"]
    chunks = len(json.dumps(VALID_OUTPUT)) // 8
    assert len(deltas) >= 3, "the assessment did not stream"
    assert len(deltas) < chunks / 3, f"{len(deltas)} deltas for ~{chunks} chunks: not coalesced"
    assert len(deltas) <= took / 0.1 + 2, f"{len(deltas)} deltas in {took:.2f}s: more than one per 100 ms"
    bodies = [d.json for d in deltas]
    assert all(d.id is None for d in deltas), "a live-only delta must not move Last-Event-ID"
    assert [b["seq"] for b in bodies] == sorted({b["seq"] for b in bodies}), "out of order or repeated"
    assert {b["handoff_id"] for b in bodies} == {handoff["id"]}
    # Each partial grows from the one before: the likely cause is a prefix of the final one.
    cause = VALID_OUTPUT["assessment"]["likely_cause"]
    seen = [b["partial"].get("assessment", {}).get("likely_cause", "") for b in bodies]
    assert all(cause.startswith(text) for text in seen)
    assert seen == sorted(seen, key=len)
    assert any(b["field"].startswith("assessment.next_steps") for b in bodies)
    ready = events[-1].json
    assert ready["assessment"]["likely_cause"] == cause
    assert events.index(events[-1]) > events.index(deltas[-1]), "a delta after the final assessment"


async def test_a_client_joining_mid_stream_reads_the_partial_from_the_handoff(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    handoff = await _escalate(api)
    fake = FakeMessagesAPI(Streamed(message(VALID_OUTPUT), chunk=10, delay=0.02))
    worker = asyncio.create_task(run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()}))
    partial: dict[str, Any] | None = None
    async with asyncio.timeout(10):
        while partial is None or not partial["partial"].get("assessment", {}).get("likely_cause"):
            answer = (await api.call("sam", "GET", _path(handoff))).json()
            assert answer["assessment_status"] == "pending"
            partial = answer["ai_assessment_partial"]
            await asyncio.sleep(0.05)
    assert not worker.done()
    assert partial["seq"] >= 1
    assert VALID_OUTPUT["assessment"]["likely_cause"].startswith(
        partial["partial"]["assessment"]["likely_cause"]
    )
    await worker
    answer = (await api.call("sam", "GET", _path(handoff))).json()
    assert answer["assessment_status"] == "ready"
    assert answer["ai_assessment_partial"] is None
    assert answer["assessment_source"] == "anthropic"


async def test_a_stream_cut_in_the_middle_is_retried_and_ends_valid(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    handoff = await _escalate(api)
    fake = FakeMessagesAPI(Streamed(message(VALID_OUTPUT), cut_after=6), message(VALID_OUTPUT))
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()})
    row = await _row(db, handoff)
    assert row.assessment_status == "ready"
    assert row.ai_assessment is not None
    assert row.ai_assessment["source"] == "anthropic"
    assert len(fake.requests) == 2
    assert all(body["stream"] is True for body in fake.requests)
    outbox = await db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "enrich_escalation"))
    assert outbox is not None
    assert (outbox.status, outbox.attempts) == (OutboxStatus.done, 2)


async def test_an_overloaded_error_inside_the_stream_is_retried(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    handoff = await _escalate(api)
    fake = FakeMessagesAPI(Streamed(message(VALID_OUTPUT), error="overloaded_error"), message(VALID_OUTPUT))
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()})
    assert (await _row(db, handoff)).assessment_status == "ready"
    assert len(fake.requests) == 2


def test_field_being_written_is_the_last_leaf() -> None:
    assert field_being_written({}) == ("", "")
    assert field_being_written({"assessment": {"likely_cause": "A corr"}}) == (
        "assessment.likely_cause",
        "A corr",
    )
    snapshot = {"assessment": {"likely_cause": "x", "next_steps": ["one", "tw"]}}
    assert field_being_written(snapshot) == ("assessment.next_steps.1", "tw")
    assert field_being_written({"assessment": {"confidence": 0.7}}) == ("assessment.confidence", "0.7")


# -- failures: Retry-After, the offline stand-in, Retry ---------------------------------------


def _status_error(status: int, headers: dict[str, str]) -> Any:
    import anthropic

    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    response = httpx2.Response(status, headers=headers, request=request, json={"type": "error"})
    cls = anthropic.RateLimitError if status == 429 else anthropic.InternalServerError
    return cls("busy", response=response, body={"type": "error", "error": {"type": "overloaded_error"}})


def test_retry_after_is_honoured_and_capped() -> None:
    assert ai_failure(_status_error(529, {"retry-after": "7"}), cap=300).defer == 7  # type: ignore[union-attr]
    assert ai_failure(_status_error(429, {"retry-after-ms": "1500"}), cap=300).defer == 1.5  # type: ignore[union-attr]
    assert ai_failure(_status_error(429, {"retry-after": "86400"}), cap=60).defer == 60  # type: ignore[union-attr]
    no_hint = ai_failure(_status_error(500, {}), cap=300)
    assert no_hint.defer is None  # type: ignore[union-attr]
    assert no_hint.reason == "the AI service was failing (500)"


async def test_exhausted_retries_store_the_offline_result_and_retry_asks_the_ai_again(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    handoff = await _escalate(api)
    await run_jobs(
        _ai(settings, job_max_attempts=2),
        extra_ctx={"assessor": FakeMessagesAPI(overloaded(retry_after="1")).assessor()},
    )
    answer = (await api.call("sam", "GET", _path(handoff))).json()
    assert answer["assessment_status"] == "failed"
    assert answer["assessment_source"] == "offline"
    assert (
        answer["ai_assessment"]["fallback_reason"]
        == "gave up after 2 attempts: the AI service was overloaded (529)"
    )
    assert answer["ai_assessment"]["likely_cause"]
    session = (await api.call("sam", "GET", f"/api/v1/ai-sessions/{handoff['session_id']}")).json()
    assert session["escalation_package"]["documentation_markdown"]

    # Who may ask again: engineers and up of the account; not a viewer, not another tenant.
    assert (await api.call("victor", "POST", _path(handoff) + "/assessment/retry")).status_code == 403
    assert (await api.call("gus", "POST", _path(handoff) + "/assessment/retry")).status_code == 404
    retried = await api.call("sam", "POST", _path(handoff) + "/assessment/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["assessment_status"] == "pending"
    again = await api.call("ada", "POST", _path(handoff) + "/assessment/retry")
    assert again.status_code == 409
    assert "being made" in again.json()["detail"]
    await settle(api.client)

    fake = FakeMessagesAPI(message(VALID_OUTPUT))
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()})
    answer = (await api.call("sam", "GET", _path(handoff))).json()
    assert (answer["assessment_status"], answer["assessment_source"]) == ("ready", "anthropic")
    assert answer["assessment_error"] is None
    assert answer["ai_assessment"]["likely_cause"] == VALID_OUTPUT["assessment"]["likely_cause"]
    kinds = list(
        await db.scalars(
            select(TimelineEntry.kind)
            .where(TimelineEntry.handoff_id == handoff["id"])
            .order_by(TimelineEntry.created_at)
        )
    )
    assert kinds[-3:] == ["assessment_failed", "assessment_retried", "assessment_ready"]


async def test_retry_refuses_a_parked_or_resolved_handoff(api: Api, settings: Settings) -> None:
    session = await api.new_session("jane")
    parked = await api.hand_off(session["id"], intent="park")
    response = await api.call("sam", "POST", _path(parked) + "/assessment/retry")
    assert response.status_code == 409
    assert "parked" in response.json()["detail"]


# -- caching and cost ------------------------------------------------------------------------


def test_the_fixed_prefix_is_long_enough_to_cache_for_the_default_model() -> None:
    assert estimated_prefix_tokens() >= 1024
    assert prefix_is_cacheable(MODEL)
    assert not prefix_is_cacheable("claude-haiku-4-5")  # 4,096 tokens minimum: no marker sent


async def test_the_second_escalation_reads_the_prefix_from_the_cache_and_costs_less(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    first = await _escalate(api)
    fake = FakeMessagesAPI(message(VALID_OUTPUT), cache=True)
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()})
    second = await _escalate(api, summary="Outlook is failing to sync email again")
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()})

    assert [r["system"][0].get("cache_control") for r in fake.requests] == [{"type": "ephemeral"}] * 2
    assert fake.requests[0]["system"][0]["text"] == SYSTEM_PROMPT
    one = await _row(db, first)
    await db.refresh(two := await _row(db, second))
    await db.refresh(one)
    assert (one.ai_cache_write_tokens, one.ai_cache_read_tokens) == (fake.prefix_tokens, 0)
    assert fake.prefix_tokens > 1024
    assert (two.ai_cache_write_tokens, two.ai_cache_read_tokens) == (0, fake.prefix_tokens)
    prices = parse_prices("")
    for row in (one, two):
        expected = cost_usd(
            prices, MODEL, input_tokens=row.ai_input_tokens, output_tokens=row.ai_output_tokens,
            cache_write_tokens=row.ai_cache_write_tokens, cache_read_tokens=row.ai_cache_read_tokens,
        )  # fmt: skip
        assert float(row.ai_cost_usd) == pytest.approx(expected, abs=1e-6)
    assert float(two.ai_cost_usd) < float(one.ai_cost_usd)
    answer = (await api.call("sam", "GET", _path(second))).json()
    assert answer["ai_cache_read_tokens"] == two.ai_cache_read_tokens
    assert answer["ai_usage"]["cost_usd"] == pytest.approx(float(two.ai_cost_usd))

    figures = (await api.call("ada", "GET", "/api/v1/metrics/handoffs")).json()
    assert figures["ai_cost_usd"] == pytest.approx(float(one.ai_cost_usd) + float(two.ai_cost_usd), abs=1e-6)


async def test_a_model_too_small_to_cache_gets_no_marker(api: Api, settings: Settings) -> None:
    await _escalate(api)
    fake = FakeMessagesAPI(message(VALID_OUTPUT), cache=True)
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor("claude-haiku-4-5")})
    assert "cache_control" not in fake.requests[0]["system"][0]


def test_the_price_table_takes_overrides_and_refuses_nonsense() -> None:
    table = parse_prices(
        '{"claude-sonnet-5": {"input": 2, "output": 10, "cache_write": 2.5, "cache_read": 0.2}}'
    )
    assert table["claude-sonnet"] == DEFAULT_PRICES["claude-sonnet"]
    one_million_in = cost_usd(table, "claude-sonnet-5-5", input_tokens=1_000_000, output_tokens=0,
                              cache_write_tokens=0, cache_read_tokens=0)  # fmt: skip
    assert one_million_in == 2.0  # the longest matching prefix wins
    assert cost_usd(table, "someone-elses-model", input_tokens=5, output_tokens=5, cache_write_tokens=0,
                    cache_read_tokens=0) == 0.0  # fmt: skip
    for bad in ('{"x": {"input": -1, "output": 1, "cache_write": 1, "cache_read": 1}}', "[1]", "{"):
        with pytest.raises(ValueError, match="AI_PRICES"):
            parse_prices(bad)


# -- grounded in past fixes ---------------------------------------------------------------------


async def test_the_prompt_carries_how_the_team_fixed_similar_ones_of_this_account_only(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import update

    fixed = await _escalate(api, summary="Outlook keeps prompting for the password after the update")
    await api.call("sam", "POST", _path(fixed) + "/claim")
    resolution = "Cleared the cached credentials in Windows Credential Manager and re-signed Office."
    resolved = await api.call("sam", "POST", _path(fixed) + "/resolve", json={"resolution": resolution})
    assert resolved.status_code == 200, resolved.text
    # Another tenant fixed the very same problem: never shown to Acme's model.
    g_session = await api.new_session("gus", problem_summary="Outlook keeps prompting for the password")
    g_handoff = await api.hand_off(g_session["id"], who="gus")
    await db.execute(
        update(SessionHandoff)
        .where(SessionHandoff.id == g_handoff["id"])
        .values(state="resolved", outcome="fixed", resolution="GLOBEX-SECRET-FIX",
                resolved_by=api["gus"].id, resolved_at=datetime.now(UTC))
    )  # fmt: skip
    await db.commit()
    await settle(api.client)
    await run_jobs(_ai(settings), extra_ctx={"assessor": FakeMessagesAPI(message(VALID_OUTPUT)).assessor()})

    await _escalate(api, summary="Outlook is prompting for the password again and again")
    fake = FakeMessagesAPI(message(VALID_OUTPUT))
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()})
    (body,) = fake.requests
    prompt = body["messages"][0]["content"]
    assert "Similar escalations this team resolved" in prompt
    assert resolution in prompt
    assert "resolved by Sam" in prompt
    assert "GLOBEX-SECRET-FIX" not in prompt


async def test_with_streaming_off_one_plain_request_stores_the_same_assessment(
    api: Api, db: AsyncSession, settings: Settings, redis: Any
) -> None:
    from handoffs.events import partial_assessment_key

    handoff = await _escalate(api)
    fake = FakeMessagesAPI(message(VALID_OUTPUT))
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor(streaming=False)})
    assert "stream" not in fake.requests[0]
    assert (await _row(db, handoff)).assessment_status == "ready"
    assert await redis.get(partial_assessment_key(handoff["id"]) + ":seq") is None  # no delta was sent


async def test_the_assessment_goes_ahead_of_a_burst_of_other_jobs(
    api: Api, db: AsyncSession, redis: Any
) -> None:
    """arq starts queued jobs by score: each escalation's assessment is queued ahead of the emails,
    PSA notes and chat posts of the escalations before it (what a senior watches arrive first)."""
    from arq.constants import default_queue_name

    for _ in range(3):
        await _escalate(api)
    topics = {str(i): t for i, t in await db.execute(select(OutboxMessage.id, OutboxMessage.topic))}
    queued = [topics[job.decode()] for job in await redis.zrange(default_queue_name, 0, -1)]
    assert queued.count("enrich_escalation") == 3
    assert len(queued) > 3, queued
    assert queued[:3] == ["enrich_escalation"] * 3, queued


async def test_tool_input_that_is_not_json_counts_as_invalid_output(
    api: Api, db: AsyncSession, settings: Settings
) -> None:
    handoff = await _escalate(api)
    broken = message(VALID_OUTPUT)
    broken["content"][0]["input"] = {"assessment": {}}  # replaced below by raw, broken JSON
    fake = FakeMessagesAPI(
        Streamed(broken, broken_json='{"assessment": {"likely_cause": ]]'), message(VALID_OUTPUT)
    )
    await run_jobs(_ai(settings), extra_ctx={"assessor": fake.assessor()})
    assert (await _row(db, handoff)).assessment_status == "ready"
    assert len(fake.requests) == 2
