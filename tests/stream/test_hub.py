"""The event bus history and the per-replica hub, in process, against this worker's real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from handoffs.config import Settings
from handoffs.events import EventBus, RawEvent, channel_name, parse_stream_id, stream_key
from handoffs.stream.client_stream import event_stream
from handoffs.stream.hub import EventHub
from handoffs.stream.subscription import Subscription
from tests.support.polling import eventually
from tests.support.sse import SseParser, event_payload, publish_many


@pytest.fixture
def bus(redis: Redis) -> EventBus:
    return EventBus(redis)


@pytest.fixture
async def hub(settings: Settings, bus: EventBus) -> AsyncIterator[EventHub]:
    hub = EventHub(settings.required_redis_url, bus, queue_size=4, keepalive_seconds=60)
    await hub.start()
    yield hub
    await hub.stop()


def account() -> str:
    return str(uuid4())


async def active(sub: Subscription) -> None:
    async with asyncio.timeout(5):
        while not sub.active:
            await sub.wait()
            sub.take()


def events_of(sub: Subscription) -> list[tuple[str | None, str]]:
    return [(e.id, e.event) for e in SseParser().feed(b"".join(sub.take()).decode())]


async def numsub(redis: Redis, account_id: str) -> int:
    ((_, count),) = await redis.pubsub_numsub(channel_name(account_id))
    return int(count)


# -- history ------------------------------------------------------------------------------


async def test_history_after_an_id_returns_the_later_events_in_order(bus: EventBus) -> None:
    acct = account()
    ids = await publish_many(bus, acct, 5)
    events = await bus.history_after(acct, ids[1])
    assert events is not None
    assert [e.id for e in events] == ids[2:]
    assert [e.data["seq"] for e in events] == [2, 3, 4]
    assert await bus.history_after(acct, ids[-1]) == []


async def test_history_answers_none_when_what_followed_the_id_cannot_be_known(
    bus: EventBus, redis: Redis
) -> None:
    acct = account()
    assert await bus.history_after(acct, "0-0") == []  # nothing ever happened: nothing missed
    assert await bus.history_after(acct, "1700000000000-0") is None  # history expired or lost
    ids = await publish_many(bus, acct, 3)
    assert [e.id for e in await bus.history_after(acct, "0-0") or []] == ids  # never trimmed
    newest = parse_stream_id(ids[-1])
    assert newest is not None
    assert await bus.history_after(acct, f"{newest[0] + 1000}-0") is None  # not an id we issued
    assert await bus.history_after(acct, "garbage") is None
    small = EventBus(redis, maxlen=3)
    first = await small.publish(event_payload(acct, 0))
    await publish_many(small, acct, 400)  # approximate trimming works in blocks of 100
    assert await redis.xlen(stream_key(acct)) < 403
    assert await small.history_after(acct, first) is None
    assert await small.history_after(acct, "0-0") is None


async def test_publish_keeps_a_bounded_history_that_expires(bus: EventBus, redis: Redis) -> None:
    acct = account()
    await publish_many(EventBus(redis, maxlen=100, ttl_seconds=60), acct, 350)
    assert 100 <= await redis.xlen(stream_key(acct)) <= 200
    assert 0 < await redis.ttl(stream_key(acct)) <= 60


# -- the hub -------------------------------------------------------------------------------


async def test_a_full_queue_drops_only_that_clients_events_and_resyncs_it_next(
    hub: EventHub, bus: EventBus
) -> None:
    acct = account()
    slow, fast = hub.subscribe(acct), hub.subscribe(acct)
    await active(slow)
    await active(fast)
    got: list[str | None] = []

    async def read_fast() -> None:
        while len(got) < 10:
            await fast.wait()
            got.extend(i for i, _ in events_of(fast))

    reader = asyncio.create_task(read_fast())
    ids = await publish_many(bus, acct, 10)
    async with asyncio.timeout(5):
        await reader
    assert got == ids  # the fast client had all ten while the slow one read nothing
    assert events_of(slow) == [(ids[-1], "resync")]  # queue of 4 overflowed: dropped, resync at the newest
    assert slow.dropped > 0
    later = await bus.publish(event_payload(acct, 10))
    await slow.wait()
    assert events_of(slow) == [(later, "handoff_assessment_ready")]
    slow.release()
    fast.release()


async def test_the_last_client_leaving_unsubscribes_and_a_new_one_at_once_resubscribes(
    hub: EventHub, bus: EventBus, redis: Redis
) -> None:
    acct = account()
    first, second = hub.subscribe(acct), hub.subscribe(acct)
    await active(first)
    await active(second)
    assert await numsub(redis, acct) == 1
    first.release()
    assert await numsub(redis, acct) == 1
    second.release()
    # UNSUBSCRIBE and SUBSCRIBE race on the wire; the newcomer must end up subscribed.
    newcomer = hub.subscribe(acct)
    await active(newcomer)
    await eventually(lambda: numsub(redis, acct), 1)
    event_id = await bus.publish(event_payload(acct, 0))
    await newcomer.wait()
    assert events_of(newcomer) == [(event_id, "handoff_assessment_ready")]
    newcomer.release()
    await eventually(lambda: numsub(redis, acct), 0)
    assert hub.channels == 0
    assert hub.clients == 0


async def test_a_client_starts_at_the_newest_event_before_it_registered(hub: EventHub, bus: EventBus) -> None:
    acct = account()
    before = await publish_many(bus, acct, 3)
    sub = hub.subscribe(acct)
    await active(sub)
    assert sub.cursor == parse_stream_id(before[-1])
    after = await bus.publish(event_payload(acct, 3))
    await sub.wait()
    assert events_of(sub) == [(after, "handoff_assessment_ready")]
    sub.release()


async def test_stopping_the_hub_ends_every_stream(settings: Settings, bus: EventBus) -> None:
    hub = EventHub(settings.required_redis_url, bus, keepalive_seconds=60)
    await hub.start()
    sub = hub.subscribe(account())
    await active(sub)
    await hub.stop()
    assert sub.closed
    late = hub.subscribe(account())
    assert late.closed


# -- the seams, timed on purpose -------------------------------------------------------------


class SeamBus(EventBus):
    """An event bus that publishes a few events right before a history read, and waits until
    the hub has them live: the same events are then both in the history and queued live."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.hub: EventHub | None = None
        self.injected: list[str] = []
        self.arm = False
        #: Whether the seam happened: the injected events were live before the history read.
        #: A test that never got here proves nothing, so each asserts it.
        self.seam_hit: bool | None = None

    async def raw_history_after(self, account_id: str, last_id: str) -> list[RawEvent] | None:  # type: ignore[override]
        if self.arm and self.hub is not None:
            self.arm = False
            self.injected = await publish_many(self, account_id, 5, start=100)
            channel = self.hub._channels[channel_name(account_id).encode()]
            newest = parse_stream_id(self.injected[-1])
            try:
                async with asyncio.timeout(10):  # until received live: handed on, or held while syncing
                    while not (channel.last == newest or len(channel.held) >= 5):  # noqa: ASYNC110 - hub state has no event
                        await asyncio.sleep(0.005)
                self.seam_hit = True
            except TimeoutError:
                self.seam_hit = False  # raising here would only be caught and retried by the hub
        return await super().raw_history_after(account_id, last_id)


