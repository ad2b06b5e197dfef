"""The escalation ladder on the worker fleet: a due-time column swept every second.

Each open escalation carries ``next_escalation_at``, the due time of its next
level (set by the hand-off, cleared by a claim, reset by a release, moved by a
policy change). Every worker process sweeps the due ones every second (``LadderSweeper``, a task
of the worker's own, not an arq cron: a per-second cron would keep a job queued at all
times and sweeps need no Redis) with ``FOR UPDATE SKIP LOCKED`` and fires each level in ONE transaction: the
handoff's ``escalation_level`` and next due time, a bell entry of kind
``escalated`` for the level's people who were not told yet, the outbox rows
(their emails, the chat message, the ``handoff_escalated`` live event) and a
timeline entry.

Why a swept column rather than deferred arq jobs keyed by (handoff, level):
the schedule then lives in PostgreSQL with the handoff, so a claim cancels it
and a release restarts it in the claim's or release's own transaction, a
policy change reschedules every waiting escalation with one UPDATE, and
nothing is lost when Redis restarts empty. Exactly once per level holds on any
number of workers: the row lock plus the ``next_escalation_at <= now``
condition (re-checked by PostgreSQL on the locked row) let one transaction
fire a level, and firing moves the due time on. A worker killed mid-level
rolls back and the level fires on the next sweep. See docs/ladder.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text, update

from handoffs.db.models import SessionHandoff
from handoffs.domain.escalation_policy.ladder import AUDIENCE_LABELS, AUDIENCE_ROLES, due_at, levels_of
from handoffs.domain.handoffs.timeline import record
from handoffs.domain.notifications.service import notify
from handoffs.domain.notifications.titles import duration, escalation_title
from handoffs.enums import EVENT_TOPIC, JobTopic, NotificationKind, TimelineKind
from handoffs.events import HandoffEscalated, event_payload
from handoffs.jobs.chat import chat_payload
from handoffs.jobs.context import JobContext
from handoffs.outbox.writer import OutboxWriter

log = logging.getLogger(__name__)

#: Levels fired per sweep transaction; a backlog is worked through in the following sweeps.
BATCH = 100

_DUE = text(
    """
SELECT h.id, h.account_id, h.session_id, h.priority, h.ladder_next, h.ladder_started_at, h.created_at,
       h.escalation_level, h.created_by, h.target_user_id, u.name AS creator_name,
       h.session_snapshot ->> 'problem_summary' AS summary, h.session_snapshot ->> 'psa_ticket_id' AS ticket,
       p.levels
FROM session_handoffs h
JOIN users u ON u.id = h.created_by
LEFT JOIN escalation_policies p ON p.account_id = h.account_id
WHERE h.state = 'open' AND h.next_escalation_at IS NOT NULL AND h.next_escalation_at <= :now
ORDER BY h.next_escalation_at
LIMIT :limit
FOR UPDATE OF h SKIP LOCKED
"""
)

#: The level's people who have had no bell entry about this escalation yet.
_NOT_TOLD = text(
    """
SELECT u.id FROM users u
WHERE u.account_id = :account_id AND u.is_active AND u.role = ANY(:roles) AND u.id <> :creator
  AND NOT EXISTS (
      SELECT 1 FROM notifications n
      WHERE n.handoff_id = :handoff_id AND n.recipient_id = u.id AND n.kind IN ('escalation', 'escalated'))
