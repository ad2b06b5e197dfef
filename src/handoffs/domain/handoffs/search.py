"""Finding handoffs: the team queue and the account-wide search.

Both read one statement. The queue is served by the partial index
``ix_handoffs_queue`` (open handoffs, in the queue's whole order); the search
by ``ix_handoffs_account_created`` (newest first, the cursor's order) and, for
``q``, the GIN index on the generated ``search_vector`` (PostgreSQL full-text
search over the problem, the notes and the resolution; ``websearch_to_tsquery``
reads what people type: words, "quoted phrases", ``-not``, ``or``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import AISession, SessionHandoff, User
from handoffs.domain.handoffs.schemas import HandoffListItem, HandoffPage, QueueItem, seconds_between
from handoffs.domain.rows import Claimer, Creator, Person, Resolver
from handoffs.enums import HandoffIntent, HandoffState, Priority
from handoffs.errors import BadRequest

#: The text search configuration of ``search_vector`` (models.SEARCH_VECTOR_SQL); queries must match it.
TS_CONFIG = "english"
MAX_QUERY = 200


def text_query(q: str) -> ColumnElement[bool]:
    """``search_vector @@ websearch_to_tsquery('english', q)``."""
    return SessionHandoff.search_vector.op("@@")(func.websearch_to_tsquery(TS_CONFIG, q))


def _clean_query(q: str | None) -> str | None:
    if q is None or not q.strip():
        return None
    if len(q) > MAX_QUERY:
        raise BadRequest(f"q: at most {MAX_QUERY} characters")
    return q.strip()


@dataclass(frozen=True, slots=True)
class QueueFilters:
    priority: Priority | None = None
    intent: HandoffIntent | None = None
    q: str | None = None
    mine: bool = False
    """Only handoffs raised for the caller by name (``target_user_id``)."""


#: The open queue of one account (``:account_id``), at most ``:limit`` rows. Built once: a statement
#: object keeps its cache key, so the unfiltered queue (the console's) costs SQLAlchemy no
#: statement building or cache-key walk per request. Only the columns a queue card shows: a
#: handoff row also holds the transcript snapshot, the escalation package and the assessment
#: (JSONB), which made each row an ORM object to build (bench/README.md, "reads").
_OPEN_QUEUE: Select[Any] = (
    select(
        SessionHandoff.id,
        SessionHandoff.session_id,
        SessionHandoff.intent,
        SessionHandoff.priority,
        SessionHandoff.engineer_notes,
        SessionHandoff.target_user_id,
        SessionHandoff.created_by,
        SessionHandoff.created_at,
        SessionHandoff.assessment_status,
        SessionHandoff.escalation_level,
        AISession.title,
        AISession.problem_summary,
        AISession.psa_ticket_id,
        User.name.label("creator_name"),
    )
    .join(AISession, AISession.id == SessionHandoff.session_id)
    .join(User, User.id == SessionHandoff.created_by)
    .where(
        SessionHandoff.account_id == bindparam("account_id", type_=PG_UUID(as_uuid=True)),
        SessionHandoff.state == HandoffState.open,
    )
    .order_by(SessionHandoff.priority_rank.desc(), SessionHandoff.created_at, SessionHandoff.id)
    .limit(bindparam("limit", type_=Integer))
)


def queue_statement(filters: QueueFilters | None = None, user_id: UUID | None = None) -> Select[Any]:
    """The team queue's read: open handoffs with their session and creator, most urgent, then oldest;
    its parameters are :func:`queue_params`.

    The partial index ``ix_handoffs_queue`` serves the filter and the order (a test EXPLAINs
    this very statement).
    """
    query = _OPEN_QUEUE
    if filters is not None:
        if filters.priority is not None:
            query = query.where(SessionHandoff.priority == filters.priority)
        if filters.intent is not None:
            query = query.where(SessionHandoff.intent == filters.intent)
        if filters.q:
            query = query.where(text_query(filters.q))
        if filters.mine and user_id is not None:
            query = query.where(SessionHandoff.target_user_id == user_id)
    return query


def queue_params(account_id: UUID, limit: int) -> dict[str, Any]:
    return {"account_id": account_id, "limit": limit}


async def read_queue(
    db: AsyncSession, user: User, filters: QueueFilters | None = None, limit: int = 200
) -> list[QueueItem]:
    """Open handoffs of the caller's account: most urgent first, then oldest."""
    if filters is not None:
        filters = QueueFilters(filters.priority, filters.intent, _clean_query(filters.q), filters.mine)
    rows = await db.execute(queue_statement(filters, user.id), queue_params(user.account_id, limit))
    now = datetime.now(UTC)
    # Unpacked by position: a Row's attribute lookup by name was most of this loop's cost.
    return [
        QueueItem(
            id=id_,
            session_id=session_id,
            intent=intent,
            priority=priority,
            engineer_notes=notes,
            target_user_id=target,
            created_by=Person(id=creator_id, name=creator_name),
            created_at=created_at,
            waiting_seconds=max(0, int((now - created_at).total_seconds())),
            session_title=title,
            problem_summary=summary,
            psa_ticket_id=ticket,
            assessment_status=assessment_status,
            escalation_level=level,
            targeted_at_me=target == user.id,
        )
        for (
            id_, session_id, intent, priority, notes, target, creator_id, created_at,
            assessment_status, level, title, summary, ticket, creator_name,
        ) in rows.tuples()
    ]  # fmt: skip


