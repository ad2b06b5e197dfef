"""Server-sent event framing.

An event's frame is built once, when the hub receives it, and the same bytes
object is queued for every client: fan-out costs a reference per client, not
an encode.
"""

from __future__ import annotations

import msgspec

from handoffs.events import StreamKey

KEEPALIVE = b": keepalive\n\n"


class _Head(msgspec.Struct):
    type: str = "message"


_head_decoder = msgspec.json.Decoder(_Head)


def key_id(key: StreamKey) -> str:
    """``(1700000000000, 3)`` → ``"1700000000000-3"``."""
    return f"{key[0]}-{key[1]}"


def event_type(body: bytes) -> str:
    """The ``type`` of a JSON event body; ``message`` when it has none or is not JSON."""
    try:
        kind = _head_decoder.decode(body).type
    except msgspec.DecodeError:
        return "message"
    # The event name goes on its own SSE line: it must not carry a line break.
    return kind.replace("\r", " ").replace("\n", " ") or "message"


def frame(event_id: str | None, kind: str, body: bytes) -> bytes:
    """One SSE event: ``id:``, ``event:`` and ``data:`` lines and the blank line that ends it.

    No ``id:`` line when ``event_id`` is None: the browser's last event id stays where it was.
    """
    if b"\n" in body or b"\r" in body:
        # Our JSON never has raw line breaks; anything else becomes several data lines.
        lines = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        data = b"".join(b"data: " + line + b"\n" for line in lines)
    else:
        data = b"data: " + body + b"\n"
    head = b"" if event_id is None else b"id: " + event_id.encode() + b"\n"
    return head + b"event: " + kind.encode() + b"\n" + data + b"\n"


def event_frame(event_id: str, body: bytes) -> bytes:
    """The frame of a bus event: its type read from its JSON body."""
    return frame(event_id, event_type(body), body)


def live_frame(body: bytes) -> bytes:
    """The frame of a live-only event: no id, as it cannot be resumed from."""
    return frame(None, event_type(body), body)


def control_frame(event_id: str | None, kind: str, account_id: str, **fields: object) -> bytes:
    """A frame the stream itself emits (``ready``, ``resync``, ``access_ended``), shaped like the
    bus events. ``access_ended`` has no id: it is no place to resume from."""
    body = msgspec.json.encode(
        {"type": kind, "account_id": account_id, "handoff_id": None, "session_id": None, **fields}
    )
    return frame(event_id, kind, body)


def retry_hint(milliseconds: int) -> bytes:
    """How long a disconnected ``EventSource`` waits before it reconnects."""
    return b"retry: " + str(int(milliseconds)).encode() + b"\n\n"
