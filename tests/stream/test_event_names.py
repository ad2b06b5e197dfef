"""One list of live-event names: the Python union, the console's subscriptions and the API docs agree."""

from __future__ import annotations

import re

import msgspec

from handoffs.events import (
    HANDOFF_EVENT_TYPES,
    STREAM_EVENT_TYPES,
    Actor,
    AnyHandoffEvent,
    HandoffClaimed,
    event_payload,
)
from tests.support.replicas import ROOT

JS = ROOT / "src" / "handoffs" / "web" / "static" / "js"


def test_the_console_listens_for_exactly_the_events_the_server_sends() -> None:
    stream_js = (JS / "stream.js").read_text()
    listed = re.search(r"export const EVENT_TYPES = \[(.*?)\];", stream_js, re.S)
    assert listed is not None
    assert set(re.findall(r'"([a-z_]+)"', listed.group(1))) == {*HANDOFF_EVENT_TYPES, *STREAM_EVENT_TYPES}
    subscribed = {
        name for path in JS.glob("*.js") for name in re.findall(r'\.on\("([a-z_]+)"', path.read_text())
    }
    assert subscribed <= {*HANDOFF_EVENT_TYPES, *STREAM_EVENT_TYPES}, subscribed


def test_an_event_payload_carries_its_type_and_the_contracts_ids_and_decodes_back() -> None:
    claimed = HandoffClaimed(
        handoff_id="h", session_id="s", account_id="a", claimed_by=Actor(id="u", name="Sam"), claimed_at="t"
    )
    payload = event_payload(claimed)
    assert payload["type"] == "handoff_claimed"
    assert payload["claimed_by"] == {"id": "u", "name": "Sam"}
    assert {"handoff_id", "session_id", "account_id"} <= set(payload)
    assert msgspec.convert(payload, AnyHandoffEvent) == claimed
