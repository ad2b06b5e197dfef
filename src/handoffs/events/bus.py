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
from typing import Any
from uuid import UUID

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from handoffs.events.ids import (
    LIVE_ONLY_ID,
    ZERO_ID,
    RawEvent,
    channel_name,
    parse_stream_id,
    partial_assessment_key,
    split_live_message,
    stream_key,
)

log = logging.getLogger(__name__)

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

# A live-only event that is also the newest state of something (an assessment as written so
# far): number it, keep it as that state, publish it; never in the history.
# KEYS[1] state key, KEYS[2] its seq counter, KEYS[3] channel; ARGV[1] the JSON body without its
# opening brace, ARGV[2] ttl seconds. The body gains "seq" as its first field.
_PUBLISH_LIVE_LUA = f"""
local seq = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local body = '{{"seq":' .. seq .. ',' .. ARGV[1]
redis.call('SET', KEYS[1], body, 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[3], '{LIVE_ONLY_ID}\\n' .. body)
return seq
"""

#: How long an assessment's partial is kept after its last delta (a stream that died mid-way).
PARTIAL_TTL_SECONDS = 15 * 60

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
        self._live_script = redis.register_script(_PUBLISH_LIVE_LUA)
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

    async def publish_partial(self, payload: dict[str, Any]) -> int:
        """Publish a live-only assessment delta (``payload`` without ``seq``) and keep it as the
        handoff's partial for late joiners; return its ``seq``."""
        event = Event.from_payload({k: v for k, v in payload.items() if k != "seq"})
        body = event.as_json()
        handoff_key = partial_assessment_key(str(event.handoff_id))
        seq = await self._live_script(
            keys=[handoff_key, handoff_key + ":seq", channel_name(event.account_id)],
            args=[body[1:], PARTIAL_TTL_SECONDS],
        )
        return int(seq)

    async def partial(self, handoff_id: UUID | str) -> dict[str, Any] | None:
        """The newest assessment delta of a handoff, as published; None when there is none."""
        raw = await self.redis.get(partial_assessment_key(handoff_id))
        if raw is None:
            return None
        body: dict[str, Any] = msgspec.json.decode(raw)
        return body

    async def forget_partial(self, handoff_id: UUID | str) -> None:
        """The assessment is stored (or given up): its partial is no longer news. The seq counter
        stays (it expires), so a retried run's deltas still count up."""
        await self.redis.delete(partial_assessment_key(handoff_id))

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


def decode_live_message(message: bytes | str) -> Event:
    """A pub/sub message (``"<id>\\n<json>"``) back into an Event."""
    raw = message.encode() if isinstance(message, str) else message
    event_id, body = split_live_message(raw)
    return Event.from_payload(msgspec.json.decode(body), event_id)
