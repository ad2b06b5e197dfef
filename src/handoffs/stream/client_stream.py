"""What one SSE client receives: ``ready``, then missed events from history, then live ones.

The seam between history and live is where gaps and duplicates hide, so the
order matters: register with the hub first (from then on every live event of
the account is queued for this client), read the history second, then send
queued live events only when their id is above the last one sent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from handoffs.events import parse_stream_id
from handoffs.stream.guard import StreamOwner
from handoffs.stream.hub import EventHub
from handoffs.stream.sse import KEEPALIVE, control_frame, event_frame, key_id, retry_hint
from handoffs.stream.subscription import Subscription

log = logging.getLogger(__name__)


async def event_stream(
    hub: EventHub,
    account_id: str,
    last_event_id: str | None,
    *,
    retry_ms: int,
    owner: StreamOwner | None = None,
) -> AsyncIterator[bytes]:
    """The body of one ``text/event-stream`` response, as chunks of whole SSE frames.

    A stream the hub ended because ``owner`` may no longer read it says so last
    (``access_ended``), so that a client signs in again instead of reconnecting.
    """
    sub = hub.subscribe(account_id, owner)
    try:
        # Until the hub has synced the account's channel (normally a Redis
        # round trip; longer while Redis is down) only keepalives go out.
        while not sub.active:
            if sub.closed:
                if sub.ended is not None:
                    yield _ended(sub, account_id)
                return
            await sub.wait()
            # Only keepalives here: queued events must wait until ``ready`` has gone out.
            if sub.keepalive_due and not sub.active:
                sub.keepalive_due = False
                yield KEEPALIVE

        resume_key = parse_stream_id(last_event_id) if last_event_id else None
        ready_id = key_id(resume_key) if resume_key is not None else key_id(sub.cursor)
        ready = control_frame(ready_id, "ready", account_id, last_event_id=last_event_id)
        if last_event_id is None:
            yield retry_hint(retry_ms) + ready
        else:
            yield retry_hint(retry_ms) + ready + await _missed(hub, sub, account_id, last_event_id)

        while True:
            if parts := sub.take():
                yield b"".join(parts)
                continue
            if sub.closed:
                if sub.ended is not None:
                    yield _ended(sub, account_id)
                return
            await sub.wait()
    finally:
        sub.release()


def _ended(sub: Subscription, account_id: str) -> bytes:
    return control_frame(None, "access_ended", account_id, reason=sub.ended)


async def _missed(hub: EventHub, sub: Subscription, account_id: str, last_event_id: str) -> bytes:
    """The events after ``last_event_id`` from history, or a ``resync`` when they cannot be known.

    Moves the subscription's cursor past what it returns, so the live events
    already queued for the client that history also holds are not sent twice.
    """
    after = parse_stream_id(last_event_id)
    history = await hub.history(account_id, last_event_id) if after is not None else None
    if after is None or history is None:
        # Unknown or too old: the client reloads the queue; what the hub queued
        # since this client registered follows (all newer than the cursor).
        return control_frame(key_id(sub.cursor), "resync", account_id, reason="history_gap")
    parts: list[bytes] = []
    cursor = after
    for event_id, body in history:
        key = parse_stream_id(event_id)
        if key is not None and key > cursor:
            parts.append(event_frame(event_id, body))
            cursor = key
    sub.cursor = cursor
    return b"".join(parts)