ORDER BY u.name, u.id
"""
)


#: Each worker's last sweep, as ``<key prefix><host>:<pid>`` = unix ms (kept 10 s): a trace of
#: live sweepers for operators (and the tests, instead of sleeping).
SWEPT_PREFIX = "handoffs:ladder:swept:"


class LadderSweeper:
    """This worker's ladder sweep: ``step_up_due`` every ``interval`` seconds until stopped.

    Every worker of the fleet runs one; SKIP LOCKED shares the due rows between them, and a
    level fires once however many sweep. A failed sweep (PostgreSQL away) is logged and tried
    again on the next tick.
    """

    def __init__(self, jc: JobContext, interval: float) -> None:
        self.jc = jc
        self.interval = interval
        self.name = f"{SWEPT_PREFIX}{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="ladder-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await step_up_due(self.jc)
            except Exception:
                log.warning("escalation ladder: the sweep failed; trying again", exc_info=True)
            with contextlib.suppress(Exception):  # the trace is for people: Redis away stops nothing
                await self.jc.bus.redis.set(self.name, int(time.time() * 1000), ex=10)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))


async def step_up_due(jc: JobContext, now: datetime | None = None, limit: int = BATCH) -> int:
    """Fire the due levels (up to ``limit``) in one transaction, then hand its outbox rows on."""
    now = now or datetime.now(UTC)
    async with jc.sessionmaker() as db:
        outbox = OutboxWriter(db, jc.relay)
        due = (await db.execute(_DUE, {"now": now, "limit": limit})).mappings().all()
        for row in due:
            await _fire(db, outbox, row, now)
        await outbox.commit()
    if due:
        log.info("escalation ladder: %d level(s) fired", len(due))
    return len(due)


async def _fire(db: Any, outbox: OutboxWriter, row: Any, now: datetime) -> None:
    levels = levels_of(row["levels"])
    index = row["ladder_next"]
    handoff_id: UUID = row["id"]
    account_id: UUID = row["account_id"]
    if index >= len(levels):  # the policy shrank under a due time: nothing left to fire
        await db.execute(
            update(SessionHandoff).where(SessionHandoff.id == handoff_id).values(next_escalation_at=None)
        )
        return
    level = levels[index]
    step = row["escalation_level"] + 1
    started: datetime = row["ladder_started_at"] or row["created_at"]
    await db.execute(
        update(SessionHandoff)
        .where(SessionHandoff.id == handoff_id)
        .values(
            escalation_level=step,
            ladder_next=index + 1,
            next_escalation_at=due_at(started, row["priority"], levels, index + 1),
            updated_at=now,
        )
    )
    roles = [r.value for r in AUDIENCE_ROLES[level.notify]]
    not_told = list(
        (
            await db.execute(
                _NOT_TOLD,
                {
                    "account_id": account_id,
                    "roles": roles,
                    "creator": row["created_by"],
                    "handoff_id": handoff_id,
                },
            )
        ).scalars()
    )
    waited = duration((now - row["created_at"]).total_seconds())
    first_name = (row["creator_name"] or "").split(" ")[0] or "a colleague"
    title = f"Unclaimed for {waited} · {escalation_title(first_name, row['ticket'], row['summary'] or '')}"
    told = await notify(
        db,
        account_id=account_id,
        recipients=not_told,
        kind=NotificationKind.escalated,
        title=title,
        body=f"Nobody has picked this up yet; stepped up to {AUDIENCE_LABELS[level.notify]}.",
        handoff_id=handoff_id,
        session_id=row["session_id"],
    )
    ids = {"handoff_id": str(handoff_id), "session_id": str(row["session_id"])}
    if told:
        outbox.add(
            account_id, JobTopic.send_escalation_emails, {**ids, "recipient_ids": [str(t) for t in told]}
        )
    outbox.add(
        account_id,
        JobTopic.post_to_chat,
        chat_payload(handoff_id, row["session_id"], step, notify=level.notify),
    )
    await record(
        db,
        account_id=account_id,
        handoff_id=handoff_id,
        kind=TimelineKind.escalated,
        actor_id=None,
        detail={"level": step, "notify": level.notify, "notified": len(told), "waited_seconds": int(
            (now - row["created_at"]).total_seconds())},
        at=now,
    )  # fmt: skip
    event = HandoffEscalated(
        handoff_id=str(handoff_id),
        session_id=str(row["session_id"]),
        account_id=str(account_id),
        level=step,
        notify=level.notify,
        recipient_ids=[str(t) for t in told],
        title=title,
    )
    outbox.add(account_id, EVENT_TOPIC, event_payload(event))
