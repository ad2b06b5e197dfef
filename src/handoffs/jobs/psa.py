"""Job: write a handoff back to the account's PSA ticket, one step at a time.

An outbox row's ``phase`` says which: ``escalation`` (the documentation as a
note, then the escalated status) or ``resolution`` (the resolution, then the
resolved status). Each vendor call done is recorded in ``psa_sync_steps``
(unique per handoff and step) before the next is made, so a retry after a
failed status change skips the note it already posted: once per step, however
often the job runs. The window left is a crash between the vendor accepting a
call and the step being recorded (at-least-once there, as with email).

A failure shows twice: its reason in our words on the handoff (``psa_sync_error``,
read by every engineer), and what the vendor answered in the log and on the
account's PSA connection (``last_error``, read by admins and owners only). The
worker's HTTP client refuses addresses the outbound policy does not allow
(handoffs.integrations.outbound), so a vendor URL pointing inside our network
fails with "the PSA address is not allowed (…)" before anything is sent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert

from handoffs import metrics
from handoffs.db.encryption import UnreadableSecret
from handoffs.db.models import PsaConnection, PsaSyncStep, SessionHandoff, User
from handoffs.domain.handoffs.timeline import record
from handoffs.domain.psa_connection.schemas import LAST_ERROR_KEY
from handoffs.enums import PsaSyncStatus, TimelineKind
from handoffs.integrations.ai import AssessmentInput, documentation_markdown
from handoffs.integrations.psa import PsaError, adapter_for
from handoffs.jobs.context import JobContext
from handoffs.jobs.runner import OutboxJob, PermanentError, TransientError, run_outbox_job

log = logging.getLogger(__name__)

Phase = Literal["escalation", "resolution"]


async def push_to_psa(ctx: dict[str, Any], outbox_id: str) -> str:
    return await run_outbox_job(ctx, outbox_id, _push, _give_up)


def _phase(row: OutboxJob) -> Phase:
    return "resolution" if row.payload.get("phase") == "resolution" else "escalation"


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


def resolution_note_for(handoff: SessionHandoff, resolver_name: str | None) -> str:
    """``Resolved by Ada Admin (workaround) in handoffs:`` and the resolution as written."""
    outcome = (handoff.outcome.value if handoff.outcome else "fixed").replace("_", " ")
    return (
        f"Resolved by {resolver_name or 'a colleague'} ({outcome}) in handoffs:\n\n{handoff.resolution or ''}"
    )


async def _push(jc: JobContext, row: OutboxJob, attempt: int, _loaded: object) -> str:
    handoff_id = UUID(row.payload["handoff_id"])
    phase = _phase(row)
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
        try:
            connection = await db.scalar(
                select(PsaConnection).where(PsaConnection.account_id == row.account_id)
            )
        except UnreadableSecret as exc:
            # A wrong or missing DATA_ENCRYPTION_KEY: nothing to retry until an operator fixes it
            # (then `handoffs outbox --retry-failed`). The admins read it as the connection's last error.
            failure = {"at": datetime.now(UTC).isoformat(), "handoff_id": str(handoff_id),
                       "step": "credentials", "reason": str(exc), "detail": str(exc)}  # fmt: skip
            await _set(jc, handoff_id, PsaSyncStatus.pending, str(exc), last_error=(row.account_id, failure))
            raise PermanentError(str(exc)) from None
        ticket_id = handoff.session_snapshot.get("psa_ticket_id")
        adapter = adapter_for(connection, jc.http)
        if adapter is None or not ticket_id:
            await _set(jc, handoff_id, PsaSyncStatus.not_applicable, None)
            metrics.PSA_PUSHES.labels(adapter.vendor if adapter else "none", "not_applicable").inc()
            return "no PSA configured for this account"
        if phase == "resolution":
            resolver = await db.scalar(select(User.name).where(User.id == handoff.resolved_by))
            text = resolution_note_for(handoff, resolver)
        else:
            text = note_for(handoff, creator_name)
        done = set(await db.scalars(select(PsaSyncStep.step).where(PsaSyncStep.handoff_id == handoff_id)))
    steps = [(name, call) for name, call in adapter.steps(phase, str(ticket_id), text) if name not in done]
    if not steps:
        return f"{phase}: already pushed to {adapter.vendor} ticket {ticket_id}"
    await _set(jc, handoff_id, PsaSyncStatus.pending, None)
    for name, call in steps:
        try:
            await call()
        except PsaError as exc:
            metrics.PSA_PUSHES.labels(adapter.vendor, "error").inc()
            if exc.detail != exc.reason:  # the runner logs the reason itself
                log.warning("PSA %s of handoff %s, step %s: %s", phase, handoff_id, name, exc.detail)
            await _set(jc, handoff_id, PsaSyncStatus.pending, exc.reason,
                       last_error=(row.account_id, _last_error(exc, handoff_id, name)))  # fmt: skip
            if exc.transient:
                raise TransientError(exc.reason) from exc
            raise PermanentError(exc.reason) from exc
        await _step_done(jc, row.account_id, handoff_id, name)
    await _set(
        jc, handoff_id, PsaSyncStatus.synced, None,
        timeline=(row.account_id, TimelineKind.psa_synced,
                  {"phase": phase, "vendor": adapter.vendor, "ticket": str(ticket_id)}),
    )  # fmt: skip
    metrics.PSA_PUSHES.labels(adapter.vendor, "synced").inc()
    return f"{phase}: pushed to {adapter.vendor} ticket {ticket_id}"


async def _step_done(jc: JobContext, account_id: UUID, handoff_id: UUID, step: str) -> None:
    now = datetime.now(UTC)
    async with jc.sessionmaker() as db:
        await db.execute(
            insert(PsaSyncStep)
            .values(account_id=account_id, handoff_id=handoff_id, step=step, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["handoff_id", "step"])
        )
        await db.commit()


async def _set(
    jc: JobContext,
    handoff_id: UUID,
    status: PsaSyncStatus,
    error: str | None,
    *,
    timeline: tuple[UUID, TimelineKind, dict[str, Any]] | None = None,
    last_error: tuple[UUID, dict[str, Any]] | None = None,
) -> None:
    """Record the handoff's PSA status; with ``timeline``, its timeline entry, and with ``last_error``,
    the account connection's last failure, in the same transaction."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"psa_sync_status": status, "psa_sync_error": error, "updated_at": now}
    if status == PsaSyncStatus.synced:
        values["psa_synced_at"] = now
    async with jc.sessionmaker() as db:
        await db.execute(update(SessionHandoff).where(SessionHandoff.id == handoff_id).values(**values))
        if timeline is not None:
            account_id, kind, detail = timeline
            await record(db, account_id=account_id, handoff_id=handoff_id, kind=kind, actor_id=None,
                         detail=detail, at=now)  # fmt: skip
        if last_error is not None:
            account_id, failure = last_error
            # Merged into the stored settings (jsonb ||), so an admin's PUT racing it keeps its own.
            await db.execute(
                update(PsaConnection)
                .where(PsaConnection.account_id == account_id)
                .values(settings=PsaConnection.settings.op("||")(literal({LAST_ERROR_KEY: failure}, JSONB)))
            )
        await db.commit()


def _last_error(exc: PsaError, handoff_id: UUID, step: str) -> dict[str, Any]:
    return {
        "at": datetime.now(UTC).isoformat(),
        "handoff_id": str(handoff_id),
        "step": step,
        "reason": exc.reason,
        "detail": exc.detail[:2000],
    }


async def _give_up(jc: JobContext, row: OutboxJob, reason: str) -> None:
    await _set(
        jc, UUID(row.payload["handoff_id"]), PsaSyncStatus.failed, reason,
        timeline=(row.account_id, TimelineKind.psa_failed, {"phase": _phase(row), "reason": reason[:500]}),
    )  # fmt: skip
