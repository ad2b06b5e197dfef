"""A handoff's life after it is raised: claim, release, reassign, resolve, withdraw.

Each transition is ONE conditional UPDATE, so concurrent transitions on any
replicas never both apply:

- **claim** updates ``WHERE state = 'open'``: under READ COMMITTED a concurrent
  claimer blocks on the row lock, re-checks the condition against the winner's
  committed row and updates nothing. No read comes first; it is the hot path.
- the others are decided on the row as read (who may do what, in which state)
  and written ``WHERE version = <the version read>``; ``version`` goes up with
  every transition, so of two decided on the same version exactly one applies
  and the other answers 409 naming what the handoff is now.

In the same transaction each writes the session's move, the bell entries of
the people concerned, a timeline entry and an outbox row per live event or job;
nothing slow runs in the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import AISession, Notification, SessionHandoff, User
from handoffs.domain.escalation_policy.ladder import first_due
from handoffs.domain.escalation_policy.service import account_policy
from handoffs.domain.handoffs.schemas import ReassignBody, ReleaseBody, ResolveBody, WithdrawBody
from handoffs.domain.handoffs.timeline import record
from handoffs.domain.notifications.service import notify
from handoffs.domain.notifications.titles import lifecycle_title, snippet, what
from handoffs.domain.rows import Claimer, Person
from handoffs.enums import (
    EVENT_TOPIC,
    SENIOR_ROLES,
    HandoffIntent,
    HandoffState,
    JobTopic,
    NotificationKind,
    Outcome,
    Role,
    SessionStatus,
    TimelineKind,
)
from handoffs.errors import BadRequest, Conflict, Forbidden, NotFound
from handoffs.events import (
    Actor,
    HandoffClaimed,
    HandoffReassigned,
    HandoffReleased,
    HandoffResolved,
    event_payload,
    ids_of,
)
from handoffs.outbox.relay import OutboxRelay
from handoffs.outbox.writer import OutboxWriter


@dataclass(frozen=True, slots=True)
class Seen:
    """A handoff as read before a transition, with the names its messages need."""

    handoff: SessionHandoff
    creator_name: str
    claimer_name: str | None

    @property
    def summary(self) -> str:
        return str((self.handoff.session_snapshot or {}).get("problem_summary") or "")

    @property
    def claimer(self) -> Actor | None:
        h = self.handoff
        return Actor(id=str(h.claimed_by), name=self.claimer_name or "") if h.claimed_by else None


def _actor(user: User) -> Actor:
    return Actor(id=str(user.id), name=user.name)


def queue_status(intent: HandoffIntent) -> SessionStatus:
    """The session's status while its handoff waits in the queue."""
    return SessionStatus.escalated if intent == HandoffIntent.escalate else SessionStatus.parked


