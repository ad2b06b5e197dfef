"""Request and response bodies of AI sessions and their messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from handoffs.db.models import AISession, SessionMessage
from handoffs.enums import MessageRole, SessionStatus

TicketId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]


class SessionCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(max_length=200)] = ""
    problem_summary: Annotated[str, msgspec.Meta(max_length=10_000)] = ""
    psa_ticket_id: TicketId | None = None


class MessageCreate(msgspec.Struct, forbid_unknown_fields=True):
    role: MessageRole
    content: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]


class MessageOut(msgspec.Struct):
    id: UUID
    role: MessageRole
    content: str
    created_at: datetime

    @classmethod
    def of(cls, m: SessionMessage) -> MessageOut:
        return cls(id=m.id, role=m.role, content=m.content, created_at=m.created_at)


class SessionOut(msgspec.Struct):
    id: UUID
    title: str
    problem_summary: str
    psa_ticket_id: str | None
    status: SessionStatus
    owner_id: UUID
    assignee_id: UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: AISession) -> SessionOut:
        return cls(**_session_fields(s))


class SessionDetail(SessionOut):
    messages: list[MessageOut] = []
    escalation_package: dict[str, Any] | None = None

    @classmethod
    def with_messages(cls, s: AISession, messages: list[SessionMessage]) -> SessionDetail:
        return cls(
            **_session_fields(s),
            messages=[MessageOut.of(m) for m in messages],
            escalation_package=s.escalation_package,
        )


def _session_fields(s: AISession) -> dict[str, Any]:
    return {
        "id": s.id,
        "title": s.title,
        "problem_summary": s.problem_summary,
        "psa_ticket_id": s.psa_ticket_id,
        "status": s.status,
        "owner_id": s.owner_id,
        "assignee_id": s.assignee_id,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }
