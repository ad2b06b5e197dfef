"""Job: write the escalation back to the account's PSA ticket."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, update

from handoffs import metrics
from handoffs.db.models import PsaConnection, SessionHandoff, User
from handoffs.enums import PsaSyncStatus
from handoffs.integrations.ai import AssessmentInput, documentation_markdown
from handoffs.integrations.psa import PsaError, adapter_for
from handoffs.jobs.context import JobContext
from handoffs.jobs.runner import OutboxJob, PermanentError, TransientError, run_outbox_job


async def push_to_psa(ctx: dict[str, Any], outbox_id: str) -> str:
    return await run_outbox_job(ctx, outbox_id, _push, _give_up)


def note_for(handoff: SessionHandoff, creator_name: str) -> str:
    """The escalation documentation: the AI's when it is ready, else built from the snapshot."""
    package = handoff.ai_assessment or {}
    data = AssessmentInput.from_snapshot(handoff.session_snapshot, handoff.engineer_notes, creator_name)
    return documentation_markdown(
        data,
        package.get("likely_cause"),
        list(package.get("what_was_tried", [])),
        list(package.get("next_steps", [])),
    )


async def _push(jc: JobContext, row: OutboxJob, attempt: int, _loaded: object) -> str:
    handoff_id = UUID(row.payload["handoff_id"])
    async with jc.sessionmaker() as db:
        found = (
            await db.execute(
                select(SessionHandoff, User.name)
                .join(User, User.id == SessionHandoff.created_by)
                .where(SessionHandoff.id == handoff_id)
            )
        ).first()
        if found is None:
            return "handoff is gone"
        handoff, creator_name = found
        if handoff.psa_sync_status == PsaSyncStatus.synced:
            return "already synced"
        connection = await db.scalar(select(PsaConnection).where(PsaConnection.account_id == row.account_id))
        ticket_id = handoff.session_snapshot.get("psa_ticket_id")
        adapter = adapter_for(connection, jc.http)
        if adapter is None or not ticket_id:
            await _set(jc, handoff_id, PsaSyncStatus.not_applicable, None)
            metrics.PSA_PUSHES.labels(adapter.vendor if adapter else "none", "not_applicable").inc()
            return "no PSA configured for this account"
        note = note_for(handoff, creator_name)
    await _set(jc, handoff_id, PsaSyncStatus.pending, None)
    try:
        await adapter.push(str(ticket_id), note)
    except PsaError as exc:
        metrics.PSA_PUSHES.labels(adapter.vendor, "error").inc()
        await _set(jc, handoff_id, PsaSyncStatus.pending, str(exc))
        if exc.transient:
            raise TransientError(str(exc)) from exc
        raise PermanentError(str(exc)) from exc
    await _set(jc, handoff_id, PsaSyncStatus.synced, None)
    metrics.PSA_PUSHES.labels(adapter.vendor, "synced").inc()
    return f"pushed to {adapter.vendor} ticket {ticket_id}"


async def _set(jc: JobContext, handoff_id: UUID, status: PsaSyncStatus, error: str | None) -> None:
    values: dict[str, Any] = {
        "psa_sync_status": status,
        "psa_sync_error": error,
        "updated_at": datetime.now(UTC),
    }
    if status == PsaSyncStatus.synced:
        values["psa_synced_at"] = datetime.now(UTC)
    async with jc.sessionmaker() as db:
        await db.execute(update(SessionHandoff).where(SessionHandoff.id == handoff_id).values(**values))
        await db.commit()


async def _give_up(jc: JobContext, row: OutboxJob, reason: str) -> None:
    await _set(jc, UUID(row.payload["handoff_id"]), PsaSyncStatus.failed, reason)
