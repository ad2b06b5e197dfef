"""The live event bus over Redis: publish from anywhere, history for reconnects.

Each account has one Redis Stream (bounded history, ids monotonic per
account) and one pub/sub channel (live delivery). A Lua script appends to the
stream and publishes in one atomic step, so the stream order is the publish
order and a subscriber can stitch history and live events together by id
without gaps or duplicates.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, TypedDict
from uuid import UUID

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

log = logging.getLogger(__name__)

STREAM_PREFIX = "handoffs:events:stream:"
CHANNEL_PREFIX = "handoffs:events:live:"

#: Events kept per account for `Last-Event-ID` resumes (approximate, Redis trims in blocks).
HISTORY_MAXLEN = 1000
#: An idle account's history expires after this many seconds.
HISTORY_TTL_SECONDS = 24 * 3600

# KEYS[1] stream, KEYS[2] channel; ARGV[1] maxlen, ARGV[2] payload, ARGV[3] ttl seconds.
_PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'd', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], id .. '\\n' .. ARGV[2])
return id
"""

# One atomic read for a resume: the oldest entry, the length and the entries
# after ARGV[1], so trimming cannot slip in between the gap check and the read.
# KEYS[1] stream; ARGV[1] exclusive start id; ARGV[2] count.
_HISTORY_LUA = """
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local len = redis.call('XLEN', KEYS[1])
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {first, last, len, entries}
"""


def stream_key(account_id: UUID | str) -> str:
    return f"{STREAM_PREFIX}{account_id}"


