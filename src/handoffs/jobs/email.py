"""Jobs: the emails of a handoff (the escalation to the seniors, the resolution to the junior),
one per recipient and kind, never twice.

A delivery row per (handoff, recipient, kind), unique, is claimed with a
conditional UPDATE before sending and marked sent after; a retried or
duplicated job finds it sent and skips it. The one window left is a crash
between the SMTP server accepting the mail and the row being marked sent:
then the mail is sent again after ``STALE_SENDING`` (at-least-once there),
with the same Message-ID so mail systems can fold the copies.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import aiosmtplib
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert

from handoffs import metrics
from handoffs.config import Settings
from handoffs.db.models import AISession, EmailDelivery, Notification, SessionHandoff, User
from handoffs.domain.handoffs.timeline import record
from handoffs.domain.notifications.titles import snippet
from handoffs.enums import DeliveryStatus, NotificationKind, TimelineKind
from handoffs.jobs.context import JobContext
from handoffs.jobs.runner import OutboxJob, PermanentError, TransientError, run_outbox_job

log = logging.getLogger(__name__)

STALE_SENDING = timedelta(minutes=10)


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise PermanentError(f"SMTP_URL must look like smtp://host:port, got scheme {parts.scheme!r}")
        tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if tls else 25),
            use_tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            use_tls=self.use_tls,
            username=self.username,
            password=self.password,
            timeout=30,
        )


#: The kinds of mail, as ``email_deliveries.kind`` records them.
ESCALATION = "escalation"
RESOLVED = "resolved"


async def send_escalation_emails(ctx: dict[str, Any], outbox_id: str) -> str:
    """Tell the seniors (or the target) about a new escalation."""
    return await run_outbox_job(ctx, outbox_id, _send_escalation, _give_up)


async def send_resolution_email(ctx: dict[str, Any], outbox_id: str) -> str:
    """Tell the junior who raised a handoff how it was resolved."""
    return await run_outbox_job(ctx, outbox_id, _send_resolution, _give_up)


async def _send_escalation(jc: JobContext, row: OutboxJob, attempt: int, _loaded: object) -> str:
    return await _send_all(jc, row, ESCALATION)


async def _send_resolution(jc: JobContext, row: OutboxJob, attempt: int, _loaded: object) -> str:
    return await _send_all(jc, row, RESOLVED)


async def _send_all(jc: JobContext, row: OutboxJob, kind: str) -> str:
    handoff_id = UUID(row.payload["handoff_id"])
    recipient_ids = [UUID(r) for r in row.payload.get("recipient_ids", [])]
    async with jc.sessionmaker() as db:
        found = (
            await db.execute(
                select(SessionHandoff, AISession, User.name)
                .join(AISession, AISession.id == SessionHandoff.session_id)
                .join(User, User.id == SessionHandoff.created_by)
                .where(SessionHandoff.id == handoff_id)
            )
        ).first()
        if found is None:
            return "handoff is gone"
        handoff, session, creator_name = found
        recipients = (
            await db.scalars(
                select(User).where(
                    User.id.in_(recipient_ids), User.account_id == row.account_id, User.is_active.is_(True)
                )
            )
        ).all()
        resolver_name = (
            await db.scalar(select(User.name).where(User.id == handoff.resolved_by))
            if handoff.resolved_by
            else None
        )
        if kind == ESCALATION:
            title = (
                await db.scalar(
                    select(Notification.title)
                    .where(
                        Notification.handoff_id == handoff_id,
                        Notification.kind == NotificationKind.escalation,
                    )
                    .limit(1)
                )
                or f"Escalation from {creator_name}"
            )
        else:
            title = f"Resolved by {resolver_name or 'a colleague'}: {snippet(session.problem_summary) or session.title}"
        initial = DeliveryStatus.pending if jc.settings.smtp_url else DeliveryStatus.skipped
        if recipients:
            await db.execute(
                insert(EmailDelivery)
                .values(
                    [
                        {"account_id": row.account_id, "handoff_id": handoff_id, "recipient_id": u.id,
                         "kind": kind, "email": u.email, "status": initial,
                         "last_error": None if jc.settings.smtp_url else "SMTP_URL is not configured"}
                        for u in recipients
                    ]
                )
                .on_conflict_do_nothing(index_elements=["handoff_id", "recipient_id", "kind"])
            )  # fmt: skip
            await db.commit()
    if not jc.settings.smtp_url:
        metrics.EMAILS.labels("skipped").inc(len(recipients))
        return f"SMTP_URL not set: {len(recipients)} deliveries recorded as skipped"

    target = SmtpTarget.parse(jc.settings.smtp_url)
    sent, failures = 0, []
    smtp: aiosmtplib.SMTP | None = None  # one connection for all of the job's mails, opened on need
    try:
        for user in recipients:
            if not await _claim(jc, handoff_id, user.id, kind):
                continue  # already sent, skipped, or being sent by another run
            if kind == ESCALATION:
                message = _message(jc.settings, title, handoff, session, user, creator_name)
            else:
                message = _resolution_message(jc.settings, title, handoff, session, user, resolver_name)
            try:
                if smtp is None or not smtp.is_connected:  # first mail, or the server hung up
                    smtp = target.client()
                    await smtp.connect()
                await smtp.send_message(message)
            except (aiosmtplib.SMTPException, OSError) as exc:
                failures.append(f"{user.email}: {exc}")
                metrics.EMAILS.labels("failed").inc()
                await _mark(jc, handoff_id, user.id, kind, DeliveryStatus.failed, error=str(exc))
                continue
            await _mark(
                jc, handoff_id, user.id, kind, DeliveryStatus.sent, message_id=str(message["Message-ID"]),
                timeline=TimelineKind.emails_sent if sent == 0 else None,
            )  # fmt: skip
            metrics.EMAILS.labels("sent").inc()
            sent += 1
    finally:
        if smtp is not None and smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()
    if failures:
        raise TransientError(
            f"{len(failures)} of {len(recipients)} emails failed: {'; '.join(failures)[:500]}"
        )
    return f"sent {sent} emails"


async def _claim(jc: JobContext, handoff_id: UUID, recipient_id: UUID, kind: str) -> bool:
    now = datetime.now(UTC)
    async with jc.sessionmaker() as db:
        claimed = await db.scalar(
            update(EmailDelivery)
            .where(
                EmailDelivery.handoff_id == handoff_id,
                EmailDelivery.recipient_id == recipient_id,
                EmailDelivery.kind == kind,
                or_(
                    EmailDelivery.status.in_([DeliveryStatus.pending, DeliveryStatus.failed]),
                    (EmailDelivery.status == DeliveryStatus.sending)
                    & (EmailDelivery.updated_at < now - STALE_SENDING),
                ),
            )
            .values(status=DeliveryStatus.sending, attempts=EmailDelivery.attempts + 1, updated_at=now)
            .returning(EmailDelivery.id)
        )
        await db.commit()
        return claimed is not None


async def _mark(
    jc: JobContext,
    handoff_id: UUID,
    recipient_id: UUID,
    kind: str,
    status: DeliveryStatus,
    *,
    error: str | None = None,
    message_id: str | None = None,
    timeline: TimelineKind | None = None,
) -> None:
    """Record a delivery's outcome; the first mail a run sends also writes the timeline's entry."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"status": status, "updated_at": now, "last_error": error}
    if status == DeliveryStatus.sent:
        values.update(sent_at=now, message_id=message_id)
    async with jc.sessionmaker() as db:
        account_id = await db.scalar(
            update(EmailDelivery)
            .where(
                EmailDelivery.handoff_id == handoff_id,
                EmailDelivery.recipient_id == recipient_id,
                EmailDelivery.kind == kind,
            )
            .values(**values)
            .returning(EmailDelivery.account_id)
        )
        if timeline is not None and account_id is not None:
            await record(
                db, account_id=account_id, handoff_id=handoff_id, kind=timeline, actor_id=None,
                detail={"kind": kind}, at=now,
            )  # fmt: skip
        await db.commit()