@pytest.fixture
async def seam(settings: Settings, redis: Redis) -> AsyncIterator[tuple[EventHub, SeamBus]]:
    bus = SeamBus(redis)
    hub = EventHub(
        settings.required_redis_url, bus, keepalive_seconds=60, client_name=f"handoffs-hub-seam-{uuid4()}"
    )
    bus.hub = hub
    await hub.start()
    yield hub, bus
    await hub.stop()


async def test_events_both_in_the_history_and_queued_live_reach_a_resuming_client_once(
    seam: tuple[EventHub, SeamBus],
) -> None:
    hub, bus = seam
    acct = account()
    seen = await bus.publish(event_payload(acct, 0))
    holder = hub.subscribe(acct)  # keeps the channel subscribed and synced
    await active(holder)
    bus.arm = True
    stream = event_stream(hub, acct, seen, retry_ms=1000)
    first = SseParser().feed((await anext(stream)).decode())  # ready, then the history
    assert first[0].event == "ready"
    assert [e.id for e in first[1:]] == bus.injected
    later = await bus.publish(event_payload(acct, 1))
    second = SseParser().feed((await anext(stream)).decode())
    assert [e.id for e in second] == [later]  # the queued live copies were not sent again
    assert bus.seam_hit is True
    await stream.aclose()
    holder.release()


