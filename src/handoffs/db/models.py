"""Tables. Every tenant-owned row carries ``account_id``; queries scope by it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    Computed,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from handoffs.db.encryption import SecretJSON, SecretText
from handoffs.enums import (
    AssessmentStatus,
    DeliveryStatus,
    HandoffIntent,
    HandoffState,
    MessageRole,
    NotificationKind,
    OutboxStatus,
    Outcome,
    Priority,
    PsaSyncStatus,
    PsaVendor,
    Role,
    SessionStatus,
    TimelineKind,
)


class StrEnumType(TypeDecorator[StrEnum]):
    """A StrEnum stored as a short string.

    The API validates values; adding one must not need a migration of a
    PostgreSQL ENUM type. Rows read back as the enum, not a bare str.
    """

    impl = String(20)
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


class Account(UUIDv7AuditBase):
    """A tenant: one MSP."""

    __tablename__ = "accounts"
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)


class Team(UUIDv7AuditBase):
    __tablename__ = "teams"
    __table_args__ = (Index("ix_teams_account_name", "account_id", "name", unique=True),)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))


class User(UUIDv7AuditBase):
    __tablename__ = "users"
    __table_args__ = (Index("ix_users_account_role", "account_id", "role"),)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    team_id: Mapped[UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(StrEnumType(Role))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else self.email.split("@")[0]


class AISession(UUIDv7AuditBase):
    """An AI troubleshooting session worked by ``owner``; ``assignee`` is the senior who claimed it."""

    __tablename__ = "ai_sessions"
    __table_args__ = (
        Index("ix_ai_sessions_account_owner_created", "account_id", "owner_id", "created_at"),
        Index("ix_ai_sessions_account_assignee", "account_id", "assignee_id"),
    )
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    owner_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assignee_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200), default="")
    problem_summary: Mapped[str] = mapped_column(Text, default="")
    psa_ticket_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[SessionStatus] = mapped_column(StrEnumType(SessionStatus), default=SessionStatus.active)
    escalation_package: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    messages: Mapped[list[SessionMessage]] = relationship(
        back_populates="session", order_by="SessionMessage.created_at", lazy="noload"
    )


class SessionMessage(UUIDv7AuditBase):
    __tablename__ = "session_messages"
    __table_args__ = (Index("ix_session_messages_session_created", "session_id", "created_at"),)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    session_id: Mapped[UUID] = mapped_column(ForeignKey("ai_sessions.id", ondelete="CASCADE"))
    role: Mapped[MessageRole] = mapped_column(StrEnumType(MessageRole))
    content: Mapped[str] = mapped_column(Text)

    session: Mapped[AISession] = relationship(back_populates="messages", lazy="noload")


#: Sort key of the queue: urgent first. A stored generated column so the
#: partial queue index below can serve ORDER BY directly.
PRIORITY_RANK_SQL = "CASE priority WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'normal' THEN 1 ELSE 0 END"


#: What full-text search reads of a handoff: the problem (weight A), the junior's notes (B)
#: and the resolution (C). A stored generated column, so the GIN index serves ``@@`` directly.
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('english', coalesce(session_snapshot->>'title', '') || ' ' || "
    "coalesce(session_snapshot->>'problem_summary', '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(engineer_notes, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(resolution, '')), 'C')"
)


class SessionHandoff(UUIDv7AuditBase):
    """One park or escalation of a session: ``open`` → ``claimed`` → ``resolved`` (``state``).

    ``version`` counts state changes. A transition is decided on the row as read and written
    by one UPDATE conditioned on that version, so of two concurrent transitions (on any
    replicas) exactly one applies; the other finds the version moved and answers 409.
    """

    __tablename__ = "session_handoffs"
    __table_args__ = (
        # The team queue: open handoffs of one account, most urgent, then oldest, then id, which
        # is the queue's whole ORDER BY, so the scan stops at its LIMIT (migrations 0003, 0004).
        Index(
            "ix_handoffs_queue",
            "account_id",
            text("priority_rank DESC"),
            "created_at",
            "id",
            postgresql_where=text("state = 'open'"),
        ),
        # At most one unresolved (open or claimed) handoff per session, enforced by the
        # database so two racing hand-offs cannot both succeed, and a claimed session cannot
        # be handed off again behind its claimer's back.
        Index(
            "uq_handoffs_one_unresolved_per_session",
            "session_id",
            unique=True,
            postgresql_where=text("state <> 'resolved'"),
        ),
        Index("ix_handoffs_session_created", "session_id", "created_at"),
        # Finding handoffs: the account's newest first (the list's order and cursor).
        Index("ix_handoffs_account_created", "account_id", text("created_at DESC"), text("id DESC")),
        Index("ix_handoffs_search", "search_vector", postgresql_using="gin"),
        # The ladder's sweep: open escalations whose next level is due, soonest first.
        Index(
            "ix_handoffs_ladder_due",
            "next_escalation_at",
            postgresql_where=text("state = 'open' AND next_escalation_at IS NOT NULL"),
        ),
    )
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    session_id: Mapped[UUID] = mapped_column(ForeignKey("ai_sessions.id", ondelete="CASCADE"))
    intent: Mapped[HandoffIntent] = mapped_column(StrEnumType(HandoffIntent))
    engineer_notes: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[Priority] = mapped_column(StrEnumType(Priority), default=Priority.normal)
    priority_rank: Mapped[int] = mapped_column(SmallInteger, Computed(PRIORITY_RANK_SQL, persisted=True))
    target_user_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    claimed_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    state: Mapped[HandoffState] = mapped_column(
        StrEnumType(HandoffState), default=HandoffState.open, server_default="open"
    )
    version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    first_claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    resolved_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[Outcome | None] = mapped_column(StrEnumType(Outcome))
    escalation_level: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    """Ladder steps fired so far (the contract's count; it does not go back on release)."""
    ladder_started_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """Where the ladder's delays count from: the creation, or the last release."""
    ladder_next: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    """The index of the policy level that fires next, counted since ``ladder_started_at``."""
    next_escalation_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """When that level is due; null when the ladder has nothing left (claimed, low, parked, last level)."""
    search_vector: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True), deferred=True
    )
    session_snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    ai_assessment: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    assessment_status: Mapped[AssessmentStatus] = mapped_column(
        StrEnumType(AssessmentStatus), default=AssessmentStatus.pending
    )
    assessment_error: Mapped[str | None] = mapped_column(Text)
    ai_model: Mapped[str | None] = mapped_column(String(100))
    ai_input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    ai_output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    ai_cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    ai_cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    ai_cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0), server_default=text("0"))
    """What the model calls of this handoff cost (every stored or fallen-back attempt's tokens
    at the price table of the time, handoffs.pricing)."""
    psa_sync_status: Mapped[PsaSyncStatus] = mapped_column(
        StrEnumType(PsaSyncStatus), default=PsaSyncStatus.not_applicable, server_default="not_applicable"
    )
    psa_sync_error: Mapped[str | None] = mapped_column(Text)
    psa_synced_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class TimelineEntry(UUIDv7AuditBase):
    """One line of a handoff's audit trail, written in the transaction of the change it records."""

    __tablename__ = "handoff_timeline"
    __table_args__ = (Index("ix_handoff_timeline_handoff_created", "handoff_id", "created_at", "id"),)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    handoff_id: Mapped[UUID] = mapped_column(ForeignKey("session_handoffs.id", ondelete="CASCADE"))
    kind: Mapped[TimelineKind] = mapped_column(StrEnumType(TimelineKind))
    actor_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class HandoffComment(UUIDv7AuditBase):
    """A message on a handoff between its creator, its claimer and the account's readers."""

    __tablename__ = "handoff_comments"
    __table_args__ = (Index("ix_handoff_comments_handoff_created", "handoff_id", "created_at", "id"),)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    handoff_id: Mapped[UUID] = mapped_column(ForeignKey("session_handoffs.id", ondelete="CASCADE"))
    author_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)


