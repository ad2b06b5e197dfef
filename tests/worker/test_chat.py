"""Chat notifications against a local fake webhook, through the real job, runner and arq worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from arq import Retry
from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handoffs.config import Settings
from handoffs.db.models import ChatDelivery, OutboxMessage, SessionHandoff
from handoffs.enums import DeliveryStatus, JobTopic, OutboxStatus
from handoffs.events import EventBus
from handoffs.integrations.chat import parse_retry_after
from handoffs.jobs.chat import chat_payload, post_to_chat
from handoffs.jobs.runner import TransientError, run_outbox_job
from handoffs.jobs.worker import worker_options
from handoffs.outbox.arq_enqueue import ArqJobQueue
from handoffs.outbox.relay import OutboxRelay
from handoffs.outbox.writer import OutboxWriter
from tests.conftest import Api, settle
from tests.support.fake_chat import SECRET_TOKEN, Answer, FakeChat
from tests.support.workers import fast_settings, run_jobs

pytestmark = pytest.mark.usefixtures("clean_redis", "no_chat_integrations")


async def _configure(api: Api, kind: str, url: str, min_priority: str = "normal", who: str = "ada") -> None:
    body = {"kind": kind, "webhook_url": url, "min_priority": min_priority}
    response = await api.call(who, "PUT", "/api/v1/integrations/chat", json=body)
    assert response.status_code == 200, response.text


async def _escalate(api: Api, priority: str = "high") -> tuple[dict[str, Any], dict[str, Any]]:
    session, handoff = await api.escalated("jane", priority=priority, engineer_notes="Rebuilt the profile")
    await settle(api.client)
    return session, handoff


async def _enqueue(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    handoff: dict[str, Any],
    level: int = 0,
    **extra: Any,
) -> UUID:
    """The ``post_to_chat`` outbox row of ``level``: the escalation's own (the hand-off wrote and
    dispatched it), or one written and dispatched as the ladder does."""
    async with sessionmaker() as db:
        if level == 0 and not extra:
            own = await db.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.topic == JobTopic.post_to_chat,
                    OutboxMessage.payload["handoff_id"].astext == handoff["id"],
                )
            )
            if own is not None:
                return own
        account_id = await db.scalar(
            select(SessionHandoff.account_id).where(SessionHandoff.id == handoff["id"])
        )
        assert account_id is not None
        writer = OutboxWriter(db)
        row_id = writer.add(
            account_id,
            JobTopic.post_to_chat,
            chat_payload(handoff["id"], handoff["session_id"], level, **extra),
        )
        await writer.commit()
    relay = OutboxRelay(sessionmaker, EventBus(redis), ArqJobQueue(redis))
    assert await relay.dispatch([row_id]) == 1
    return row_id


async def _deliveries(db: AsyncSession, handoff_id: str) -> list[ChatDelivery]:
    db.expire_all()
    rows = await db.scalars(select(ChatDelivery).where(ChatDelivery.handoff_id == handoff_id))
    found = list(rows.all())
    db.expunge_all()  # plain values for the test; the rollback then ends the read's transaction
    await db.rollback()
    return found


async def _timeline(api: Api, session: dict[str, Any], handoff: dict[str, Any]) -> list[dict[str, Any]]:
    response = await api.read("sam", session, handoff, "timeline")
    assert response.status_code == 200, response.text
    return list(response.json())


async def _outbox_row(db: AsyncSession, row_id: UUID) -> OutboxMessage:
    db.expire_all()
    row = await db.scalar(select(OutboxMessage).where(OutboxMessage.id == row_id))
    assert row is not None
    db.expunge_all()
    await db.rollback()
    return row


class DirectJobs:
    """The job function called as arq calls it, with the worker's real start-up context."""

    def __init__(self, ctx: dict[str, Any]) -> None:
        self.ctx = ctx

    async def run(self, outbox_id: UUID, attempt: int = 1) -> str:
        return await post_to_chat({**self.ctx, "job_try": attempt}, str(outbox_id))


