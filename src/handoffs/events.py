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


def parse_stream_id(event_id: str) -> tuple[int, int] | None:
    """``"1700000000000-3"`` → ``(1700000000000, 3)``; None when it is not a stream id."""
    ms, sep, seq = event_id.strip().partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
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

    async def history_after(
        self, account_id: UUID | str, last_id: str, count: int = 2000
    ) -> list[Event] | None:
        """Events after ``last_id``, oldest first; None when ``last_id`` is older than the history kept.

        An unknown or malformed id also answers None: the caller cannot know
        what it missed and should resync.
        """
        if parse_stream_id(last_id) is None:
            return None
        key = stream_key(account_id)
        oldest = await self.redis.xrange(key, count=1)
        if oldest:
            first_id = _decode(oldest[0][0])
            if _older(last_id, first_id) and not await self._exists(key, last_id):
                return None
        elif last_id != "0-0":
            # No history at all: either nothing happened or it expired; an
            # id from the future of an empty stream cannot be trusted.
            return [] if await self.redis.exists(key) else None
        entries = await self.redis.xrange(key, min=f"({last_id}", count=count)
        return [_entry_event(entry_id, fields) for entry_id, fields in entries]

    async def latest_id(self, account_id: UUID | str) -> str:
        """The newest event id of the account, ``"0-0"`` when there is none."""
        entries = await self.redis.xrevrange(stream_key(account_id), count=1)
        return _decode(entries[0][0]) if entries else "0-0"

    async def _exists(self, key: str, event_id: str) -> bool:
        return bool(await self.redis.xrange(key, min=event_id, max=event_id, count=1))


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _older(a: str, b: str) -> bool:
    pa, pb = parse_stream_id(a), parse_stream_id(b)
    return pa is not None and pb is not None and pa < pb


def _entry_event(entry_id: bytes | str, fields: dict[Any, Any]) -> Event:
    raw = fields.get(b"d", fields.get("d", b"{}"))
    payload = msgspec.json.decode(raw)
    return Event.from_payload(payload, _decode(entry_id))


def decode_live_message(message: bytes | str) -> Event:
    """A pub/sub message (``"<id>\\n<json>"``) back into an Event."""
    text = message.decode() if isinstance(message, bytes) else message
    event_id, _, body = text.partition("\n")
    return Event.from_payload(msgspec.json.decode(body), event_id)
