"""The SSE framing: frames parse back to what was sent, and nothing injects lines."""

from __future__ import annotations

import json

import pytest

from handoffs.events import parse_stream_id
from handoffs.stream.sse import KEEPALIVE, control_frame, event_frame, frame, retry_hint
from tests.support.sse import SseParser


def test_an_event_frame_parses_back_to_its_id_type_and_json() -> None:
    body = json.dumps({"type": "handoff_created", "title": "Escalation from Jane · #1: a: b"}).encode()
    events = SseParser().feed(event_frame("1700000000000-7", body).decode())
    assert [(e.id, e.event, e.json) for e in events] == [
        ("1700000000000-7", "handoff_created", json.loads(body))
    ]


def test_a_body_with_line_breaks_becomes_several_data_lines_and_survives() -> None:
    parsed = SseParser().feed(frame("1-1", "x", b"line one\nline two\r\nthree").decode())
    assert [e.data for e in parsed] == ["line one\nline two\nthree"]


def test_an_event_type_cannot_inject_lines() -> None:
    body = json.dumps({"type": "evil\nevent: handoff_created"}).encode()
    (event,) = SseParser().feed(event_frame("1-1", body).decode())
    assert event.event == "evil event: handoff_created"


def test_control_frames_keepalive_and_retry_hint() -> None:
    parser = SseParser()
    events = parser.feed(
        (retry_hint(2500) + KEEPALIVE + control_frame("5-0", "resync", "acct", reason="x")).decode()
    )
    assert parser.retry == 2500
    assert parser.comments == ["keepalive"]
    assert [(e.id, e.event) for e in events] == [("5-0", "resync")]
    assert events[0].json == {
        "type": "resync",
        "account_id": "acct",
        "handoff_id": None,
        "session_id": None,
        "reason": "x",
    }


@pytest.mark.parametrize("raw", ["", "abc", "1-", "-1", "1-x", "1.5-2", "١٢-3", "9" * 30 + "-0"])
def test_malformed_stream_ids_are_rejected(raw: str) -> None:
    assert parse_stream_id(raw) is None


def test_stream_ids_compare_numerically_not_as_text() -> None:
    a, b = parse_stream_id("999-5"), parse_stream_id("1000-0")
    assert a is not None
    assert b is not None
    assert a < b
    assert "999-5" > "1000-0"