@pytest.fixture
async def direct(settings: Settings, redis: Redis) -> AsyncIterator[DirectJobs]:
    options = worker_options(fast_settings(settings))
    ctx: dict[str, Any] = {"redis": ArqRedis(connection_pool=redis.connection_pool)}
    await options["on_startup"](ctx)
    try:
        yield DirectJobs(ctx)
    finally:
        await options["on_shutdown"](ctx)


# -- what is posted ------------------------------------------------------------------------------


async def test_slack_gets_one_block_kit_message_with_title_priority_creator_level_and_link(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    db: AsyncSession,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url)
    session, handoff = await _escalate(api, "urgent")
    await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings))
    assert len(chat.posts) == 1
    post = chat.posts[0]
    assert post.path.endswith(SECRET_TOKEN)
    assert post.headers["content-type"] == "application/json"
    body = post.body
    link = f"{settings.public_url}/sessions/{session['id']}/handoffs/{handoff['id']}"
    title = "Escalation from Jane · #12345: Outlook is failing to sync email"
    assert body["text"] == f"New escalation: {title} (urgent priority, from Jane Doe)"
    header, section, actions = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": title}}
    assert [f["text"] for f in section["fields"]] == [
        "*Priority*\nUrgent", "*Escalated by*\nJane Doe", "*Waiting*\njust raised", "*Level*\nNew escalation",
    ]  # fmt: skip
    (button,) = actions["elements"]
    assert (button["type"], button["url"], button["text"]["text"]) == ("button", link, "Open the handoff")
    (delivery,) = await _deliveries(db, handoff["id"])
    assert (delivery.level, delivery.channel, delivery.status, delivery.attempts) == (
        0, "slack", DeliveryStatus.sent, 1,
    )  # fmt: skip
    assert delivery.sent_at is not None
    posted = [e for e in await _timeline(api, session, handoff) if e["kind"] == "chat_posted"]
    assert [e["detail"] for e in posted] == [{"level": 0, "channel": "slack"}]


async def test_teams_gets_a_message_with_one_adaptive_card(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    await _configure(api, "teams", chat.url)
    session, handoff = await _escalate(api, "high")
    await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings))
    (post,) = chat.posts
    assert post.body["type"] == "message"
    (attachment,) = post.body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    stage, title, facts = card["body"]
    assert (stage["type"], stage["text"]) == ("TextBlock", "New escalation")
    assert title["text"] == "Escalation from Jane · #12345: Outlook is failing to sync email"
    assert facts["type"] == "FactSet"
    assert {f["title"]: f["value"] for f in facts["facts"]} == {
        "Priority": "High", "Escalated by": "Jane Doe", "Waiting": "just raised",
    }  # fmt: skip
    (action,) = card["actions"]
    assert action == {
        "type": "Action.OpenUrl",
        "title": "Open the handoff",
        "url": f"{settings.public_url}/sessions/{session['id']}/handoffs/{handoff['id']}",
    }


async def test_people_text_is_escaped_for_slack_and_left_plain_for_teams(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    await _configure(api, "slack", chat.url)
    session = await api.new_session("jane", problem_summary="Printer <HP> & scanner > 1 <!channel>")
    handoff = await api.hand_off(session["id"], priority="high")
    await settle(api.client)
    await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings))
    text_fallback = chat.posts[0].body["text"]
    assert "Printer &lt;HP&gt; &amp; scanner &gt; 1 &lt;!channel&gt;" in text_fallback
    assert "<!channel>" not in text_fallback  # no @channel ping smuggled in by a problem summary

    await _configure(api, "teams", chat.url)
    await _enqueue(sessionmaker, redis, handoff, level=1, notify="admins")
    await run_jobs(fast_settings(settings))
    card = chat.posts[1].body["attachments"][0]["content"]
    assert "Printer <HP> & scanner > 1 <!channel>" in card["body"][1]["text"]


