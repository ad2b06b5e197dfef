"""One SSE client's view of the hub: a bounded queue of frames, and the flags the hub sets.

Only the hub writes to it and only the client's response task reads it, all
on one event loop, so no locks (see :class:`handoffs.stream.hub.EventHub`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from handoffs.events import StreamKey
from handoffs.stream.guard import EndReason, StreamOwner
from handoffs.stream.sse import KEEPALIVE, control_frame, key_id

ZERO_KEY: StreamKey = (0, 0)


class SubscriptionOwner(Protocol):
    """What a subscription needs of its hub: a count to bump, and a way to leave."""

    slow_client_drops: int

    def release(self, sub: Subscription) -> None: ...


@dataclass(frozen=True, slots=True)
class Frame:
    """An event ready to send: its id as a comparable key, and its SSE bytes (shared by all clients).

    A ``live`` frame (an assessment delta) is not in the history: its key is the last event
    before it, and it is sent as it comes, without moving the client's cursor.
    """

    key: StreamKey
    data: bytes
    live: bool = False


class Subscription:
    """One SSE client's view of the hub: a bounded queue plus a few flags.

    Only the hub writes to it (``offer``, ``resync``, ``tick``, ``close``, ``end``) and
    only the client's response task reads it (``take``, ``wait``), all on one
    event loop, so no locks.
    """

    __slots__ = (
        "_buf",
        "_hub",
        "_max",
        "_released",
        "_resync",
        "_waiter",
        "account_id",
        "active",
        "closed",
        "cursor",
        "dropped",
        "ended",
        "keepalive_due",
        "live_dropped",
        "name",
        "owner",
    )

    def __init__(
        self,
        hub: SubscriptionOwner,
        account_id: str,
        name: bytes,
        queue_size: int,
        owner: StreamOwner | None = None,
    ) -> None:
        self._hub = hub
        self.account_id = account_id
        self.name = name
        self.owner = owner
        """Whom the stream serves, re-checked at each tick (None: not checked, in-process uses)."""
        self._max = queue_size
        self._buf: deque[Frame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._resync: tuple[StreamKey, str] | None = None
        self.cursor: StreamKey = ZERO_KEY
        """The id of the last event this client has (or was told to resync to)."""
        self.active = False
        """True once the channel is synced: from here on every event of the account reaches ``take``."""
        self.closed = False
        self.ended: EndReason | None = None
        """Set when the stream was ended because its owner may no longer read it."""
        self.keepalive_due = False
        self.dropped = 0
        self.live_dropped = 0
        """Assessment deltas left out for a client that was behind (superseded, not lost)."""
        self._released = False

    # -- hub side: never blocks, never awaits ---------------------------------

    def activate(self, cursor: StreamKey) -> None:
        self.cursor = cursor
        self.active = True
        self._wake()

    def offer(self, frame: Frame) -> None:
        buf = self._buf
        if frame.live:
            # An assessment delta is superseded by the next one (each carries all written so far)
            # and by the final assessment: behind a burst it is dropped, never worth a resync,
            # and it never fills more than half the queue.
            if len(buf) >= self._max // 2:
                self.live_dropped += 1
                return
            buf.append(frame)
            self._wake()
            return
        if len(buf) >= self._max and any(f.live for f in buf):
            self._buf = buf = deque(f for f in buf if not f.live)  # deltas make room first
        if len(buf) >= self._max:
            # Too slow: what is queued is stale anyway. Drop it and tell the
            # client to reload once it reads again.
            self.dropped += len(self._buf) + 1
            self._buf.clear()
            self._resync = (frame.key, "slow_client")
            self._hub.slow_client_drops += 1
        else:
            self._buf.append(frame)
        self._wake()

    def resync(self, key: StreamKey, reason: str) -> None:
        """Replace whatever is queued by a ``resync`` at ``key``."""
        self._buf.clear()
        self._resync = (key, reason)
        self._wake()

    def tick(self) -> None:
        self.keepalive_due = True
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def end(self, reason: EndReason) -> None:
        """Close for good: the owner may no longer read the stream, so nothing queued goes out."""
        self.ended = reason
        self._buf.clear()
        self._resync = None
        self.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- client side -----------------------------------------------------------

    def take(self) -> list[bytes]:
        """Everything sendable now, in order; events at or below the cursor are skipped."""
        parts: list[bytes] = []
        if self.keepalive_due:
            self.keepalive_due = False
            parts.append(KEEPALIVE)
        if not self.active:
            return parts
        if self._resync is not None:
            key, reason = self._resync
            self._resync = None
            self.cursor = key
            parts.append(control_frame(key_id(key), "resync", self.account_id, reason=reason))
        buf = self._buf
        while buf:
            frame = buf.popleft()
            if frame.live:
                parts.append(frame.data)
            elif frame.key > self.cursor:
                parts.append(frame.data)
                self.cursor = frame.key
        return parts

    @property
    def queued(self) -> int:
        """Events waiting in this client's queue."""
        return len(self._buf)

    def pending(self) -> bool:
        return self.closed or self.keepalive_due or (self.active and (bool(self._buf) or bool(self._resync)))

    async def wait(self) -> None:
        """Until there is something to ``take`` (or the subscription is closed)."""
        if self.pending():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def release(self) -> None:
        """Leave the hub (the SSE response ended, or the hub ended it): once, however often called.

        The last client of an account unsubscribes it.
        """
        if not self._released:
            self._released = True
            self._hub.release(self)
