"""The per-replica hub: ONE Redis pub/sub connection for all SSE clients of the process.

The hub SUBSCRIBEs an account's channel when the account's first client
arrives and UNSUBSCRIBEs when its last client leaves (exact channel names, no
patterns), and hands every event to a bounded queue per client. The reader
never waits for a client: a client whose queue is full loses its queued
events and is told to ``resync`` instead, so one slow browser costs memory
for at most ``queue_size`` events and never delays anyone else.

Ordering and gaps. Each channel remembers the id of the last event it handed
on (``last``); live events at or below it are duplicates and are dropped.
When a channel is (re)subscribed, the hub "syncs" it before handing on live
events again, holding whatever arrives meanwhile:

- first subscription: ``last`` = the newest id in the account's history, read
  after Redis confirmed the SUBSCRIBE. Clients waiting for it start there.
- after a reconnect: the events published while the hub was away are read from
  the history after ``last`` and handed on in order; if that history is gone
  (trimmed, or Redis restarted without its data) the channel's clients get
  ``resync`` instead.

Because the event bus appends to the history and publishes in one Lua call,
everything published before a SUBSCRIBE was confirmed is in the history by
then, and everything after arrives live: history + held live events, deduplicated
by id, have no gap and no duplicate.

Access. With a :class:`~handoffs.stream.guard.StreamGuard`, every keepalive tick
also starts one review of all the replica's streams (one batch, never per event;
a review still running skips the tick's) and ends those whose owner may no longer
read them; a stream's end frees its slot of the per-user cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import RedisError

from handoffs import metrics
from handoffs.events import (
    LIVE_ONLY_ID,
    ZERO_ID,
    EventBus,
    RawEvent,
    StreamKey,
    channel_name,
    parse_stream_id,
    split_live_message,
)
from handoffs.redis_clients import FOLLOW_SECONDS, follows_sentinels, master_moved
from handoffs.stream.guard import EndReason, StreamGuard, StreamOwner
from handoffs.stream.process import chain_shutdown_signals, tune_gc
from handoffs.stream.sse import event_frame, key_id, live_frame
from handoffs.stream.subscription import ZERO_KEY, Frame, Subscription

log = logging.getLogger(__name__)


class _Channel:
    """The hub's state for one subscribed account."""

    __slots__ = ("account_id", "held", "held_lost", "last", "name", "ready", "subs", "sync_task", "syncing")

    def __init__(self, account_id: str, name: bytes) -> None:
        self.account_id = account_id
        self.name = name
        self.subs: set[Subscription] = set()
        self.ready = False
        """Synced at least once: ``last`` is meaningful and new clients start active."""
        self.syncing = True
        """Live events are held (not handed on) until the sync after a SUBSCRIBE is done."""
        self.last: StreamKey = ZERO_KEY
        self.held: list[RawEvent] = []
        self.held_lost: StreamKey | None = None
        self.sync_task: asyncio.Task[None] | None = None