# -- GET /api/v1/handoffs -----------------------------------------------------------------


class _Cursor(msgspec.Struct, array_like=True):
    created_at: datetime
    id: UUID


def encode_cursor(created_at: datetime, handoff_id: UUID) -> str:
    raw = msgspec.json.encode(_Cursor(created_at, handoff_id))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise BadRequest("cursor: not a cursor this API gave out; start again without it") from None


@dataclass(frozen=True, slots=True)
class SearchFilters:
    state: HandoffState | None = None
    claimed_by: UUID | None = None
    priority: Priority | None = None
    q: str | None = None
    limit: int = 50
    cursor: str | None = None


async def search_handoffs(db: AsyncSession, user: User, filters: SearchFilters) -> HandoffPage:
    """The account's handoffs, newest first, filtered; ``next_cursor`` continues after the last item."""
    q = _clean_query(filters.q)
    query = (
        select(SessionHandoff, AISession.title, AISession.problem_summary, AISession.psa_ticket_id,
               Creator.name, Claimer.name, Resolver.name)
        .join(AISession, AISession.id == SessionHandoff.session_id)
        .join(Creator, Creator.id == SessionHandoff.created_by)
        .outerjoin(Claimer, Claimer.id == SessionHandoff.claimed_by)
        .outerjoin(Resolver, Resolver.id == SessionHandoff.resolved_by)
        .where(SessionHandoff.account_id == user.account_id)
        .order_by(SessionHandoff.created_at.desc(), SessionHandoff.id.desc())
        .limit(filters.limit + 1)
    )  # fmt: skip
    if filters.state is not None:
        query = query.where(SessionHandoff.state == filters.state)
    if filters.claimed_by is not None:
        query = query.where(SessionHandoff.claimed_by == filters.claimed_by)
    if filters.priority is not None:
        query = query.where(SessionHandoff.priority == filters.priority)
    if q:
        query = query.where(text_query(q))
    if filters.cursor:
        after = decode_cursor(filters.cursor)
        query = query.where(
            tuple_(SessionHandoff.created_at, SessionHandoff.id)
            < tuple_(literal(after.created_at), literal(after.id))
        )
    rows = (await db.execute(query)).all()
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    items = [
        HandoffListItem(
            id=h.id,
            session_id=h.session_id,
            state=h.state,
            intent=h.intent,
            priority=h.priority,
            created_at=h.created_at,
            created_by=Person(id=h.created_by, name=creator),
            claimed_by=Person(id=h.claimed_by, name=claimer or "") if h.claimed_by else None,
            claimed_at=h.claimed_at,
            resolved_by=Person(id=h.resolved_by, name=resolver or "") if h.resolved_by else None,
            resolved_at=h.resolved_at,
            outcome=h.outcome,
            resolution=h.resolution,
            engineer_notes=h.engineer_notes,
            target_user_id=h.target_user_id,
            session_title=title,
            problem_summary=summary,
            psa_ticket_id=ticket,
            time_to_claim_seconds=seconds_between(h.created_at, h.first_claimed_at),
            escalation_level=h.escalation_level,
        )
        for h, title, summary, ticket, creator, claimer, resolver in rows
    ]
    last = rows[-1][0] if rows and more else None
    return HandoffPage(items=items, next_cursor=encode_cursor(last.created_at, last.id) if last else None)