async def test_a_ladder_level_says_stepped_up_and_posts_whatever_the_minimum(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    db: AsyncSession,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url, min_priority="urgent")
    _, handoff = await _escalate(api, "normal")
    await _enqueue(sessionmaker, redis, handoff, level=0)
    await _enqueue(sessionmaker, redis, handoff, level=2, notify="admins")
    await run_jobs(fast_settings(settings))
    (post,) = chat.posts  # level 0 was below the minimum; the ladder's level 2 always posts
    assert post.body["text"].startswith("Stepped up to admins: Escalation from Jane")
    assert post.body["blocks"][1]["fields"][3]["text"] == "*Level*\nStepped up to admins"
    assert [(d.level, d.status) for d in await _deliveries(db, handoff["id"])] == [(2, DeliveryStatus.sent)]


async def test_a_ladder_level_without_notify_reads_the_account_policy(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    engine: AsyncEngine,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url)
    _, handoff = await _escalate(api)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO escalation_policies (id, account_id, levels, created_at, updated_at) "
                "VALUES (gen_random_uuid(), :account, CAST(:levels AS jsonb), now(), now()) "
                "ON CONFLICT (account_id) DO UPDATE SET levels = excluded.levels"
            ),
            {"account": api["ada"].account_id,
             "levels": '[{"after_seconds": 600, "notify": "seniors"}, {"after_seconds": 1800, "notify": "owners"}]'},
        )  # fmt: skip
    try:
        await _enqueue(sessionmaker, redis, handoff, level=1)
        await _enqueue(sessionmaker, redis, handoff, level=2)
        await run_jobs(fast_settings(settings))
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM escalation_policies"))
    stages = sorted(p.body["blocks"][1]["fields"][3]["text"] for p in chat.posts)
    # The escalation's own message (level 0, from the hand-off) and the two ladder levels.
    assert stages == [
        "*Level*\nNew escalation", "*Level*\nStepped up to owners", "*Level*\nStepped up to the seniors",
    ]  # fmt: skip


async def test_below_the_minimum_priority_the_escalation_is_not_posted(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    db: AsyncSession, direct: DirectJobs,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url, min_priority="high")
    _, handoff = await _escalate(api, "normal")
    row_id = await _enqueue(sessionmaker, redis, handoff)
    outcome = await direct.run(row_id)
    assert outcome == "normal priority is below the account's chat minimum (high): not posted"
    assert chat.posts == []
    assert await _deliveries(db, handoff["id"]) == []
    assert (await _outbox_row(db, row_id)).status == OutboxStatus.done


@pytest.mark.parametrize("configured", [None, "none"])
async def test_without_a_chat_integration_nothing_is_posted(
    api: Api, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    direct: DirectJobs, configured: str | None,
) -> None:  # fmt: skip
    if configured:
        response = await api.call("ada", "PUT", "/api/v1/integrations/chat", json={"kind": configured})
        assert response.status_code == 200, response.text
    _, handoff = await _escalate(api, "urgent")
    row_id = await _enqueue(sessionmaker, redis, handoff)
    assert await direct.run(row_id) == "no chat integration for this account"
    assert chat.posts == []


# -- once, and retried ---------------------------------------------------------------------------


async def test_a_429_defers_the_retry_by_its_retry_after_then_posts_once(
    api: Api, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, db: AsyncSession,
    direct: DirectJobs,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url)
    _, handoff = await _escalate(api)
    row_id = await _enqueue(sessionmaker, redis, handoff)
    chat.script = [Answer(429, {"Retry-After": "7"}, "rate_limited")]
    with pytest.raises(Retry) as retry:
        await direct.run(row_id, attempt=1)
    assert retry.value.defer_score == 7000  # what the service asked, not our 0.05-0.2 s backoff
    (delivery,) = await _deliveries(db, handoff["id"])
    assert (delivery.status, delivery.last_error) == (
        DeliveryStatus.failed, "127.0.0.1 is rate limiting us (429); asked to wait 7 s",
    )  # fmt: skip
    assert await direct.run(row_id, attempt=2) == "level 0 posted to slack"
    assert len(chat.posts) == 2
    (delivery,) = await _deliveries(db, handoff["id"])
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.sent, 2, None)
    assert await direct.run(row_id, attempt=3) == "already done"
    assert len(chat.posts) == 2