class EventHub:
    """The replica's single Redis subscriber and in-process fan-out."""

    def __init__(
        self,
        redis: str | Callable[..., ConnectionPool],
        bus: EventBus,
        *,
        queue_size: int = 64,
        keepalive_seconds: float = 25.0,
        ping_seconds: float = 5.0,
        backoff_max_seconds: float = 2.0,
        history_concurrency: int = 4,
        held_max: int = 10_000,
        client_name: str | None = None,
        gc_gen0_threshold: int = 0,
        guard: StreamGuard | None = None,
    ) -> None:
        self.bus = bus
        self.guard = guard
        self.queue_size = queue_size
        self.keepalive_seconds = keepalive_seconds
        self.ping_seconds = ping_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.held_max = held_max
        self.gc_gen0_threshold = gc_gen0_threshold
        self.client_name = client_name or f"handoffs-hub:{socket.gethostname()}:{os.getpid()}"
        # A pool only as a factory: the hub makes and owns exactly one
        # connection at a time, so redis-py never reconnects behind its back.
        # ``redis``: a URL, or what makes the process's pools (handoffs.redis_clients), whose
        # pool asks the Sentinels where the master is for each connection it makes.
        make_pool = functools.partial(ConnectionPool.from_url, redis) if isinstance(redis, str) else redis
        self._factory = make_pool(
            client_name=self.client_name,
            socket_connect_timeout=5,
            socket_keepalive=True,
        )
        self._follows = follows_sentinels(self._factory)
        self._history_slots = asyncio.Semaphore(history_concurrency)
        self._channels: dict[bytes, _Channel] = {}
        # Per channel, the SUBSCRIBE (channel) / UNSUBSCRIBE (None) sent and not
        # yet confirmed, oldest first: a confirmation belongs to the head.
        self._inflight: dict[bytes, deque[_Channel | None]] = {}
        self._conn: AbstractConnection | None = None
        self._generation = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._review: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[None]] = set()
        self._closing = False
        self._unchain_signals: Callable[[], None] = lambda: None
        self.connected = asyncio.Event()
        # Counters, for logs, health and tests.
        self.connects = 0
        self.resyncs = 0
        self.slow_client_drops = 0

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self.gc_gen0_threshold > 0:
            tune_gc(self.gc_gen0_threshold)
        self._runner = asyncio.create_task(self._run(), name="event-hub-reader")
        self._ticker = asyncio.create_task(self._tick(), name="event-hub-keepalive")
        self._unchain_signals = chain_shutdown_signals(self.close_streams)

    async def stop(self) -> None:
        self.close_streams()
        self._unchain_signals()
        if self._releases:
            # Streams that ended free their slots now rather than when the leases run out.
            await asyncio.wait(self._releases, timeout=2)
        tasks = [t for t in (self._runner, self._ticker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._factory.disconnect()

    def close_streams(self) -> None:
        """End every SSE response (server shutdown): clients reconnect elsewhere with Last-Event-ID."""
        first = not self._closing
        self._closing = True
        ended = 0
        for channel in list(self._channels.values()):
            for sub in list(channel.subs):
                if not sub.closed:
                    sub.close()
                    ended += 1
        if first:
            log.info("stopping: ended %d live streams; their clients reconnect to another replica", ended)

    # -- clients ----------------------------------------------------------------

    async def admit(self, owner: StreamOwner) -> int | None:
        """Take a slot of the owner's cap for a new stream: None, or seconds to wait (429)."""
        return None if self.guard is None else await self.guard.admit(owner)

    def subscribe(self, account_id: str, owner: StreamOwner | None = None) -> Subscription:
        """Register a client of ``account_id``; it becomes ``active`` once the channel is synced.

        ``owner`` (admitted first) is re-checked at each tick; its slot is freed when the client leaves.
        """
        name = channel_name(account_id).encode()
        sub = Subscription(self, account_id, name, self.queue_size, owner)
        if self._closing:
            sub.close()
            return sub
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(account_id, name)
            self._command(name, channel, "SUBSCRIBE")
        channel.subs.add(sub)
        metrics.OPEN_STREAMS.inc()
        if channel.ready:
            # Everything handed on so far is <= last; everything later reaches this client.
            sub.activate(channel.last)
        return sub

    def release(self, sub: Subscription) -> None:
        if sub.owner is not None and self.guard is not None:
            # Its own task: the response's task may be cancelled (the client left).
            task = self._spawn(self.guard.release(sub.owner))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
        channel = self._channels.get(sub.name)
        if channel is None or sub not in channel.subs:
            return
        channel.subs.discard(sub)
        metrics.OPEN_STREAMS.dec()
        if not channel.subs:
            del self._channels[sub.name]
            if channel.sync_task is not None:
                channel.sync_task.cancel()
            self._command(sub.name, None, "UNSUBSCRIBE")

    async def history(self, account_id: str, last_id: str) -> list[RawEvent] | None:
        """The account's events after ``last_id`` (None: unknown, resync). Bounded concurrency.

        A burst of reconnecting clients then borrows at most a few pooled
        Redis connections, not one each.
        """
        try:
            async with self._history_slots:
                return await self.bus.raw_history_after(account_id, last_id)
        except (RedisError, OSError) as exc:
            log.warning("could not read the event history of %s: %s", account_id, exc)
            return None

    def end_streams(self, jti: str, reason: EndReason) -> int:
        """End this replica's streams opened with token ``jti`` at once (it signed out here)."""
        subs = [sub for sub in self._subs() if sub.owner is not None and sub.owner.jti == jti]
        for sub in subs:
            self._end(sub, reason)
        return len(subs)

    def _end(self, sub: Subscription, reason: EndReason) -> None:
        # Out of the fan-out at once: nothing more reaches it, and its slot is freed.
        sub.end(reason)
        sub.release()

    def _subs(self) -> list[Subscription]:
        return [sub for channel in self._channels.values() for sub in channel.subs]

    @property
    def clients(self) -> int:
        return sum(len(channel.subs) for channel in self._channels.values())

    @property
    def channels(self) -> int:
        return len(self._channels)

    # -- Redis commands ------------------------------------------------------------

    def _command(self, name: bytes, token: _Channel | None, command: str) -> None:
        conn = self._conn
        if conn is None:
            return  # the next connection subscribes whatever channels exist then
        self._spawn(self._write(conn, name, token, command))

    async def _write(
        self, conn: AbstractConnection, name: bytes, token: _Channel | None, command: str
    ) -> None:
        # Tasks run in creation order and nothing below awaits before the
        # bytes are written, so commands reach Redis in the order they were
        # decided, and the confirmation queue matches them.
        if conn is not self._conn or not conn.is_connected:
            return
        self._inflight.setdefault(name, deque()).append(token)
        try:
            await conn.send_command(command, name, check_health=False)
        except (RedisError, OSError) as exc:
            log.info("event hub: %s %s failed (%s); the reader will reconnect", command, name, exc)

    # -- the reader ------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            conn: AbstractConnection | None = None
            try:
                conn = self._factory.make_connection()  # type: ignore[no-untyped-call]
                await conn.connect()
                await self._attach(conn)
                attempt = 0
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connects:
                    log.warning("event hub lost Redis (%s); reconnecting", exc)
                else:
                    log.warning("event hub cannot reach Redis (%s); retrying", exc)
            except Exception:
                log.exception("event hub reader failed; reconnecting")
            finally:
                await self._detach(conn)
            delay = min(self.backoff_max_seconds, 0.05 * 2**attempt) * (0.5 + random.random() / 2)
            attempt = min(attempt + 1, 16)
            await asyncio.sleep(delay)

    async def _attach(self, conn: AbstractConnection) -> None:
        """Make ``conn`` the subscriber and subscribe every channel that has clients."""
        self._generation += 1
        self.connects += 1
        self._inflight.clear()
        names = list(self._channels)
        for name, channel in self._channels.items():
            channel.syncing = True
            channel.held.clear()
            self._inflight[name] = deque([channel])
        self._conn = conn
        self.connected.set()
        if self.connects > 1:
            log.info("event hub reconnected to Redis; resubscribing %d channels", len(names))
        if names:
            await conn.send_command("SUBSCRIBE", *names, check_health=False)

    async def _detach(self, conn: AbstractConnection | None) -> None:
        if conn is not None and conn is self._conn:
            self._conn = None
            self.connected.clear()
            self._generation += 1
            self._inflight.clear()
            for channel in self._channels.values():
                channel.syncing = True
                channel.held.clear()
                channel.held_lost = None
                if channel.sync_task is not None:
                    channel.sync_task.cancel()
                    channel.sync_task = None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def _read(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        awaiting_pong = False
        heard = checked = loop.time()
        # Through Sentinel, woken at least every FOLLOW_SECONDS to ask whether the master moved:
        # an old master keeps this subscription for seconds after a failover, while the events
        # are published on the new one (they are read back from its history on reconnect).
        wait = min(self.ping_seconds, FOLLOW_SECONDS) if self._follows else self.ping_seconds
        while True:
            response = await conn.read_response(timeout=wait)
            now = loop.time()
            if self._follows and now - checked >= FOLLOW_SECONDS:
                checked = now
                if await master_moved(self._factory, conn):
                    raise ConnectionError("the Redis master moved (a Sentinel failover)")
            if response is None:
                if now - heard < self.ping_seconds:
                    continue
                # Quiet line: prove Redis is still there (a dead peer that
                # never closed the socket would otherwise hang us forever).
                if awaiting_pong:
                    raise ConnectionError("Redis did not answer PING")
                awaiting_pong = True
                heard = now
                await conn.send_command("PING", check_health=False)
                continue
            heard = now
            awaiting_pong = False
            if isinstance(response, list) and response:
                kind = response[0]
                if kind == b"message":
                    self._on_message(response[1], response[2])
                elif kind in (b"subscribe", b"unsubscribe"):
                    self._on_confirmed(response[1])

    def _on_confirmed(self, name: bytes) -> None:
        queue = self._inflight.get(name)
        token = queue.popleft() if queue else None
        if queue is not None and not queue:
            del self._inflight[name]
        if isinstance(token, _Channel) and self._channels.get(name) is token:
            token.sync_task = self._spawn(self._sync(token, self._generation))

    def _on_message(self, name: bytes, data: bytes) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        event_id, body = split_live_message(data)
        if event_id == LIVE_ONLY_ID:
            # Not in the history, so not held for a sync either: a client that is not live yet
            # reads the same state from the API (an assessment's partial) once it is.
            if channel.ready and not channel.syncing:
                frame = Frame(channel.last, live_frame(body), live=True)
                for sub in channel.subs:
                    sub.offer(frame)
            return
        if channel.syncing:
            if len(channel.held) < self.held_max:
                channel.held.append((event_id, body))
            else:
                key = parse_stream_id(event_id)
                if key is not None and (channel.held_lost is None or key > channel.held_lost):
                    channel.held_lost = key
            return
        self._hand_on(channel, event_id, body)

    def _hand_on(self, channel: _Channel, event_id: str, body: bytes) -> None:
        key = parse_stream_id(event_id)
        if key is None:
            log.warning("event hub: ignoring an event without a stream id on %s", channel.name)
            return
        if key <= channel.last:
            return  # already handed on (history and live overlap)
        channel.last = key
        frame = Frame(key, event_frame(event_id, body))
        for sub in channel.subs:
            sub.offer(frame)

    def _resync(self, channel: _Channel, key: StreamKey, reason: str) -> None:
        channel.last = key
        self.resyncs += 1
        for sub in channel.subs:
            sub.resync(key, reason)

    async def _sync(self, channel: _Channel, generation: int) -> None:
        """After a confirmed SUBSCRIBE: establish or recover ``last``, then release held events."""
        history: list[RawEvent] | None = None
        latest = ZERO_ID
        attempt = 0
        while True:
            try:
                async with self._history_slots:
                    if channel.ready:
                        history = await self.bus.raw_history_after(channel.account_id, key_id(channel.last))
                    if not channel.ready or history is None:
                        latest = await self.bus.latest_id(channel.account_id)
                break
            except (RedisError, OSError) as exc:
                # Live events stay held meanwhile; if Redis is really gone the
                # reader notices, reconnects and starts a fresh sync.
                log.warning("event hub could not sync %s (%s); retrying", channel.name, exc)
                await asyncio.sleep(min(self.backoff_max_seconds, 0.05 * 2**attempt))
                attempt = min(attempt + 1, 16)
        if generation != self._generation or self._channels.get(channel.name) is not channel:
            return
        latest_key = parse_stream_id(latest) or ZERO_KEY
        if not channel.ready:
            channel.last = latest_key
            channel.ready = True
            for sub in channel.subs:
                sub.activate(latest_key)
        elif history is None:
            log.warning("event hub: history of %s is gone; clients resync", channel.account_id)
            self._resync(channel, latest_key, "history_lost")
        else:
            for event_id, body in history:
                self._hand_on(channel, event_id, body)
        held, channel.held = channel.held, []
        for event_id, body in held:
            self._hand_on(channel, event_id, body)
        if channel.held_lost is not None:
            self._resync(channel, max(channel.held_lost, channel.last), "overflow")
            channel.held_lost = None
        channel.syncing = False
        channel.sync_task = None

    # -- keepalive -----------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_seconds)
            for channel in list(self._channels.values()):
                for sub in channel.subs:
                    sub.tick()
            if self.guard is not None and (self._review is None or self._review.done()):
                self._review = self._spawn(self._review_streams(self.guard))

    async def _review_streams(self, guard: StreamGuard) -> None:
        """One batched check of every open stream's owner; end those who may no longer read."""
        owned = [(sub, sub.owner) for sub in self._subs() if sub.owner is not None]
        if not owned:
            return
        # Nothing awaits between listing the streams and the review's first Redis call: a
        # stream that leaves after this is freed after the renewal (see StreamGuard.release).
        ended = await guard.review([owner for _, owner in owned])
        if not ended:
            return
        reasons: dict[str, int] = {}
        for sub, owner in owned:
            reason = ended.get(owner.slot)
            if reason is not None and not sub.closed:
                self._end(sub, reason)
                reasons[str(reason)] = reasons.get(str(reason), 0) + 1
        if reasons:
            log.info("ended streams of users who may no longer read them: %s", reasons)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
