"""Request and response bodies of AI sessions and their messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from handoffs.db.models import AISession, SessionMessage
from handoffs.domain.rows import FromRow
from handoffs.domain.text import Text
from handoffs.enums import MessageRole, SessionStatus

#: Its own pattern refuses control characters too (handoffs.domain.text).
TicketId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]


class SessionCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[Text, msgspec.Meta(max_length=200)] = ""
    problem_summary: Annotated[Text, msgspec.Meta(max_length=10_000)] = ""
    psa_ticket_id: TicketId | None = None


class MessageCreate(msgspec.Struct, forbid_unknown_fields=True):
    role: MessageRole
    content: Annotated[Text, msgspec.Meta(min_length=1, max_length=100_000)]


class MessageOut(FromRow):
    id: UUID
    role: MessageRole
    content: str
    created_at: datetime


class SessionOut(FromRow):
    id: UUID
    title: str
    problem_summary: str
    psa_ticket_id: str | None
    status: SessionStatus
    owner_id: UUID
    assignee_id: UUID | None
    created_at: datetime
    updated_at: datetime


class SessionDetail(SessionOut):
    messages: list[MessageOut] = []
    escalation_package: dict[str, Any] | None = None

    @classmethod
    def with_messages(cls, s: AISession, messages: list[SessionMessage]) -> SessionDetail:
        # Not FromRow.of: that would read the lazy ``messages`` relationship, not these.
        return cls(
            **msgspec.structs.asdict(SessionOut.of(s)),
            messages=[MessageOut.of(m) for m in messages],
            escalation_package=s.escalation_package,
        )