async def test_a_429_with_an_http_date_is_waited_in_the_worker_and_posted_once(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url)
    session, handoff = await _escalate(api)
    soon = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    chat.script = [Answer(429, {"Retry-After": soon})]
    await _enqueue(sessionmaker, redis, handoff)
    with caplog.at_level(logging.INFO, logger="handoffs.jobs"):
        await run_jobs(fast_settings(settings))
    assert len(chat.posts) == 2
    assert chat.posts[1].at - chat.posts[0].at >= 0.9
    # The runner's own words: the wait came from the header (fast_settings backs off 0.2 s at most).
    (retrying,) = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert "rate limiting us (429)" in retrying
    assert float(retrying.rsplit("retrying in ", 1)[1].rstrip("s")) >= 1.0
    posted = [e for e in await _timeline(api, session, handoff) if e["kind"].startswith("chat_")]
    assert [e["kind"] for e in posted] == ["chat_posted"]


def test_retry_after_reads_seconds_or_a_date_and_is_capped() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30", now=now) == 30
    assert parse_retry_after("Wed, 01 Jan 2025 12:01:30 GMT", now=now) == 90
    assert parse_retry_after("86400", now=now) == 300
    assert (
        parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 1
    )  # in the past: soon, not a hot loop
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


async def test_the_runner_defers_a_transient_error_by_what_it_asks(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    direct: DirectJobs,
    db: AsyncSession,
) -> None:
    _, handoff = await _escalate(api)
    row_id = await _enqueue(sessionmaker, redis, handoff)

    async def asks_for_42_s(*_: Any) -> str:
        raise TransientError("busy", defer=42)

    async def nothing_to_undo(*_: Any) -> None:
        return None

    with pytest.raises(Retry) as retry:
        await run_outbox_job({**direct.ctx, "job_try": 1}, str(row_id), asks_for_42_s, nothing_to_undo)
    assert retry.value.defer_score == 42_000
    row = await _outbox_row(db, row_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.dispatched, 1, "busy")


async def test_running_and_enqueueing_the_job_again_still_posts_once(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    db: AsyncSession,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url)
    _, handoff = await _escalate(api)
    row_id = await _enqueue(sessionmaker, redis, handoff)
    worker_settings = fast_settings(settings)
    arq = ArqRedis(connection_pool=redis.connection_pool)
    # The same job id is refused by arq while it is queued; another id runs.
    assert await arq.enqueue_job("post_to_chat", str(row_id), _job_id=str(row_id)) is None
    await run_jobs(worker_settings)
    await arq.enqueue_job("post_to_chat", str(row_id), _job_id=f"again-{row_id}")
    await run_jobs(worker_settings)
    # Even with its outbox row forgotten (set back to pending), the delivery row stops a second post.
    async with sessionmaker() as s:
        await s.execute(text("UPDATE outbox SET status = 'pending' WHERE id = :id"), {"id": row_id})
        await s.commit()
    await arq.enqueue_job("post_to_chat", str(row_id), _job_id=f"third-{row_id}")
    await run_jobs(worker_settings)
    assert len(chat.posts) == 1
    (delivery,) = await _deliveries(db, handoff["id"])
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.sent, 1)


