"""What each console page shows, read through the same services the API uses.

Pages are rendered on the server with everything they need; the page's
script then follows the live stream from ``last_event_id``, the newest event
id read *before* the page's data. Whatever happens while the page renders is
therefore replayed to it rather than lost (the handlers in console.js are
idempotent, so an event that the data already reflects changes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import msgspec
from litestar.exceptions import PermissionDeniedException
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import Account, AISession, SessionHandoff, TimelineEntry, User
from handoffs.domain.accounts.service import UserService
from handoffs.domain.escalation_policy.ladder import AUDIENCE_LABELS, steps_up
from handoffs.domain.escalation_policy.service import EscalationPolicyService
from handoffs.domain.figures.service import Window, read_figures
from handoffs.domain.handoffs.assessment import partial_of
from handoffs.domain.handoffs.comments import HandoffComments
from handoffs.domain.handoffs.schemas import CommentOut, HandoffPage, TimelineEntryOut
from handoffs.domain.handoffs.search import SearchFilters, read_queue, search_handoffs
from handoffs.domain.handoffs.service import HandoffService
from handoffs.domain.handoffs.similar import problem_text, similar_resolved, similar_to, suggested_engineers
from handoffs.domain.handoffs.timeline import read_timeline
from handoffs.domain.notifications.service import NotificationService
from handoffs.domain.sessions.service import SessionService
from handoffs.enums import (
    SENIOR_ROLES,
    AssessmentStatus,
    HandoffIntent,
    HandoffState,
    Outcome,
    Priority,
    Role,
    SessionStatus,
    TimelineKind,
)
from handoffs.events import EventBus
from handoffs.web.charts import bar_chart
from handoffs.web.filters import label

log = logging.getLogger(__name__)

#: Message roles as the transcript labels them.
ROLE_LABELS = {"user": "Engineer", "assistant": "AI assistant", "tool": "Tool output"}
#: What a resolver may pick (``withdrawn`` is the creator's withdraw only), as the form offers them.
OUTCOMES = [
    (Outcome.fixed, "Fixed"),
    (Outcome.workaround, "Workaround"),
    (Outcome.not_reproducible, "Not reproducible"),
    (Outcome.duplicate, "Duplicate"),
    (Outcome.other, "Other"),
]
#: The policy form's audiences, as the select offers them (the ladder's labels, capitalised).
AUDIENCES = [(key, text[:1].upper() + text[1:]) for key, text in AUDIENCE_LABELS.items()]
#: The team page's periods (days, ending with today in UTC).
PERIODS = (7, 30)
#: At most this many open escalations carry their ladder to the page (the queue shows 200).
LADDER_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Day:
    """One UTC day of the team page's chart: its figures as the figures service answers them."""

    day: datetime
    p50: float | None
    claimed: int
    escalations: int


