"""Where an account's events live in Redis, and the ids they carry.

Each account has one Redis Stream (its history, ids monotonic per account) and one pub/sub
channel (live delivery); a stream id ``"<ms>-<seq>"`` is the SSE event id.
"""

from __future__ import annotations

from uuid import UUID

STREAM_PREFIX = "handoffs:events:stream:"
CHANNEL_PREFIX = "handoffs:events:live:"


def stream_key(account_id: UUID | str) -> str:
    return f"{STREAM_PREFIX}{account_id}"


def channel_name(account_id: UUID | str) -> str:
    return f"{CHANNEL_PREFIX}{account_id}"


StreamKey = tuple[int, int]
"""A stream id as ``(milliseconds, sequence)``: ids compare numerically, never as strings."""

#: The id before every event: "from the beginning of the history".
ZERO_ID = "0-0"

#: What a live-only event (an assessment delta) carries instead of a stream id: it is published
#: on the channel but never appended to the history, so it cannot be replayed or resumed from.
LIVE_ONLY_ID = "live"

PARTIAL_ASSESSMENT_PREFIX = "handoffs:assessment:partial:"


def partial_assessment_key(handoff_id: UUID | str) -> str:
    """The newest assessment delta of a handoff (its seq counter is this + ``:seq``)."""
    return f"{PARTIAL_ASSESSMENT_PREFIX}{handoff_id}"


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


def split_live_message(message: bytes) -> RawEvent:
    """A pub/sub message (``b"<id>\\n<json>"``) as ``(id, JSON body)``, without decoding the JSON."""
    event_id, _, body = message.partition(b"\n")
    return event_id.decode("ascii", "replace"), body
