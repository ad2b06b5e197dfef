"""The live events: one msgspec Struct per type, a tagged union, and the only list of their names.

Each is encoded once (``event_payload``) into the outbox row that the relay publishes; the
console subscribes to the same names (a test compares them with stream.js).
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec


class Actor(msgspec.Struct):
    """Who did it, as a card or a bell shows them."""

    id: str
    name: str


class HandoffEvent(msgspec.Struct, kw_only=True, tag_field="type"):
    """A live event about one handoff. The contract's minimum: ``type`` (the tag),
    ``handoff_id``, ``session_id``, ``account_id``; the relay routes by ``account_id``."""

    handoff_id: str
    session_id: str
    account_id: str


class HandoffIds(TypedDict):
    """The ids every handoff event carries, as its fields take them (``**ids_of(handoff)``)."""

    handoff_id: str
    session_id: str
    account_id: str


def ids_of(handoff: Any) -> HandoffIds:
    """The three ids of a handoff row (anything with ``id``, ``session_id``, ``account_id``)."""
    return HandoffIds(
        handoff_id=str(handoff.id), session_id=str(handoff.session_id), account_id=str(handoff.account_id)
    )


class HandoffCreated(HandoffEvent, tag="handoff_created"):
    """Parked or escalated: everything a queue card needs, and who was told."""

    title: str
    intent: str
    priority: str
    problem_summary: str
    psa_ticket_id: str | None
    session_title: str
    created_by: Actor
    target_user_id: str | None
    recipient_ids: list[str]


class HandoffClaimed(HandoffEvent, tag="handoff_claimed"):
    claimed_by: Actor
    claimed_at: str
    recipient_ids: list[str] = []
    """Whose bell rang for this change (the console re-reads its count only then)."""


class HandoffReleased(HandoffEvent, tag="handoff_released"):
    """Put back in the queue; the card reappears for everyone."""

    released_by: Actor
    reason: str = ""
    created_at: str = ""
    """When the handoff was raised: where the card goes back in the queue."""
    recipient_ids: list[str] = []


class HandoffReassigned(HandoffEvent, tag="handoff_reassigned"):
    """Handed from one claimer to another (it stays out of the queue)."""

    reassigned_by: Actor
    from_user: Actor | None
    to_user: Actor
    note: str = ""
    recipient_ids: list[str] = []


class HandoffResolved(HandoffEvent, tag="handoff_resolved"):
    """Resolved by its claimer or an admin, or withdrawn by its creator (``outcome`` says which)."""

    resolved_by: Actor
    outcome: str
    resolution: str
    recipient_ids: list[str] = []


class HandoffEscalated(HandoffEvent, tag="handoff_escalated"):
    """Nobody picked it up in time: the ladder stepped up and told more people."""

    level: int
    """The ladder step that fired (1, 2, …): the handoff's ``escalation_level`` now."""
    notify: str
    recipient_ids: list[str]
    title: str


class Comment(msgspec.Struct):
    id: str
    author: Actor
    body: str
    created_at: str


class HandoffCommented(HandoffEvent, tag="handoff_commented"):
    """A comment on the handoff; both screens append it."""

    comment: Comment
    recipient_ids: list[str] = []


class HandoffAssessmentReady(HandoffEvent, tag="handoff_assessment_ready"):
    assessment: dict[str, Any]


class HandoffAssessmentFailed(HandoffEvent, tag="handoff_assessment_failed"):
    """The AI assessment could not be made; the offline assessor's result stands in (``assessment``)."""

    reason: str
    assessment: dict[str, Any] | None = None


class HandoffAssessmentDelta(HandoffEvent, tag="handoff_assessment_delta"):
    """The assessment as the model writes it: live only (never in the replay history),
    at most one per ``ASSESSMENT_DELTA_INTERVAL`` per handoff; a late joiner reads the
    handoff's ``ai_assessment_partial`` instead."""

    field: str
    """The field being written, as a path: ``assessment.next_steps.1``."""
    text: str
    """That field's text so far."""
    partial: dict[str, Any]
    """Everything written so far, parsed (a partial ``record_assessment`` input)."""
    seq: int = 0
    """Set by the bus: increases with each delta of the handoff (across attempts); a client
    keeps the highest it has seen."""


AnyHandoffEvent = (
    HandoffCreated
    | HandoffClaimed
    | HandoffReleased
    | HandoffReassigned
    | HandoffResolved
    | HandoffCommented
    | HandoffEscalated
    | HandoffAssessmentReady
    | HandoffAssessmentFailed
    | HandoffAssessmentDelta
)
#: The handoff events' names, from the union: the console subscribes to the same (a test checks).
HANDOFF_EVENT_TYPES: tuple[str, ...] = tuple(
    str(cls.__struct_config__.tag)
    for cls in (
        HandoffCreated,
        HandoffClaimed,
        HandoffReleased,
        HandoffReassigned,
        HandoffResolved,
        HandoffCommented,
        HandoffEscalated,
        HandoffAssessmentReady,
        HandoffAssessmentFailed,
        HandoffAssessmentDelta,
    )
)
#: Frames the stream itself sends, about the connection rather than a handoff.
STREAM_EVENT_TYPES = ("ready", "resync", "access_ended")


def event_payload(event: AnyHandoffEvent) -> dict[str, Any]:
    """The event as the outbox stores it and the bus publishes it (``type`` included)."""
    payload: dict[str, Any] = msgspec.to_builtins(event)
    return payload
