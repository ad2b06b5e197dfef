"""Job: post a handoff's chat notification (Slack or Teams) once per (handoff, level, channel).

Level 0 is the escalation itself (posted at or above the account's
``min_priority``); level N is step N of the unclaimed ladder (always posted:
the ladder already skips low priority). A ``chat_deliveries`` row, unique per
(handoff, level, channel), is claimed with a conditional UPDATE before posting
and marked sent after, with the ``chat_posted`` timeline entry in the same
transaction; a retried or duplicated job finds it sent and posts nothing. As
with email, the window left is a crash between the chat service accepting the
post and the row being marked sent: the claim goes stale after
``STALE_SENDING`` and the message is posted again then.

A chat failure never touches the handoff: it shows as the delivery's
``last_error`` (with what the service answered) and, once the job gives up, a
``chat_failed`` timeline entry (our words only: the host, the status, what it
means; engineers read it).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from handoffs.db.encryption import UnreadableSecret
from handoffs.db.models import (
    AISession,
    ChatDelivery,
    ChatIntegration,
    SessionHandoff,
    User,
)
from handoffs.domain.escalation_policy.service import account_policy
from handoffs.domain.handoffs.timeline import record
from handoffs.domain.notifications.titles import escalation_title
from handoffs.enums import DeliveryStatus, Priority, TimelineKind
from handoffs.integrations.chat import ChatError, ChatKind, ChatMessage, payload_for, post_message
from handoffs.integrations.chat.messages import stage_words, waiting_words
from handoffs.jobs.context import JobContext
from handoffs.jobs.runner import OutboxJob, PermanentError, TransientError, run_outbox_job

log = logging.getLogger(__name__)

#: A delivery left ``sending`` this long has no live run behind it (a job is cancelled at
#: ``JOB_TIMEOUT_SECONDS``): another run may claim it and post.
STALE_SENDING = timedelta(minutes=10)
#: Per post; the worker's shared client would otherwise wait 30 s.
POST_TIMEOUT_SECONDS = 15.0

_PRIORITY_ORDER = list(Priority)


def chat_payload(
    handoff_id: UUID | str, session_id: UUID | str, level: int, *, notify: str | None = None
) -> dict[str, Any]:
    """The outbox payload of a ``post_to_chat`` row. ``notify`` (a ladder level's
    ``seniors``/``admins``/``owners``) words the message; without it the job reads the policy."""
    payload: dict[str, Any] = {
        "handoff_id": str(handoff_id),
        "session_id": str(session_id),
        "level": int(level),
    }
    if notify is not None:
        payload["notify"] = notify
    return payload


async def post_to_chat(ctx: dict[str, Any], outbox_id: str) -> str:
    """Post the escalation (level 0) or a ladder step (level N) to the account's chat channel."""
    return await run_outbox_job(ctx, outbox_id, _post, _give_up)


def handoff_link(public_url: str, session_id: UUID, handoff_id: UUID) -> str:
    return f"{public_url}/sessions/{session_id}/handoffs/{handoff_id}"


async def _post(jc: JobContext, row: OutboxJob, attempt: int, _loaded: object) -> str:
    handoff_id = UUID(row.payload["handoff_id"])
    level = int(row.payload.get("level", 0))
    now = datetime.now(UTC)
    async with jc.sessionmaker() as db:
        found = (
            await db.execute(
                select(SessionHandoff, AISession, User)
                .join(AISession, AISession.id == SessionHandoff.session_id)
                .join(User, User.id == SessionHandoff.created_by)
                .where(SessionHandoff.id == handoff_id, SessionHandoff.account_id == row.account_id)
            )
        ).first()
        if found is None:
            return "handoff is gone"
        handoff, session, creator = found
        try:
            integration = await db.scalar(
                select(ChatIntegration).where(ChatIntegration.account_id == row.account_id)
            )
        except UnreadableSecret as exc:  # a wrong or missing DATA_ENCRYPTION_KEY: an operator's to fix
            raise PermanentError(str(exc)) from None
        if integration is None or integration.kind == ChatKind.none or not integration.webhook_url:
            return "no chat integration for this account"
        if level == 0 and _PRIORITY_ORDER.index(handoff.priority) < _PRIORITY_ORDER.index(
            integration.min_priority
        ):
            return (
                f"{handoff.priority.value} priority is below the account's chat minimum "
                f"({integration.min_priority.value}): not posted"
            )
        channel, url = integration.kind, integration.webhook_url
        notify = row.payload.get("notify") or (await _ladder_notify(db, row.account_id, level))
        await db.execute(
            insert(ChatDelivery)
            .values(account_id=row.account_id, handoff_id=handoff_id, level=level, channel=channel,
                    status=DeliveryStatus.pending, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["handoff_id", "level", "channel"])
        )  # fmt: skip
        claimed = await db.scalar(
            update(ChatDelivery)
            .where(
                *_key(handoff_id, level, channel),
                or_(
                    ChatDelivery.status.in_([DeliveryStatus.pending, DeliveryStatus.failed]),
                    (ChatDelivery.status == DeliveryStatus.sending)
                    & (ChatDelivery.updated_at < now - STALE_SENDING),
                ),
            )
            .values(status=DeliveryStatus.sending, attempts=ChatDelivery.attempts + 1, updated_at=now)
            .returning(ChatDelivery.id)
        )
        held = None
        if claimed is None:
            held = (
                await db.execute(
                    select(ChatDelivery.status, ChatDelivery.updated_at).where(
                        *_key(handoff_id, level, channel)
                    )
                )
            ).one()
        await db.commit()
    if held is not None:
        status, since = held
        if status == DeliveryStatus.sending:
            # Another run holds the claim (a duplicate job, or one that died mid-post): look
            # again once the claim would be stale, when it is either sent or ours to take.
            wait = max(1.0, (since + STALE_SENDING - now).total_seconds() + 1)
            raise TransientError(f"level {level} is being posted to {channel} by another run", defer=wait)
        return f"level {level} already {status.value} to {channel}"

    unclaimed_since = max(handoff.created_at, handoff.released_at or handoff.created_at)
    message = ChatMessage(
        title=escalation_title(creator.first_name, session.psa_ticket_id, session.problem_summary),
        priority=handoff.priority.value,
        creator=creator.name,
        waiting=waiting_words((now - unclaimed_since).total_seconds()),
        stage=stage_words(level, notify),
        link=handoff_link(jc.settings.public_url, session.id, handoff.id),
    )
    try:
        await post_message(jc.http, url, payload_for(channel, message), timeout_seconds=POST_TIMEOUT_SECONDS)
    except ChatError as exc:
        # What the service said stays in the log and the delivery row; the reason (our words)
        # goes on, to the outbox row and, once the job gives up, the timeline engineers read.
        if exc.detail != exc.reason:  # the runner logs the reason itself
            log.warning("chat message for handoff %s level %d: %s", handoff_id, level, exc.detail)
        await _mark(jc, row.account_id, handoff_id, level, channel, DeliveryStatus.failed, error=exc.detail)
        if exc.transient:
            raise TransientError(exc.reason, defer=exc.retry_after) from None
        raise PermanentError(exc.reason) from None
    await _mark(jc, row.account_id, handoff_id, level, channel, DeliveryStatus.sent)
    return f"level {level} posted to {channel}"