async def test_two_runs_at_once_post_once_and_the_other_comes_back_when_the_claim_would_be_stale(
    api: Api, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, direct: DirectJobs,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url)
    _, handoff = await _escalate(api)
    row_id = await _enqueue(sessionmaker, redis, handoff)
    chat.delay = 0.5  # the first post is still in flight when the second run looks
    first = asyncio.create_task(direct.run(row_id))
    await asyncio.sleep(0.2)
    with pytest.raises(Retry) as retry:
        await direct.run(row_id)
    assert 590_000 <= retry.value.defer_score <= 602_000  # until the 10-minute claim would be stale
    assert await first == "level 0 posted to slack"
    assert await direct.run(row_id, attempt=2) == "already done"
    assert len(chat.posts) == 1


async def test_a_500_is_retried_and_then_posted(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    db: AsyncSession,
) -> None:  # fmt: skip
    await _configure(api, "teams", chat.url)
    session, handoff = await _escalate(api)
    chat.script = [Answer(500, body="Internal error"), Answer(503)]
    row_id = await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings))
    assert len(chat.posts) == 3
    (delivery,) = await _deliveries(db, handoff["id"])
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.sent, 3)
    row = await _outbox_row(db, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.done, 3)
    kinds = [e["kind"] for e in await _timeline(api, session, handoff) if e["kind"].startswith("chat_")]
    assert kinds == ["chat_posted"]


async def test_a_404_gives_up_at_once_and_the_timeline_says_why_while_the_handoff_stays_open(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    db: AsyncSession,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url)
    session, handoff = await _escalate(api)
    chat.script = [Answer(404, body="no_service")]
    row_id = await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings))
    assert len(chat.posts) == 1
    reason = "127.0.0.1 does not know this webhook (deleted, or the URL is wrong) (404)"
    (delivery,) = await _deliveries(db, handoff["id"])
    # What the service said stays with the delivery row (and the log); engineers read our words.
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.failed, f"{reason}: no_service")
    row = await _outbox_row(db, row_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.failed, 1, reason)
    (failed,) = [e for e in await _timeline(api, session, handoff) if e["kind"].startswith("chat_")]
    assert failed["kind"] == "chat_failed"
    assert failed["detail"] == {"level": 0, "channel": "slack", "reason": reason}
    shown = (await api.read("sam", session, handoff)).json()
    assert (shown["state"], shown["escalation_level"]) == ("open", 0)
    claimed = await api.act("sam", session, handoff, "claim")
    assert claimed.status_code == 200, claimed.text


async def test_an_unreachable_webhook_is_retried_then_fails_with_a_readable_reason(
    api: Api, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, db: AsyncSession,
    dead_port: int,
) -> None:  # fmt: skip
    await _configure(api, "slack", f"http://127.0.0.1:{dead_port}/services/T/B/{SECRET_TOKEN}")
    session, handoff = await _escalate(api)
    await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings, job_max_attempts=3))
    (delivery,) = await _deliveries(db, handoff["id"])
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.failed, 3)
    assert delivery.last_error == "could not connect to 127.0.0.1 (connection refused or no route)"
    (failed,) = [e for e in await _timeline(api, session, handoff) if e["kind"] == "chat_failed"]
    assert failed["detail"]["reason"] == f"gave up after 3 attempts: {delivery.last_error}"