class HandoffLifecycle:
    def __init__(self, db: AsyncSession, relay: OutboxRelay | None = None) -> None:
        self.db = db
        self.outbox = OutboxWriter(db, relay)
        self._told: list[UUID] = []
        """Whose bell this transition rang: the live event says so (``recipient_ids``)."""

    # -- claim: the race -----------------------------------------------------------------

    async def claim(self, user: User, session_id: UUID, handoff_id: UUID) -> SessionHandoff:
        """Pick up an open handoff. One conditional UPDATE decides the race (see the module)."""
        now = datetime.now(UTC)
        claimed = await self.db.scalar(
            update(SessionHandoff)
            .where(
                SessionHandoff.id == handoff_id,
                SessionHandoff.session_id == session_id,
                SessionHandoff.account_id == user.account_id,
                SessionHandoff.state == HandoffState.open,
                SessionHandoff.created_by != user.id,
            )
            .values(
                state=HandoffState.claimed,
                claimed_by=user.id,
                claimed_at=now,
                first_claimed_at=func.coalesce(SessionHandoff.first_claimed_at, now),
                next_escalation_at=None,  # a claim cancels the rest of the ladder
                version=SessionHandoff.version + 1,
                updated_at=now,
            )
            .returning(SessionHandoff)
            .execution_options(synchronize_session=False)
        )
        if claimed is None:
            # Nothing was written; the refusal is read in the same transaction.
            raise await self._claim_refusal(user, session_id, handoff_id)
        await self._move_session(user, session_id, SessionStatus.claimed, assignee_id=user.id, now=now)
        # The claimer has dealt with this escalation: their bell entries for it are read.
        await self.db.execute(
            update(Notification)
            .where(
                Notification.recipient_id == user.id,
                Notification.handoff_id == handoff_id,
                Notification.read_at.is_(None),
            )
            .values(read_at=now)
        )
        summary = str((claimed.session_snapshot or {}).get("problem_summary") or "")
        await self._tell(
            claimed,
            [claimed.created_by],
            NotificationKind.claimed,
            lifecycle_title(user.name, f"picked up {what(claimed.intent)}", summary),
            actor=user,
        )
        await record(
            self.db,
            account_id=user.account_id,
            handoff_id=claimed.id,
            kind=TimelineKind.claimed,
            actor_id=user.id,
            at=now,
        )
        self._publish(
            HandoffClaimed(**ids_of(claimed), claimed_by=_actor(user), claimed_at=now.isoformat()),
        )
        await self.outbox.commit()
        return claimed

    async def _claim_refusal(self, user: User, session_id: UUID, handoff_id: UUID) -> Exception:
        seen = await self._read(user, session_id, handoff_id)
        if seen is None:
            return NotFound("Handoff not found")
        h = seen.handoff
        if h.created_by == user.id and h.state == HandoffState.open:
            return Forbidden(
                "You raised this handoff, so a colleague picks it up; withdraw it if you fixed it meanwhile."
            )
        if h.state == HandoffState.resolved or h.claimed_by is None:  # None: its claimer was deleted
            return self._conflict(seen, "This handoff can no longer be picked up.")
        return Conflict(
            f"{seen.claimer_name or 'A colleague'} already picked this up.",
            claimed_by={"id": str(h.claimed_by), "name": seen.claimer_name or ""},
            claimed_at=h.claimed_at.isoformat() if h.claimed_at else None,
            state=h.state.value,
        )

    # -- the transitions decided on a read row ------------------------------------------------

    async def release(
        self, user: User, session_id: UUID, handoff_id: UUID, data: ReleaseBody | None = None
    ) -> SessionHandoff:
        """Put a claimed handoff back in the queue: its claimer, or an admin/owner."""
        reason = (data.reason if data else "").strip()
        seen = await self._seen(user, session_id, handoff_id)
        h = seen.handoff
        if h.state != HandoffState.claimed:
            raise self._conflict(seen, "Only a claimed handoff can be put back in the queue.")
        self._check_claimer_or_admin(user, seen, "release it")
        former, former_actor = h.claimed_by, seen.claimer  # read before the row object is updated
        now = datetime.now(UTC)
        levels = (await account_policy(self.db, user.account_id)).levels
        released = await self._apply(
            user,
            seen,
            now,
            state=HandoffState.open,
            claimed_by=None,
            claimed_at=None,
            released_at=now,
            # Back in the queue, the ladder starts again from now.
            ladder_started_at=now,
            ladder_next=0,
            next_escalation_at=first_due(now, h.intent, h.priority, levels),
        )
        await self._move_session(user, session_id, queue_status(released.intent), assignee_id=None, now=now)
        verb = f"put {what(released.intent)} back in the queue"
        body = snippet(reason, 280)
        await self._tell(
            released, [released.created_by], NotificationKind.released,
            lifecycle_title(user.name, verb, seen.summary), body=body, actor=user,
        )  # fmt: skip
        if former != user.id:  # an admin took it off its claimer
            await self._tell(
                released, [former], NotificationKind.released,
                lifecycle_title(user.name, "put a handoff you had back in the queue", seen.summary),
                body=body, actor=user,
            )  # fmt: skip
        await self._record(user, released, TimelineKind.released, now, reason=reason, from_user=former_actor)
        self._publish(
            HandoffReleased(
                **ids_of(released),
                released_by=_actor(user),
                reason=reason,
                created_at=released.created_at.isoformat(),
            )
        )
        await self.outbox.commit()
        return released

    async def reassign(
        self, user: User, session_id: UUID, handoff_id: UUID, data: ReassignBody
    ) -> SessionHandoff:
        """Hand a claimed handoff to a colleague: its claimer, or an admin/owner."""
        note = data.note.strip()
        seen = await self._seen(user, session_id, handoff_id)
        h = seen.handoff
        if h.state != HandoffState.claimed:
            raise self._conflict(seen, "Only a claimed handoff can be reassigned.")
        self._check_claimer_or_admin(user, seen, "reassign it")
        target = await self._colleague(user, data.to_user_id)
        if target.id == h.claimed_by:
            raise BadRequest(f"to_user_id: {target.name} already has this handoff")
        if target.id == h.created_by:
            raise BadRequest(f"to_user_id: {target.name} raised this handoff and cannot work it")
        former, former_actor = h.claimed_by, seen.claimer  # read before the row object is updated
        now = datetime.now(UTC)
        moved = await self._apply(user, seen, now, claimed_by=target.id, claimed_at=now)
        await self._move_session(user, session_id, SessionStatus.claimed, assignee_id=target.id, now=now)
        await self._tell(
            moved, [target.id], NotificationKind.assigned,
            lifecycle_title(user.name, "handed you a handoff", seen.summary), body=snippet(note, 280), actor=user,
        )  # fmt: skip
        await self._tell(
            moved, [moved.created_by], NotificationKind.assigned,
            lifecycle_title(user.name, f"handed {what(moved.intent)} to {target.name}", seen.summary),
            body=snippet(note, 280), actor=user,
        )  # fmt: skip
        if former != user.id:
            await self._tell(
                moved, [former], NotificationKind.assigned,
                lifecycle_title(user.name, f"handed a handoff you had to {target.name}", seen.summary),
                actor=user,
            )  # fmt: skip
        await self._record(
            user, moved, TimelineKind.reassigned, now,
            from_user=former_actor, to_user=Actor(id=str(target.id), name=target.name), note=note,
        )  # fmt: skip
        self._publish(
            HandoffReassigned(
                **ids_of(moved),
                reassigned_by=_actor(user),
                from_user=former_actor,
                to_user=Actor(id=str(target.id), name=target.name),
                note=note,
            )
        )
        await self.outbox.commit()
        return moved

    async def resolve(
        self, user: User, session_id: UUID, handoff_id: UUID, data: ResolveBody
    ) -> SessionHandoff:
        """Close a claimed handoff with its resolution: its claimer, or an admin/owner.

        The junior hears back (bell, email) and a linked PSA ticket gets the resolution.
        """
        resolution = data.resolution.strip()
        if not resolution:
            raise BadRequest("resolution: say what fixed it (it cannot be blank)")
        seen = await self._seen(user, session_id, handoff_id)
        h = seen.handoff
        if h.state != HandoffState.claimed:
            raise self._conflict(seen, "Only a claimed handoff can be resolved.")
        self._check_claimer_or_admin(user, seen, "resolve it")
        now = datetime.now(UTC)
        outcome = Outcome(data.outcome)
        resolved = await self._apply(
            user,
            seen,
            now,
            state=HandoffState.resolved,
            resolved_by=user.id,
            resolved_at=now,
            resolution=resolution,
            outcome=outcome,
        )
        await self._move_session(user, session_id, SessionStatus.resolved, assignee_id=h.claimed_by, now=now)
        told = await self._tell(
            resolved, [resolved.created_by], NotificationKind.resolved,
            lifecycle_title(user.name, f"resolved {what(resolved.intent)}", seen.summary),
            body=snippet(resolution, 280), actor=user,
        )  # fmt: skip
        if h.claimed_by != user.id:  # an admin closed it for its claimer
            await self._tell(
                resolved, [h.claimed_by], NotificationKind.resolved,
                lifecycle_title(user.name, "resolved a handoff you had", seen.summary),
                body=snippet(resolution, 280), actor=user,
            )  # fmt: skip
        ids = {"handoff_id": str(resolved.id), "session_id": str(resolved.session_id)}
        if resolved.created_by in told:
            self.outbox.add(
                user.account_id,
                JobTopic.send_resolution_email,
                {**ids, "recipient_ids": [str(resolved.created_by)]},
            )
        if (resolved.session_snapshot or {}).get("psa_ticket_id"):
            self.outbox.add(user.account_id, JobTopic.push_to_psa, {**ids, "phase": "resolution"})
        await self._record(
            user, resolved, TimelineKind.resolved, now, outcome=outcome.value, resolution=resolution
        )
        self._publish(
            HandoffResolved(
                **ids_of(resolved), resolved_by=_actor(user), outcome=outcome.value, resolution=resolution
            )
        )
        await self.outbox.commit()
        return resolved

    async def withdraw(
        self, user: User, session_id: UUID, handoff_id: UUID, data: WithdrawBody | None = None
    ) -> SessionHandoff:
        """The creator takes back an open handoff (they fixed it meanwhile): resolved, ``withdrawn``."""
        reason = (data.reason if data else "").strip()
        seen = await self._seen(user, session_id, handoff_id)
        h = seen.handoff
        if h.created_by != user.id:
            raise Forbidden(f"Only {seen.creator_name}, who raised this handoff, can withdraw it.")
        if h.state != HandoffState.open:
            raise self._conflict(seen, "Only a handoff nobody has picked up can be withdrawn.")
        now = datetime.now(UTC)
        withdrawn = await self._apply(
            user,
            seen,
            now,
            state=HandoffState.resolved,
            resolved_by=user.id,
            resolved_at=now,
            resolution=reason or None,
            outcome=Outcome.withdrawn,
        )
        await self._move_session(user, session_id, SessionStatus.resolved, assignee_id=None, now=now)
        await self._record(user, withdrawn, TimelineKind.withdrawn, now, reason=reason)
        self._publish(
            HandoffResolved(
                **ids_of(withdrawn),
                resolved_by=_actor(user),
                outcome=Outcome.withdrawn.value,
                resolution=reason,
            )
        )
        await self.outbox.commit()
        return withdrawn

    # -- the parts they share ---------------------------------------------------------------

    async def _read(self, user: User, session_id: UUID, handoff_id: UUID) -> Seen | None:
        found = (
            await self.db.execute(
                select(SessionHandoff, User.name, Claimer.name)
                .join(User, User.id == SessionHandoff.created_by)
                .outerjoin(Claimer, Claimer.id == SessionHandoff.claimed_by)
                .where(
                    SessionHandoff.id == handoff_id,
                    SessionHandoff.session_id == session_id,
                    SessionHandoff.account_id == user.account_id,
                )
                .execution_options(populate_existing=True)
            )
        ).first()
        return None if found is None else Seen(found[0], found[1], found[2])

    async def _seen(self, user: User, session_id: UUID, handoff_id: UUID) -> Seen:
        seen = await self._read(user, session_id, handoff_id)
        if seen is None:
            raise NotFound("Handoff not found")
        return seen

    async def _apply(self, user: User, seen: Seen, now: datetime, **values: Any) -> SessionHandoff:
        """Write the transition if the handoff is still the version it was decided on."""
        h = seen.handoff
        done = await self.db.scalar(
            update(SessionHandoff)
            .where(SessionHandoff.id == h.id, SessionHandoff.version == h.version)
            .values(version=h.version + 1, updated_at=now, **values)
            .returning(SessionHandoff)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if done is None:
            # Nothing was written. Under READ COMMITTED the next statement sees what the
            # winner committed: read it to say where the handoff is now.
            now_seen = await self._seen(user, h.session_id, h.id)
            raise self._conflict(now_seen, "This handoff changed meanwhile.")
        return done

    @staticmethod
    def _conflict(seen: Seen, message: str) -> Conflict:
        """A 409 that says where the handoff is now (and who has it), so the client can show it."""
        h = seen.handoff
        if h.state == HandoffState.claimed:
            now = f"{seen.claimer_name or 'A colleague'} is working on it."
        elif h.state == HandoffState.open:
            now = "It is waiting in the queue."
        else:
            now = "It was withdrawn." if h.outcome == Outcome.withdrawn else "It is resolved."
        claimed_by = Person(id=h.claimed_by, name=seen.claimer_name or "") if h.claimed_by else None
        extra: dict[str, Any] = {"state": h.state.value}
        if claimed_by and h.state == HandoffState.claimed:
            extra["claimed_by"] = {"id": str(claimed_by.id), "name": claimed_by.name}
        return Conflict(f"{message} {now}", **extra)

    @staticmethod
    def _check_claimer_or_admin(user: User, seen: Seen, doing: str) -> None:
        if seen.handoff.claimed_by != user.id and not user.role.at_least(Role.admin):
            who = seen.claimer_name or "the engineer who has it"
            raise Forbidden(f"Only {who}, who has this handoff, or an admin can {doing}.")

    async def _colleague(self, user: User, user_id: UUID) -> User:
        colleague = await self.db.scalar(
            select(User).where(
                User.id == user_id, User.account_id == user.account_id, User.is_active.is_(True)
            )
        )
        # One message for "another tenant's" and "no such user": no hint that a foreign id exists.
        if colleague is None or colleague.role not in SENIOR_ROLES:
            raise BadRequest("to_user_id: not an active engineer, admin or owner of your account")
        return colleague

    async def _move_session(
        self, user: User, session_id: UUID, status: SessionStatus, *, assignee_id: UUID | None, now: datetime
    ) -> None:
        await self.db.execute(
            update(AISession)
            .where(AISession.id == session_id, AISession.account_id == user.account_id)
            .values(status=status, assignee_id=assignee_id, updated_at=now)
        )

    async def _tell(
        self,
        h: SessionHandoff,
        recipients: list[UUID | None],
        kind: NotificationKind,
        title: str,
        *,
        actor: User,
        body: str = "",
    ) -> list[UUID]:
        told = await notify(
            self.db,
            account_id=h.account_id,
            recipients=recipients,
            kind=kind,
            title=title,
            body=body,
            handoff_id=h.id,
            session_id=h.session_id,
            skip=[actor.id],
        )
        self._told.extend(told)
        return told

    async def _record(
        self, user: User, h: SessionHandoff, kind: TimelineKind, now: datetime, **detail: Any
    ) -> None:
        await record(
            self.db,
            account_id=h.account_id,
            handoff_id=h.id,
            kind=kind,
            actor_id=user.id,
            detail={k: _plain(v) for k, v in detail.items() if v not in (None, "")},
            at=now,
        )

    def _publish(self, event: HandoffClaimed | HandoffReleased | HandoffReassigned | HandoffResolved) -> None:
        event.recipient_ids = [str(r) for r in dict.fromkeys(self._told)]
        self._told = []
        self.outbox.add(UUID(event.account_id), EVENT_TOPIC, event_payload(event))


def _plain(value: Any) -> Any:
    return {"id": value.id, "name": value.name} if isinstance(value, Actor) else value