class Notification(UUIDv7AuditBase):
    """A bell entry for one recipient."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_recipient_created", "recipient_id", "created_at"),)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    recipient_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[NotificationKind] = mapped_column(StrEnumType(NotificationKind))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    handoff_id: Mapped[UUID | None] = mapped_column(ForeignKey("session_handoffs.id", ondelete="CASCADE"))
    session_id: Mapped[UUID | None] = mapped_column(ForeignKey("ai_sessions.id", ondelete="CASCADE"))
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class OutboxMessage(UUIDv7AuditBase):
    """Work to do after a commit, written in the same transaction as its cause.

    The relay hands each row to arq with ``job id = row id`` (so a row
    dispatched twice runs once), and a sweep picks up what a crash left.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "available_at", postgresql_where=text("status = 'pending'")),
        # What is not done yet, by status: the sweep's lost-job scan and the metrics' backlog
        # count read these few rows, never the done ones that pile up.
        Index("ix_outbox_open", "status", "dispatched_at", postgresql_where=text("status <> 'done'")),
    )
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[OutboxStatus] = mapped_column(StrEnumType(OutboxStatus), default=OutboxStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    available_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), server_default=text("now()")
    )
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class EmailDelivery(UUIDv7AuditBase):
    """One email about a handoff to one recipient. The unique key (handoff, recipient, kind)
    makes a retried job mail once; ``kind`` is ``escalation`` or ``resolved``."""

    __tablename__ = "email_deliveries"
    __table_args__ = (
        Index(
            "uq_email_deliveries_handoff_recipient_kind", "handoff_id", "recipient_id", "kind", unique=True
        ),
    )
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    handoff_id: Mapped[UUID] = mapped_column(ForeignKey("session_handoffs.id", ondelete="CASCADE"))
    recipient_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32), default="escalation", server_default="escalation")
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[DeliveryStatus] = mapped_column(
        StrEnumType(DeliveryStatus), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class EscalationPolicy(UUIDv7AuditBase):
    """An account's ladder: ``levels`` = ``[{after_seconds, notify}]``, increasing delays."""

    __tablename__ = "escalation_policies"
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)