def handoff_link(settings: Settings, handoff: SessionHandoff) -> str:
    return f"{settings.public_url}/sessions/{handoff.session_id}/handoffs/{handoff.id}"


def _envelope(settings: Settings, title: str, handoff: SessionHandoff, user: User, kind: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = title
    message["From"] = settings.smtp_from
    message["To"] = user.email
    # Stable per (handoff, recipient, kind): a re-send after a crash is recognisably the same mail.
    suffix = "" if kind == ESCALATION else f"-{kind}"
    message["Message-ID"] = f"<handoff-{handoff.id}-{user.id}{suffix}@handoffs>"
    return message


def _message(
    settings: Settings, title: str, handoff: SessionHandoff, session: AISession, user: User, creator_name: str
) -> EmailMessage:
    message = _envelope(settings, title, handoff, user, ESCALATION)
    ticket = f"#{session.psa_ticket_id}" if session.psa_ticket_id else "none linked"
    message.set_content(
        "\n".join(
            [
                f"Hi {user.first_name},",
                "",
                f"{creator_name} escalated a session to the team ({handoff.priority.value} priority).",
                "",
                f"Problem: {session.problem_summary or '(no summary)'}",
                f"Ticket: {ticket}",
                f"Notes: {handoff.engineer_notes or '(none)'}",
                "",
                f"Pick it up: {handoff_link(settings, handoff)}",
                "",
                "The AI assessment will be on the handoff page within moments.",
            ]
        )
    )
    return message


def _resolution_message(
    settings: Settings,
    title: str,
    handoff: SessionHandoff,
    session: AISession,
    user: User,
    resolver_name: str | None,
) -> EmailMessage:
    message = _envelope(settings, title, handoff, user, RESOLVED)
    outcome = (handoff.outcome.value if handoff.outcome else "fixed").replace("_", " ")
    message.set_content(
        "\n".join(
            [
                f"Hi {user.first_name},",
                "",
                f"{resolver_name or 'A colleague'} resolved the session you handed off ({outcome}).",
                "",
                f"Problem: {session.problem_summary or '(no summary)'}",
                "",
                "Resolution:",
                handoff.resolution or "(none written)",
                "",
                f"The handoff, its comments and timeline: {handoff_link(settings, handoff)}",
            ]
        )
    )
    return message


async def _give_up(jc: JobContext, row: OutboxJob, reason: str) -> None:
    # The deliveries keep their own failed status and error; nothing else to undo.
    log.warning("escalation emails for handoff %s: %s", row.payload.get("handoff_id"), reason)