def _key(handoff_id: UUID, level: int, channel: str) -> tuple[Any, ...]:
    return (
        ChatDelivery.handoff_id == handoff_id,
        ChatDelivery.level == level,
        ChatDelivery.channel == channel,
    )


async def _ladder_notify(db: Any, account_id: UUID, level: int) -> str | None:
    """Whom ladder level ``level`` tells, from the account's policy (None: unknown, the message says less)."""
    if level <= 0:
        return None
    policy = await account_policy(db, account_id)
    if policy.is_default or level > len(policy.levels):
        return None
    return policy.levels[level - 1].notify


async def _mark(
    jc: JobContext,
    account_id: UUID,
    handoff_id: UUID,
    level: int,
    channel: str,
    status: DeliveryStatus,
    *,
    error: str | None = None,
) -> None:
    """Record a delivery's outcome; a sent one writes ``chat_posted`` in the same transaction."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"status": status, "updated_at": now, "last_error": error}
    if status == DeliveryStatus.sent:
        values["sent_at"] = now
    async with jc.sessionmaker() as db:
        await db.execute(update(ChatDelivery).where(*_key(handoff_id, level, channel)).values(**values))
        if status == DeliveryStatus.sent:
            await record(
                db, account_id=account_id, handoff_id=handoff_id, kind=TimelineKind.chat_posted, actor_id=None,
                detail={"level": level, "channel": channel}, at=now,
            )  # fmt: skip
        await db.commit()


async def _give_up(jc: JobContext, row: OutboxJob, reason: str) -> None:
    """The job gave up: its unsent deliveries are failed, and the timeline says why (never the URL:
    ``reason`` is built from our own words and the host)."""
    handoff_id = UUID(row.payload["handoff_id"])
    level = int(row.payload.get("level", 0))
    now = datetime.now(UTC)
    async with jc.sessionmaker() as db:
        exists = await db.scalar(
            select(SessionHandoff.id).where(
                SessionHandoff.id == handoff_id, SessionHandoff.account_id == row.account_id
            )
        )
        if exists is None:
            return
        deliveries = (
            await db.execute(
                select(ChatDelivery.channel, ChatDelivery.status).where(
                    ChatDelivery.handoff_id == handoff_id, ChatDelivery.level == level
                )
            )
        ).all()
        if any(status == DeliveryStatus.sent for _, status in deliveries):
            return  # another run posted it after all: nothing failed
        await db.execute(
            update(ChatDelivery)
            .where(ChatDelivery.handoff_id == handoff_id, ChatDelivery.level == level)
            # An attempt's own error (with the service's words) is kept over the give-up reason.
            .values(
                status=DeliveryStatus.failed,
                last_error=func.coalesce(ChatDelivery.last_error, reason[:1000]),
                updated_at=now,
            )
        )
        channel = deliveries[0][0] if deliveries else None
        await record(
            db, account_id=row.account_id, handoff_id=handoff_id, kind=TimelineKind.chat_failed, actor_id=None,
            detail={"level": level, "channel": channel, "reason": reason[:500]}, at=now,
        )  # fmt: skip
        await db.commit()
    log.warning("chat message for handoff %s level %d: %s", handoff_id, level, reason)