async def test_the_webhook_url_never_shows_in_logs_timeline_rows_or_answers(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    await _configure(api, "slack", chat.url)
    session, handoff = await _escalate(api)
    chat.script = [Answer(500, body=f"echoing {chat.url}"), Answer(403, body=f"no: {chat.url}")]
    await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings))
    assert len(chat.posts) == 2
    assert "HTTP Request: POST http://127.0.0.1" in caplog.text  # httpx did log each post, without its path
    assert SECRET_TOKEN not in caplog.text
    timeline = await _timeline(api, session, handoff)
    assert [e["kind"] for e in timeline if e["kind"].startswith("chat_")] == ["chat_failed"]
    assert SECRET_TOKEN not in str(timeline)
    answers = [
        await api.call("ada", "GET", "/api/v1/integrations/chat"),
        await api.call("ada", "POST", "/api/v1/integrations/chat/test"),
        await api.read("sam", session, handoff),
    ]
    assert all(SECRET_TOKEN not in a.text for a in answers)
    async with engine.connect() as conn:
        stored = (
            (
                await conn.execute(
                    text(
                        "SELECT coalesce(string_agg(last_error, ' '), '') FROM chat_deliveries "
                        "UNION ALL SELECT coalesce(string_agg(last_error, ' '), '') FROM outbox "
                        "UNION ALL SELECT coalesce(string_agg(detail::text, ' '), '') FROM handoff_timeline"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert "no: http://127.0.0.1/…" in " ".join(stored)  # the service's words kept, its echo of the URL cut
    assert all(SECRET_TOKEN not in s for s in stored)


async def test_another_accounts_handoff_is_not_posted_with_this_accounts_webhook(
    api: Api, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    direct: DirectJobs, db: AsyncSession,
) -> None:  # fmt: skip
    await _configure(api, "slack", chat.url, who="gina")  # Globex's channel
    _, handoff = await _escalate(api)  # an Acme handoff
    async with sessionmaker() as s:
        writer = OutboxWriter(s)
        row_id = writer.add(
            api["gina"].account_id,
            JobTopic.post_to_chat,
            chat_payload(handoff["id"], handoff["session_id"], 0),
        )
        await writer.commit()
    assert await direct.run(row_id) == "handoff is gone"
    assert chat.posts == []
    assert await _deliveries(db, handoff["id"]) == []


def test_the_payload_helper_names_what_the_job_reads() -> None:
    payload = chat_payload(UUID(int=1), UUID(int=2), 3, notify="owners")
    assert payload == {
        "handoff_id": str(UUID(int=1)),
        "session_id": str(UUID(int=2)),
        "level": 3,
        "notify": "owners",
    }


# -- addresses (issue #14) -------------------------------------------------------------------------


async def test_a_webhook_name_that_resolves_to_loopback_is_refused_and_nothing_is_posted(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    db: AsyncSession,
) -> None:  # fmt: skip
    port = chat.base_url.rsplit(":", 1)[1]
    await _configure(api, "slack", f"https://localhost:{port}/services/T/B/{SECRET_TOKEN}")
    session, handoff = await _escalate(api)
    await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings, outbound_allowed_hosts=""))  # the production policy
    assert chat.posts == []
    reason = "the webhook address is not allowed (a loopback address)"
    (delivery,) = await _deliveries(db, handoff["id"])
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.failed, 1, reason)
    (failed,) = [e for e in await _timeline(api, session, handoff) if e["kind"] == "chat_failed"]
    assert failed["detail"]["reason"] == reason


async def test_a_redirect_from_the_webhook_is_not_followed_and_its_page_stays_off_the_timeline(
    api: Api, settings: Settings, chat: FakeChat, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis,
    db: AsyncSession,
) -> None:  # fmt: skip
    await _configure(api, "teams", chat.url)
    session, handoff = await _escalate(api)
    chat.script = [Answer(307, headers={"Location": f"{chat.base_url}/internal"}, body="db_password=hunter2")]
    await _enqueue(sessionmaker, redis, handoff)
    await run_jobs(fast_settings(settings))
    assert [p.path for p in chat.posts] == [chat.url.removeprefix(chat.base_url)]
    reason = "127.0.0.1 answered with a redirect (307), which is not followed"
    (delivery,) = await _deliveries(db, handoff["id"])
    assert delivery.last_error == f"{reason}: db_password=hunter2"
    timeline = await _timeline(api, session, handoff)
    (failed,) = [e for e in timeline if e["kind"] == "chat_failed"]
    assert failed["detail"]["reason"] == reason
    assert "hunter2" not in str(timeline)