def channel_name(account_id: UUID | str) -> str:
    return f"{CHANNEL_PREFIX}{account_id}"


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One live event. ``id`` is the Redis Stream id: monotonic within an account."""

    type: str
    account_id: str
    handoff_id: str | None = None
    session_id: str | None = None
    at: str = ""
    id: str = ""
    data: dict[str, Any] = {}

    def as_json(self) -> bytes:
        """The SSE ``data:`` object: the fields above (but id) flattened with ``data``."""
        body = {
            **self.data,
            "type": self.type,
            "account_id": self.account_id,
            "handoff_id": self.handoff_id,
            "session_id": self.session_id,
            "at": self.at,
        }
        return msgspec.json.encode(body)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], event_id: str = "") -> Event:
        known = {"type", "account_id", "handoff_id", "session_id", "at", "id"}
        return cls(
            type=str(payload["type"]),
            account_id=str(payload["account_id"]),
            handoff_id=payload.get("handoff_id"),
            session_id=payload.get("session_id"),
            at=str(payload.get("at") or datetime.now(UTC).isoformat()),
            id=event_id,
            data={k: v for k, v in payload.items() if k not in known},
        )


# -- the live events: one Struct per type, the only list of their names -----------------------


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
    reason: str


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
    )
)
#: Frames the stream itself sends, about the connection rather than a handoff.
STREAM_EVENT_TYPES = ("ready", "resync")


def event_payload(event: AnyHandoffEvent) -> dict[str, Any]:
    """The event as the outbox stores it and the bus publishes it (``type`` included)."""
    payload: dict[str, Any] = msgspec.to_builtins(event)
    return payload


StreamKey = tuple[int, int]
"""A stream id as ``(milliseconds, sequence)``: ids compare numerically, never as strings."""

#: The id before every event: "from the beginning of the history".
ZERO_ID = "0-0"

RawEvent = tuple[str, bytes]
"""An event as stored: its stream id and its JSON body (the SSE ``data:``)."""


def parse_stream_id(event_id: str) -> StreamKey | None:
    """``"1700000000000-3"`` → ``(1700000000000, 3)``; None when it is not a stream id."""
    ms, sep, seq = event_id.strip().partition("-")
    for part in (ms, seq):
        # isdigit() alone accepts non-ASCII digits, which int() would happily read.
        if not sep or not part.isascii() or not part.isdigit() or len(part) > 20:
            return None
    return int(ms), int(seq)


class EventBus:
    """Publishes events and reads an account's history. Shared by API replicas and workers."""

    def __init__(
        self, redis: Redis, *, maxlen: int = HISTORY_MAXLEN, ttl_seconds: int = HISTORY_TTL_SECONDS
    ) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self.ttl_seconds = ttl_seconds
        self._script = redis.register_script(_PUBLISH_LUA)
        self._history_script = redis.register_script(_HISTORY_LUA)
        self.published = 0
        self.failures = 0

    async def publish(self, payload: dict[str, Any]) -> str:
        """Append to the account's history and publish live; return the event id."""
        event = Event.from_payload(payload)
        body = event.as_json()
        raw = await self._script(
            keys=[stream_key(event.account_id), channel_name(event.account_id)],
            args=[self.maxlen, body, self.ttl_seconds],
        )
        self.published += 1
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def publish_into(self, pipe: Pipeline, payload: dict[str, Any]) -> None:
        """Queue a publish on a pipeline (the relay batches a commit's events and jobs in one round trip)."""
        event = Event.from_payload(payload)
        await self._script(
            keys=[stream_key(event.account_id), channel_name(event.account_id)],
            args=[self.maxlen, event.as_json(), self.ttl_seconds],
            client=pipe,
        )
        self.published += 1

    async def history_after(self, account_id: UUID | str, last_id: str) -> list[Event] | None:
        """Events after ``last_id``, oldest first; None when what followed ``last_id`` may be lost.

        See :meth:`raw_history_after` for when None is answered.
        """
        raw = await self.raw_history_after(account_id, last_id)
        if raw is None:
            return None
        return [Event.from_payload(msgspec.json.decode(body), event_id) for event_id, body in raw]

    async def raw_history_after(self, account_id: UUID | str, last_id: str) -> list[RawEvent] | None:
        """``(id, JSON body)`` of the events after ``last_id``, oldest first, as stored.

        None means the caller cannot know what it missed and should resync:
        the id is malformed, older than the oldest event kept (trimmed away),
        newer than the newest (not an id this history issued: e.g. Redis lost
        its data and started a new history), or the history expired.
        ``"0-0"`` (a client that connected before the account had any event)
        gets the whole history as long as none of it was ever trimmed.
        """
        after = parse_stream_id(last_id)
        if after is None:
            return None
        first, last, length, entries = await self._history_script(
            keys=[stream_key(account_id)],
            # MAXLEN ~ keeps at most one node (100 entries) over maxlen: one read gets all.
            args=[f"{after[0]}-{after[1]}", self.maxlen * 2 + 200],
        )
        if not first:
            return [] if after == (0, 0) else None
        oldest = parse_stream_id(_decode(first[0][0]))
        newest = parse_stream_id(_decode(last[0][0]))
        if oldest is None or newest is None or after > newest:
            return None
        # Approximate trimming never leaves fewer than maxlen entries, so a
        # shorter history was never trimmed: "0-0" then misses nothing.
        if after < oldest and not (after == (0, 0) and int(length) < self.maxlen):
            return None
        return [(_decode(entry_id), _entry_body(fields)) for entry_id, fields in entries]

    async def latest_id(self, account_id: UUID | str) -> str:
        """The newest event id of the account, ``"0-0"`` when there is none."""
        entries = await self.redis.xrevrange(stream_key(account_id), count=1)
        return _decode(entries[0][0]) if entries else ZERO_ID


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_body(fields: Any) -> bytes:
    # Script replies carry an entry's fields as a flat [name, value, ...] list.
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    raw = fields.get(b"d", fields.get("d", b"{}"))
    return raw if isinstance(raw, bytes) else str(raw).encode()


def split_live_message(message: bytes) -> RawEvent:
    """A pub/sub message (``b"<id>\\n<json>"``) as ``(id, JSON body)``, without decoding the JSON."""
    event_id, _, body = message.partition(b"\n")
    return event_id.decode("ascii", "replace"), body


def decode_live_message(message: bytes | str) -> Event:
    """A pub/sub message (``"<id>\\n<json>"``) back into an Event."""
    raw = message.encode() if isinstance(message, str) else message
    event_id, body = split_live_message(raw)
    return Event.from_payload(msgspec.json.decode(body), event_id)