async def test_after_a_reconnect_events_both_recovered_and_received_live_are_handed_on_once(
    seam: tuple[EventHub, SeamBus], redis: Redis
) -> None:
    hub, bus = seam
    acct = account()
    sub = hub.subscribe(acct)
    await active(sub)
    first = await bus.publish(event_payload(acct, 0))
    await sub.wait()
    assert [i for i, _ in events_of(sub)] == [first]

    bus.arm = True  # the recovery read after the reconnect finds the injected events live too
    (conn,) = [c for c in await redis.client_list() if c.get("name") == hub.client_name]
    await redis.client_kill_filter(_id=conn["id"])
    async with asyncio.timeout(10):
        while sub.queued < 5:
            await sub.wait()
    assert sub.queued == 5  # each once: the live copies held during the sync were dropped
    assert [i for i, _ in events_of(sub)] == bus.injected
    later = await bus.publish(event_payload(acct, 1))
    await sub.wait()
    assert [i for i, _ in events_of(sub)] == [later]
    assert hub.connects == 2
    assert bus.seam_hit is True
    sub.release()


def test_gc_tuning_raises_the_young_threshold_and_never_lowers_it() -> None:
    import gc

    from handoffs.stream.process import tune_gc

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_gc(50_000)
        assert gc.get_threshold() == (50_000, 10, 10)
        tune_gc(1_000)
        assert gc.get_threshold() == (50_000, 10, 10)
    finally:
        gc.set_threshold(*saved)


async def test_the_open_streams_gauge_counts_clients_in_and_out(hub: EventHub) -> None:
    from handoffs import metrics

    def gauge() -> float:
        return float(metrics.OPEN_STREAMS._value.get())

    start = gauge()
    account = str(uuid4())
    subs = [hub.subscribe(account) for _ in range(3)]
    assert gauge() == start + 3
    subs[0].release()
    subs[0].release()  # a second release of the same client counts once
    assert gauge() == start + 2
    for sub in subs[1:]:
        sub.release()
    assert gauge() == start


async def test_assessment_deltas_never_push_a_slow_client_into_a_resync(hub: EventHub) -> None:
    from handoffs.stream.subscription import Frame

    sub = hub.subscribe(str(uuid4()))  # the hub's queue holds 4 (the fixture)
    sub.activate((0, 0))
    for n in range(10):  # a burst of deltas: at most half the queue, the rest left out
        sub.offer(Frame((0, 0), b"delta %d" % n, live=True))
    assert (sub.queued, sub.live_dropped) == (2, 8)
    for n in range(1, 5):  # events that matter: the deltas make room for them first
        sub.offer(Frame((1, n), b"event %d" % n))
    assert sub.queued == 4
    parts = sub.take()
    assert parts == [b"event 1", b"event 2", b"event 3", b"event 4"]
    assert not any(b"resync" in p for p in parts)
    # Past the queue, a real event still resyncs the client as before.
    for n in range(5, 10):
        sub.offer(Frame((1, n), b"event %d" % n))
    assert b"resync" in b"".join(sub.take())
    sub.release()
