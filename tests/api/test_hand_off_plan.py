"""The hand-off's pure plan step: who is told, which jobs follow, what the queue hears (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import msgspec

from handoffs.db.models import AISession, User
from handoffs.domain.escalation_policy.ladder import DEFAULT_LEVELS
from handoffs.domain.handoffs.plan import plan_hand_off
from handoffs.domain.handoffs.schemas import HandoffCreate
from handoffs.enums import EVENT_TOPIC, JobTopic, Role, SessionStatus

ACCOUNT = uuid4()
JANE = User(id=uuid4(), account_id=ACCOUNT, name="Jane Doe", email="jane@x.test", role=Role.engineer)
SAM = User(id=uuid4(), account_id=ACCOUNT, name="Sam Senior", email="sam@x.test", role=Role.engineer)
SENIORS = [SAM.id, uuid4()]


def session(ticket: str | None = "12345") -> AISession:
    return AISession(
        id=uuid4(), account_id=ACCOUNT, owner_id=JANE.id, title="Outlook", problem_summary="Outlook is failing",
        psa_ticket_id=ticket, status=SessionStatus.active,
    )  # fmt: skip


def plan(intent: str = "escalate", target: User | None = None, ticket: str | None = "12345"):  # type: ignore[no-untyped-def]
    data = msgspec.convert({"intent": intent, "engineer_notes": "  Rebuilt the profile  "}, HandoffCreate)
    return plan_hand_off(
        user=JANE, session=session(ticket), transcript=[], data=data, target=target, seniors=SENIORS,
        levels=DEFAULT_LEVELS, now=NOW,
    )  # fmt: skip


NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_an_escalation_tells_every_senior_and_queues_its_jobs_and_the_event() -> None:
    draft = plan()
    assert draft.next_escalation_at == NOW + timedelta(seconds=600)  # the default ladder's first level
    assert draft.recipient_ids == tuple(SENIORS)
    assert len(draft.notification_ids) == 2
    assert [row.topic for row in draft.outbox] == [
        JobTopic.enrich_escalation, JobTopic.send_escalation_emails, JobTopic.push_to_psa, JobTopic.post_to_chat,
        EVENT_TOPIC,
    ]  # fmt: skip
    event = draft.outbox[-1].payload
    assert (event["type"], event["handoff_id"], event["recipient_ids"]) == (
        "handoff_created", str(draft.id), [str(s) for s in SENIORS],
    )  # fmt: skip
    assert draft.session_status == SessionStatus.escalated
    assert draft.engineer_notes == "Rebuilt the profile"
    assert draft.title == "Escalation from Jane · #12345: Outlook is failing"


def test_a_targeted_escalation_tells_only_its_target_and_one_without_a_ticket_skips_the_psa() -> None:
    draft = plan(target=SAM, ticket=None)
    assert draft.recipient_ids == (SAM.id,)
    assert JobTopic.push_to_psa not in [row.topic for row in draft.outbox]


def test_parking_tells_nobody_and_queues_only_the_event() -> None:
    draft = plan(intent="park")
    assert draft.recipient_ids == ()
    assert [row.topic for row in draft.outbox] == [EVENT_TOPIC]
    assert draft.session_status == SessionStatus.parked
    assert draft.outbox[0].payload["title"] == "Parked by Jane: Outlook is failing"
    assert draft.next_escalation_at is None  # parked handoffs never step up