class ChatIntegration(UUIDv7AuditBase):
    """An account's Slack or Teams incoming webhook. The URL is a secret: never returned nor logged."""

    __tablename__ = "chat_integrations"
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="none")
    webhook_url: Mapped[str] = mapped_column(SecretText("chat webhook URL"), default="")
    """Stored encrypted (a Fernet token, handoffs.db.encryption): whoever has the URL can post."""
    min_priority: Mapped[Priority] = mapped_column(StrEnumType(Priority), default=Priority.normal)

    def __repr__(self) -> str:  # the webhook URL stays out of logs and tracebacks
        return f"ChatIntegration(account_id={self.account_id}, kind={self.kind})"


class ChatDelivery(UUIDv7AuditBase):
    """One chat message for (handoff, level, channel): level 0 is the escalation itself.
    The unique key makes a retried or duplicated job post once."""

    __tablename__ = "chat_deliveries"
    __table_args__ = (
        Index("uq_chat_deliveries_handoff_level_channel", "handoff_id", "level", "channel", unique=True),
    )
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    handoff_id: Mapped[UUID] = mapped_column(ForeignKey("session_handoffs.id", ondelete="CASCADE"))
    level: Mapped[int] = mapped_column(SmallInteger)
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[DeliveryStatus] = mapped_column(
        StrEnumType(DeliveryStatus), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class PsaSyncStep(UUIDv7AuditBase):
    """One PSA call done for a handoff (``escalation_note``, ``escalation_status``,
    ``resolution_note``, ``resolution_status``): a retried push skips the steps it finds here."""

    __tablename__ = "psa_sync_steps"
    __table_args__ = (Index("uq_psa_sync_steps_handoff_step", "handoff_id", "step", unique=True),)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    handoff_id: Mapped[UUID] = mapped_column(ForeignKey("session_handoffs.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(40))


class PsaConnection(UUIDv7AuditBase):
    """An account's PSA: vendor, where it lives, and credentials (never logged nor returned)."""

    __tablename__ = "psa_connections"
    account_id: Mapped[UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    vendor: Mapped[PsaVendor] = mapped_column(StrEnumType(PsaVendor), default=PsaVendor.none)
    base_url: Mapped[str] = mapped_column(String(500), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    """Vendor options that are not secret: company id, escalated status name/id, auth URL."""
    credentials: Mapped[dict[str, str]] = mapped_column(SecretJSON("PSA credentials"), default=dict)
    """Stored encrypted: the JSON object as one Fernet token (handoffs.db.encryption)."""
    enabled: Mapped[bool] = mapped_column(default=True, server_default=text("true"))

    def __repr__(self) -> str:  # credentials stay out of logs and tracebacks
        return f"PsaConnection(account_id={self.account_id}, vendor={self.vendor.value}, base_url={self.base_url!r})"
