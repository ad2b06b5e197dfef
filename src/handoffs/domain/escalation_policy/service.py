"""An account's escalation policy: read it (the default when unset), set it (admins)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import msgspec
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import EscalationPolicy, User
from handoffs.domain.escalation_policy.ladder import check_increasing, levels_of
from handoffs.domain.escalation_policy.schemas import EscalationPolicyIn, EscalationPolicyOut
from handoffs.errors import BadRequest

#: A policy change moves the due time of the account's waiting escalations to the new levels
#: (same rules as ``ladder.due_at``: from ``ladder_started_at``, halved when urgent).
_RESCHEDULE = text(
    """
UPDATE session_handoffs h SET next_escalation_at = CASE
    WHEN h.ladder_next < jsonb_array_length(CAST(:levels AS jsonb)) THEN
        h.ladder_started_at + make_interval(secs => (
            CAST(CAST(:levels AS jsonb) -> h.ladder_next ->> 'after_seconds' AS double precision)
            / CASE WHEN h.priority = 'urgent' THEN 2 ELSE 1 END))
    END
WHERE h.account_id = :account_id AND h.state = 'open' AND h.intent = 'escalate' AND h.priority <> 'low'
    AND h.ladder_started_at IS NOT NULL
"""
)


async def account_policy(db: AsyncSession, account_id: UUID) -> EscalationPolicyOut:
    """The account's ladder as stored, or the default when it has set none."""
    stored = await db.scalar(select(EscalationPolicy.levels).where(EscalationPolicy.account_id == account_id))
    return EscalationPolicyOut(levels=levels_of(stored), is_default=not stored)


class EscalationPolicyService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def get(self, user: User) -> EscalationPolicyOut:
        return await account_policy(self.db, user.account_id)

    async def put(self, user: User, data: EscalationPolicyIn) -> EscalationPolicyOut:
        if problem := check_increasing(data.levels):
            raise BadRequest(problem)
        levels = msgspec.to_builtins(data.levels)
        now = datetime.now(UTC)
        await self.db.execute(
            insert(EscalationPolicy)
            .values(account_id=user.account_id, levels=levels, created_at=now, updated_at=now)
            .on_conflict_do_update(index_elements=["account_id"], set_={"levels": levels, "updated_at": now})
        )
        await self.db.execute(_RESCHEDULE, {"levels": json.dumps(levels), "account_id": user.account_id})
        await self.db.commit()
        return EscalationPolicyOut(levels=list(data.levels), is_default=False)