class ConsoleViews:
    """The data of the console's pages for one signed-in user."""

    def __init__(self, db: AsyncSession, user: User, bus: EventBus | None) -> None:
        self.db = db
        self.user = user
        self.bus = bus
        self.sessions = SessionService(db)
        self.handoffs = HandoffService(db)
        self.users = UserService(db)

    @property
    def is_senior(self) -> bool:
        """Works the queue: sees it, picks up, follows the live stream."""
        return self.user.role in SENIOR_ROLES

    async def _resume_point(self) -> str | None:
        if not self.is_senior or self.bus is None:
            return None
        try:
            return await self.bus.latest_id(self.user.account_id)
        except RedisError:
            # The page still renders; its stream then starts live, without the replay.
            log.warning("could not read the newest event id for the console page", exc_info=True)
            return None

    async def chrome(self, page: str, *, current_session_id: UUID | None = None) -> dict[str, Any]:
        """What every signed-in page shows around its content: header, bell, sessions sidebar."""
        last_event_id = await self._resume_point()  # first: see the module docstring
        account = await self.db.get(Account, self.user.account_id)
        unread = await NotificationService(self.db).unread_count(self.user)
        user = self.user
        return {
            "user": user,
            "account_name": account.name if account else "",
            "is_senior": self.is_senior,
            "is_admin": user.role.at_least(Role.admin),
            "can_create": user.role.at_least(Role.engineer),
            "unread": unread,
            "sessions": await self.sessions.list_for(user),
            "current_session_id": current_session_id,
            "now": datetime.now(UTC),
            "page_data": {
                "page": page,
                "user": {"id": str(user.id), "name": user.name, "role": user.role.value},
                "stream": self.is_senior,
                "lastEventId": last_event_id,
                "serverNow": datetime.now(UTC).isoformat(),
                "unread": unread,
            },
        }

    async def sidebar(self, current_session_id: UUID | None) -> dict[str, Any]:
        return {
            "sessions": await self.sessions.list_for(self.user),
            "current_session_id": current_session_id,
        }

    async def console(self) -> dict[str, Any]:
        context = await self.chrome("console")
        queue = await read_queue(self.db, self.user) if self.is_senior else []
        context["queue"] = queue
        context["page_data"]["queue"] = msgspec.to_builtins(queue)
        context["page_data"]["people"] = await self._people_json()
        if self.is_senior:
            context["page_data"]["policy"] = await self.policy_json()
            context["page_data"]["ladder"] = await self.ladder()
        return context

    async def policy_json(self) -> dict[str, Any]:
        """The account's ladder as queue.js computes due times from it (``labels``: who a level tells)."""
        policy = await EscalationPolicyService(self.db).get(self.user)
        return {
            "levels": msgspec.to_builtins(policy.levels),
            "labels": AUDIENCE_LABELS,
            "isDefault": policy.is_default,
        }

    async def ladder(self) -> dict[str, dict[str, Any]]:
        """Where each open escalation of the account is on the ladder, by handoff id.

        ``startedAt`` (creation or last release), ``next`` (the index of the level due next),
        ``nextAt`` (its due time, null when none is left), ``level`` (steps fired), and the last
        step's time and audience (``lastAt``, ``lastNotify``, from the timeline). The queue API
        does not carry these (only ``escalation_level``), so the console reads them here.
        """
        if not self.is_senior:
            return {}
        h = SessionHandoff
        rows = (
            await self.db.execute(
                select(
                    h.id, h.priority, h.intent, h.created_at, h.ladder_started_at, h.ladder_next,
                    h.escalation_level, h.next_escalation_at,
                )
                .where(h.account_id == self.user.account_id, h.state == HandoffState.open,
                       h.intent == HandoffIntent.escalate)
                .order_by(h.created_at)
                .limit(LADDER_LIMIT)
            )
        ).all()  # fmt: skip
        stepped = [row.id for row in rows if row.escalation_level > 0]
        last: dict[UUID, tuple[datetime, str]] = {}
        if stepped:
            t = TimelineEntry
            entries = await self.db.execute(
                select(t.handoff_id, t.created_at, t.detail)
                .distinct(t.handoff_id)
                .where(t.account_id == self.user.account_id, t.kind == TimelineKind.escalated,
                       t.handoff_id.in_(stepped))
                .order_by(t.handoff_id, t.created_at.desc())
            )  # fmt: skip
            last = {e.handoff_id: (e.created_at, str((e.detail or {}).get("notify", ""))) for e in entries}
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            if not steps_up(row.intent, row.priority):
                continue
            at, notify = last.get(row.id, (None, ""))
            out[str(row.id)] = {
                "startedAt": _iso(row.ladder_started_at or row.created_at),
                "next": row.ladder_next,
                "nextAt": _iso(row.next_escalation_at),
                "level": row.escalation_level,
                "lastAt": _iso(at),
                "lastNotify": notify,
            }
        return out

    async def ladder_part(self) -> dict[str, Any]:
        """``/parts/ladder``: the ladder of the open escalations and the policy (engineers and up)."""
        self._require(Role.engineer, "see the escalation queue")
        return {"ladder": await self.ladder(), "policy": await self.policy_json()}

    def _require(self, minimum: Role, action: str) -> None:
        if not self.user.role.at_least(minimum):
            raise PermissionDeniedException(f"Your role may not {action}.")

    async def settings_page(self) -> dict[str, Any]:
        """``/settings`` (admins and owners): the escalation policy and the chat integration."""
        self._require(Role.admin, "change the account's settings")
        context = await self.chrome("settings")
        policy = await EscalationPolicyService(self.db).get(self.user)
        context.update(
            policy=policy,
            levels=[_level_form(level.after_seconds, level.notify) for level in policy.levels],
            audiences=AUDIENCES,
            priorities=[(p.value, label(p.value)) for p in Priority],
        )
        return context

    async def team_page(self, days: int) -> dict[str, Any]:
        """``/team`` (engineers and up): the figures of the last ``days`` days (UTC, today included).

        The figures service answers for a period; the daily time-to-claim chart calls it once a
        day (7 or 30 calls of two index range scans each), so every number on the page is the
        API's own definition, for the period the page names.
        """
        self._require(Role.engineer, "read the team figures")
        days = days if days in PERIODS else PERIODS[0]
        context = await self.chrome("team")
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        until = today + timedelta(days=1)
        since = until - timedelta(days=days)
        figures = await read_figures(self.db, self.user, Window(since, until))
        daily = []
        for n in range(days):
            start = since + timedelta(days=n)
            day = await read_figures(self.db, self.user, Window(start, start + timedelta(days=1)))
            daily.append(Day(start, day.time_to_claim_seconds.p50, day.claimed, day.escalations))
        priorities = list(reversed(Priority))  # urgent first, as the queue orders them
        context.update(
            days=days,
            periods=PERIODS,
            one_day=timedelta(days=1),
            figures=figures,
            daily=daily,
            priorities=priorities,
            claim_chart=bar_chart([(d.day.strftime("%b %-d"), d.p50) for d in daily], unit="duration"),
            priority_chart=bar_chart(
                [(label(p.value), float(figures.by_priority[p].escalations)) for p in priorities],
                unit="count",
            ),
        )
        return context

    async def session_page(self, session_id: UUID) -> dict[str, Any]:
        context = await self.chrome("session", current_session_id=session_id)
        context.update(await self.session_state(session_id))
        session = context["session"]
        people = context["people"]
        current: SessionHandoff | None = context["current_handoff"]
        mine = session.owner_id == self.user.id
        context.update(
            transcript=transcript_of(await self.sessions.messages(session)),
            role_labels=ROLE_LABELS,
            owner_name=_name(people, session.owner_id),
            can_write=session.status != SessionStatus.resolved
            and self.user.id in (session.owner_id, session.assignee_id),
            # One unresolved handoff per session; after a resolve the owner may hand it off again.
            can_hand_off=mine and (current is None or current.state == HandoffState.resolved),
            targets=[
                u for u in people.values() if u.is_active and u.role in SENIOR_ROLES and u.id != self.user.id
            ],
            comments=await self.comments_of(session_id, current) if current else [],
            can_comment=current is not None and self._may_comment(current),
        )
        if context["can_hand_off"]:
            context.update(await self._suggested_targets(session, context["targets"]))
        context["page_data"]["sessionId"] = str(session.id)
        context["page_data"]["handoffIds"] = [str(h.id) for h in context["handoffs"]]
        context["page_data"]["currentHandoffId"] = str(current.id) if current else None
        return context

    async def session_state(self, session_id: UUID) -> dict[str, Any]:
        """The session's handoff state: the notice, the status pill and the handoffs list.

        One read renders all three (and their live part), so they never disagree.
        """
        session = await self.sessions.get_visible(self.user, session_id)
        handoffs = await self.handoffs.list_for_session(self.user, session_id)
        people = await self._people()
        return {
            "session": session,
            "handoffs": handoffs,
            # Newest first: the one the notice and the comments are about.
            "current_handoff": handoffs[0] if handoffs else None,
            "people": people,
            "now": datetime.now(UTC),
        }

    async def handoff_page(self, session_id: UUID, handoff_id: UUID) -> dict[str, Any]:
        context = await self.chrome("handoff", current_session_id=session_id)
        context.update(await self.handoff_parts(session_id, handoff_id))
        handoff: SessionHandoff = context["handoff"]
        context["page_data"]["handoff"] = {
            "id": str(handoff.id),
            "sessionId": str(handoff.session_id),
            "assessmentStatus": handoff.assessment_status.value,
            "claimedBy": str(handoff.claimed_by) if handoff.claimed_by else None,
            "state": handoff.state.value,
        }
        context["comments"] = await self.comments_of(session_id, handoff)
        context["can_comment"] = self._may_comment(handoff)
        context["similar"] = await similar_to(self.db, handoff)
        return context

    async def handoff_parts(self, session_id: UUID, handoff_id: UUID) -> dict[str, Any]:
        """The handoff context screen's data; also what its live parts re-render from."""
        # The session first: it answers 404 to whoever may not read it (a viewer,
        # another tenant), before anything about the handoff is read.
        session = await self.sessions.get_visible(self.user, session_id)
        handoff = await self.handoffs.get(self.user, session_id, handoff_id)
        people = await self._people()
        snapshot = handoff.session_snapshot or {}
        assessment = handoff.ai_assessment or {}
        return {
            "session": session,
            "handoff": handoff,
            "people": people,
            "creator_name": _name(people, handoff.created_by),
            "claimer_name": _name(people, handoff.claimed_by) if handoff.claimed_by else None,
            "target_name": _name(people, handoff.target_user_id) if handoff.target_user_id else None,
            "resolver_name": _name(people, handoff.resolved_by) if handoff.resolved_by else None,
            "transcript": snapshot.get("messages") or [],
            "role_labels": ROLE_LABELS,
            "assessment": assessment,
            "package": session.escalation_package or {},
            "is_pending": handoff.assessment_status == AssessmentStatus.pending,
            "partial": await partial_of(self.bus, handoff) if self.bus is not None else None,
            "now": datetime.now(UTC),
            "user": self.user,
            "outcomes": OUTCOMES,
            "timeline": timeline_lines(
                await read_timeline(self.db, self.user.account_id, handoff.id), people
            ),
            **self._permissions(handoff, people),
        }

    def _permissions(self, handoff: SessionHandoff, people: dict[UUID, User]) -> dict[str, Any]:
        """What the signed-in user may do to the handoff now: the API's rules, so no button answers 403."""
        user = self.user
        claimed = handoff.state == HandoffState.claimed
        works_it = claimed and (handoff.claimed_by == user.id or user.role.at_least(Role.admin))
        return {
            "can_claim": self.is_senior
            and handoff.state == HandoffState.open
            and handoff.created_by != user.id,
            "can_release": works_it,
            "can_resolve": works_it,
            "can_reassign": works_it,
            "can_withdraw": handoff.state == HandoffState.open and handoff.created_by == user.id,
            # The retry endpoint's rule: engineers and up, a failed assessment, not resolved.
            "can_retry": user.role.at_least(Role.engineer)
            and handoff.assessment_status == AssessmentStatus.failed
            and handoff.state != HandoffState.resolved,
            "reassign_targets": [
                u
                for u in people.values()
                if u.is_active
                and u.role in SENIOR_ROLES
                and u.id not in (handoff.claimed_by, handoff.created_by)
            ]
            if works_it
            else [],
        }

    def _may_comment(self, handoff: SessionHandoff) -> bool:
        # The API lets engineers and up comment (the creator always is one); viewers only read.
        return self.user.role.at_least(Role.engineer) or handoff.created_by == self.user.id

    async def comments_of(self, session_id: UUID, handoff: SessionHandoff) -> list[CommentOut]:
        return await HandoffComments(self.db).list(self.user, session_id, handoff.id)

    async def handoffs_list(
        self, *, state: HandoffState | None, q: str | None, cursor: str | None
    ) -> dict[str, Any]:
        """The account's handoffs, newest first (every role, viewers included): the read-only list."""
        context = await self.chrome("handoffs")
        page: HandoffPage = await search_handoffs(
            self.db, self.user, SearchFilters(state=state, q=q, limit=25, cursor=cursor)
        )
        context.update(
            items=page.items,
            next_cursor=page.next_cursor,
            state=state.value if state else "",
            q=q or "",
            states=[
                ("", "Any state"),
                ("open", "Waiting"),
                ("claimed", "Being worked"),
                ("resolved", "Resolved"),
            ],
        )
        return context

    async def _people(self) -> dict[UUID, User]:
        """Everyone of the account, former colleagues included: history names them too."""
        return {u.id: u for u in await self.users.colleagues(self.user, include_inactive=True)}

    async def _people_json(self) -> dict[str, str]:
        return {str(uid): u.name for uid, u in (await self._people()).items()}

    async def _suggested_targets(self, session: AISession, targets: list[User]) -> dict[str, Any]:
        """The escalate form's "Send to", people who fixed similar ones first.

        The handoff does not exist yet: the session's title and problem are the text, and the
        junior about to raise it is never suggested (they cannot be its target anyway).
        """
        similar = await similar_resolved(
            self.db,
            account_id=self.user.account_id,
            text=problem_text({"title": session.title, "problem_summary": session.problem_summary}),
            exclude_session_id=session.id,
        )
        by_id = {t.id: t for t in targets}
        suggested = [
            (by_id[e.id], e.resolved_similar)
            for e in suggested_engineers(similar, exclude=self.user.id)
            if e.id in by_id
        ]
        chosen = {user.id for user, _ in suggested}
        return {
            "suggested_targets": suggested,
            "other_targets": [t for t in targets if t.id not in chosen],
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _level_form(after_seconds: int, notify: str) -> dict[str, Any]:
    """A level as the form shows it: in minutes when whole minutes, else in seconds."""
    unit: Literal["minutes", "seconds"] = "minutes" if after_seconds % 60 == 0 else "seconds"
    amount = after_seconds // 60 if unit == "minutes" else after_seconds
    return {"amount": amount, "unit": unit, "notify": notify}


def _name(people: dict[UUID, User], user_id: UUID | None) -> str:
    user = people.get(user_id) if user_id else None
    return user.name if user else "a former colleague"


def transcript_of(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Session messages in the shape of a handoff snapshot's, so one template renders both."""
    return [{"role": m.role.value, "content": m.content, "created_at": m.created_at} for m in messages]


def timeline_lines(entries: Sequence[TimelineEntryOut], people: dict[UUID, User]) -> list[dict[str, Any]]:
    """A handoff's timeline as sentences: ``Sam Senior picked this up``, ``Ada Admin resolved it (fixed)``.

    Each line is ``{at, kind, text, quote}``: ``text`` and ``quote`` are plain text (the template
    escapes them); ``quote`` is what someone wrote (a reason, a note, the resolution).
    """
    lines = []
    for entry in entries:
        text, quote = timeline_sentence(entry, people)
        lines.append({"at": entry.at, "kind": entry.kind, "text": text, "quote": quote})
    return lines


def timeline_sentence(entry: TimelineEntryOut, people: dict[UUID, User]) -> tuple[str, str]:
    d = entry.detail
    who = entry.actor.name if entry.actor else "Someone"

    def person(key: str) -> str:
        value = d.get(key)
        return str(value.get("name") or "a colleague") if isinstance(value, dict) else "a colleague"

    match entry.kind:
        case "created":
            verb = "parked this in the team queue" if d.get("intent") == "park" else "escalated this"
            target = d.get("target_user_id")
            if target:
                verb += f" for {_name(people, _uuid(target))}"
            return f"{who} {verb}", ""
        case "claimed":
            return f"{who} picked this up", ""
        case "released":
            if isinstance(d.get("from_user"), dict) and d["from_user"].get("name") != who:
                return f"{who} put this back in the queue (it was {person('from_user')}'s)", str(
                    d.get("reason", "")
                )
            return f"{who} put this back in the queue", str(d.get("reason", ""))
        case "reassigned":
            return f"{who} handed this to {person('to_user')}", str(d.get("note", ""))
        case "resolved":
            outcome = label(d.get("outcome") or "fixed").lower()
            return f"{who} resolved it ({outcome})", str(d.get("resolution", ""))
        case "withdrawn":
            return f"{who} withdrew it", str(d.get("reason", ""))
        case "commented":
            return f"{who} commented", str(d.get("excerpt", ""))
        case "escalated":
            level = d.get("level")
            return (
                f"Nobody had picked it up: stepped up to level {level}" if level else "Stepped up the ladder"
            ), ""
        case "assessment_ready":
            source = "offline assessor" if d.get("source") == "offline" else "AI"
            return f"The {source} assessment is ready", ""
        case "assessment_failed":
            if d.get("fallback") == "offline":
                return "The AI assessment failed; the offline summary stands in", str(d.get("reason", ""))
            return "The AI assessment failed", str(d.get("reason", ""))
        case "assessment_retried":
            return f"{who} asked the AI again", ""
        case "emails_sent":
            return "Emails went out", ""
        case "psa_synced":
            ticket = f" #{d['ticket']}" if d.get("ticket") else ""
            return f"Ticket{ticket} updated in {d.get('vendor') or 'the PSA'}", ""
        case "psa_failed":
            return "Updating the PSA ticket failed", str(d.get("reason", ""))
        case _:
            return f"{who}: {label(entry.kind).lower()}", ""


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None
