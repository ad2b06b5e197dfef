"""Live events: their types (``types``), where they live in Redis and their ids (``ids``), and
the bus that publishes them and reads an account's history (``bus``).

Importers may use ``handoffs.events`` for all of it.
"""

from __future__ import annotations

from handoffs.events.bus import HISTORY_MAXLEN, HISTORY_TTL_SECONDS, Event, EventBus, decode_live_message
from handoffs.events.ids import (
    CHANNEL_PREFIX,
    LIVE_ONLY_ID,
    STREAM_PREFIX,
    ZERO_ID,
    RawEvent,
    StreamKey,
    channel_name,
    parse_stream_id,
    partial_assessment_key,
    split_live_message,
    stream_key,
)
from handoffs.events.types import (
    HANDOFF_EVENT_TYPES,
    STREAM_EVENT_TYPES,
    Actor,
    AnyHandoffEvent,
    Comment,
    HandoffAssessmentDelta,
    HandoffAssessmentFailed,
    HandoffAssessmentReady,
    HandoffClaimed,
    HandoffCommented,
    HandoffCreated,
    HandoffEscalated,
    HandoffEvent,
    HandoffIds,
    HandoffReassigned,
    HandoffReleased,
    HandoffResolved,
    event_payload,
    ids_of,
)

__all__ = [
    "CHANNEL_PREFIX",
    "HANDOFF_EVENT_TYPES",
    "HISTORY_MAXLEN",
    "HISTORY_TTL_SECONDS",
    "LIVE_ONLY_ID",
    "STREAM_EVENT_TYPES",
    "STREAM_PREFIX",
    "ZERO_ID",
    "Actor",
    "AnyHandoffEvent",
    "Comment",
    "Event",
    "EventBus",
    "HandoffAssessmentDelta",
    "HandoffAssessmentFailed",
    "HandoffAssessmentReady",
    "HandoffClaimed",
    "HandoffCommented",
    "HandoffCreated",
    "HandoffEscalated",
    "HandoffEvent",
    "HandoffIds",
    "HandoffReassigned",
    "HandoffReleased",
    "HandoffResolved",
    "RawEvent",
    "StreamKey",
    "channel_name",
    "decode_live_message",
    "event_payload",
    "ids_of",
    "parse_stream_id",
    "partial_assessment_key",
    "split_live_message",
    "stream_key",
]
