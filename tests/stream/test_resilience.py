"""The live stream when things go wrong: Redis drops or restarts, slow clients, many clients.

The Redis tests use a Redis server of their own (an embedded one) and an API
replica pointed at it, so restarting it or counting its connections touches
nothing else, even when REDIS_URL names the machine's shared Redis.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from handoffs.config import Settings
from handoffs.embedded import EmbeddedRedis
from handoffs.events import EventBus, channel_name
from tests.conftest import Api
from tests.support.polling import eventually
from tests.support.replicas import run_replica_processes
from tests.support.sse import (
    STREAM_REPLICA_ENV,
    RawSseSocket,
    SseClient,
    event_payload,
    open_stream,
    publish_many,
    replicas_with_env,
    seqs,
    stream_http,
)

pytestmark = pytest.mark.slow

TEST_CLIENT_NAME = "handoffs-test"
HUB_NAME_PREFIX = "handoffs-hub"
#: The hub reads history on at most this many pooled connections at once (EventHub default).
HISTORY_CONCURRENCY = 4
#: The isolated replica's database connections carry this name, so a count of them leaves out the
#: connections of tests running at the same time on other pytest workers.
ISOLATED_APP_NAME = "handoffs-isolated-replica"


@dataclass
class Isolated:
    """A Redis server of the test's own, and one API replica that uses it."""

    server: EmbeddedRedis
    replica: str

    def client(self) -> Redis:
        # Named, so the test's own connection is left out of the replica's count.
        return Redis.from_url(self.server.url, client_name=TEST_CLIENT_NAME)


@contextmanager
def isolated_replica(settings: Settings, data_dir: Path) -> Iterator[Isolated]:
    server = EmbeddedRedis(data_dir)
    server.start()
    try:
        own = settings.with_services(settings.database_url or "", server.url)
        env = {**STREAM_REPLICA_ENV, "DB_APPLICATION_NAME": ISOLATED_APP_NAME}
        with replicas_with_env(own, 1, env) as (url,):
            yield Isolated(server, url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def isolated(
    settings: Settings, engine: AsyncEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Isolated]:
    with isolated_replica(settings, tmp_path_factory.mktemp("redis")) as isolated:
        yield isolated


@pytest.fixture
async def own_redis(isolated: Isolated) -> AsyncIterator[Redis]:
    client = isolated.client()
    yield client
    await client.aclose()


async def replica_connections(redis: Redis) -> list[dict[str, Any]]:
    return [c for c in await redis.client_list() if c.get("name") != TEST_CLIENT_NAME]


async def hub_connections(redis: Redis) -> list[dict[str, Any]]:
    return [c for c in await redis.client_list() if c.get("name", "").startswith(HUB_NAME_PREFIX)]


async def numsub(redis: Redis, account_id: Any) -> int:
    ((_, count),) = await redis.pubsub_numsub(channel_name(account_id))
    return int(count)


# -- Redis goes away --------------------------------------------------------------------------


async def test_after_a_redis_restart_the_subscription_recovers_and_later_events_arrive(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    sam, gus = api["sam"], api["gus"]
    with isolated_replica(settings, tmp_path / "redis") as isolated:
        redis = isolated.client()
        bus = EventBus(redis)
        try:
            async with stream_http() as http, open_stream(http, isolated.replica, sam.token) as stream:
                await stream.ready()
                before = await bus.publish(event_payload(sam.account_id, 0))
                assert (await stream.next()).id == before

                isolated.server.stop()
                # A client arriving while Redis is down waits (keepalives, no ready) instead of failing.
                async with open_stream(http, isolated.replica, gus.token) as waiting:
                    assert await waiting.keepalives(2) == []

                    isolated.server.start()  # no persistence: the history is gone too
                    await redis.connection_pool.disconnect()
                    await eventually(lambda: numsub(redis, sam.account_id), 1, within=15)

                    # The first client kept its connection; it is told that events may be lost...
                    resync = await stream.next(within=10)
                    assert (resync.event, resync.json["reason"]) == ("resync", "history_lost")
                    # ...and live events flow again, to both.
                    after = await bus.publish(event_payload(sam.account_id, 1))
                    assert (await stream.next()).id == after
                    await waiting.ready()
                    globex = await bus.publish(event_payload(gus.account_id, 2))
                    assert (await waiting.next()).id == globex
                assert not stream.ended.is_set()
                assert await stream.quiet_for(0.2) == []
                assert len(await hub_connections(redis)) == 1
        finally:
            await redis.aclose()


async def test_events_published_while_the_subscriber_connection_was_down_are_recovered_from_history(
    api: Api, isolated: Isolated, own_redis: Redis
) -> None:
    ada = api["ada"]
    bus = EventBus(own_redis)
    async with stream_http() as http, open_stream(http, isolated.replica, ada.token) as stream:
        await stream.ready()
        first = await bus.publish(event_payload(ada.account_id, -1))
        assert (await stream.next()).id == first
        (hub,) = await hub_connections(own_redis)

        # Cut the replica's subscriber connection, as a network blip would, and keep it out while
        # we publish: the hub reconnects within tens of milliseconds, so without the cap the
        # events could as well arrive live. Full: our own client is already connected.
        connected = len(await own_redis.client_list())
        limit = (await own_redis.config_get("maxclients"))["maxclients"]
        await own_redis.config_set("maxclients", connected - 1)
        try:
            await own_redis.client_kill_filter(_id=hub["id"])
            await eventually(lambda: numsub(own_redis, ada.account_id), 0)
            missed = await publish_many(bus, ada.account_id, 20)
            assert await numsub(own_redis, ada.account_id) == 0, "published while nobody was subscribed"
        finally:
            await own_redis.config_set("maxclients", limit)

        got = await stream.take(20)
        assert [e.id for e in got] == missed  # from history, in order, no resync
        assert seqs(got) == list(range(20))
        live = await bus.publish(event_payload(ada.account_id, 20))
        assert [e.id for e in await stream.take(1)] == [live]
        assert await stream.quiet_for(0.3) == []
        (new_hub,) = await hub_connections(own_redis)
        assert new_hub["id"] != hub["id"]


# -- many clients, one connection ----------------------------------------------------------------


async def test_200_clients_on_one_replica_hold_a_constant_number_of_redis_connections(
    api: Api, isolated: Isolated, own_redis: Redis, engine: AsyncEngine
) -> None:
    sam, ada = api["sam"], api["ada"]
    bus = EventBus(own_redis)
    seen = await bus.publish(event_payload(sam.account_id, -1))
    async with stream_http(connections=260) as http, AsyncExitStack() as stack:
        one = await stack.enter_async_context(
            open_stream(http, isolated.replica, sam.token, last_event_id=seen)
        )
        await one.ready()
        marker = await bus.publish(event_payload(sam.account_id, 0))
        assert (await one.next()).id == marker
        with_one = len(await replica_connections(own_redis))

        # Half resume with Last-Event-ID, so they read history too.
        async def connect(i: int) -> SseClient:
            actor = sam if i % 2 else ada
            last = marker if i % 4 < 2 else None
            stream = await stack.enter_async_context(
                open_stream(http, isolated.replica, actor.token, last_event_id=last)
            )
            await stream.ready()
            return stream

        streams = [one, *await asyncio.gather(*(connect(i) for i in range(199)))]
        everyone = await bus.publish(event_payload(sam.account_id, 1))
        for stream in streams:
            assert (await stream.next()).id == everyone
        with_200 = await replica_connections(own_redis)

        assert len(await hub_connections(own_redis)) == 1
        assert await numsub(own_redis, sam.account_id) == 1
        # Only the shared pool may have grown, by the history reads running at once.
        assert len(with_200) <= with_one + HISTORY_CONCURRENCY, (with_one, with_200)

        # The streams hold no database connection: the replica's pool (at most 30, see
        # tests/support/replicas.py) is far smaller than the number of open streams, and a plain
        # request is still served at once.
        async with asyncio.timeout(30):  # a deadline against a hang, not a speed claim
            queue = await http.get(isolated.replica + "/api/v1/ai-sessions/queue", headers=sam.headers)
        assert queue.status_code == 200
        async with engine.connect() as conn:
            states = (
                await conn.scalars(
                    text(
                        "SELECT state FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name = :name"
                    ),
                    {"name": ISOLATED_APP_NAME},
                )
            ).all()
        assert states, "the replica's pooled connections carry its DB_APPLICATION_NAME"
        assert "idle in transaction" not in states


# -- a slow client --------------------------------------------------------------------------------


async def test_a_slow_client_does_not_delay_a_fast_one_and_gets_resync(
    api: Api, stream_replicas: list[str], redis: Redis
) -> None:
    sam = api["sam"]
    bus = EventBus(redis)
    replica = stream_replicas[0]
    batches, per_batch = 20, 50
    count = batches * per_batch
    pad = "x" * 8192  # ~8 MB in all: more than the socket buffers between server and slow client hold
    slow = RawSseSocket(replica, sam.token)
    try:
        await slow.read_until(b"event: ready")
        async with stream_http() as http, open_stream(http, replica, sam.token) as fast:
            await fast.ready()
            # Paced by the fast client, so only the slow one can fall behind, however busy the machine.
            # Every batch reaches the fast client while the slow one reads nothing: a fan-out that
            # waited on the slow socket would stall here. (How fast: bench/fanout.py.)
            for batch in range(batches):
                ids = await publish_many(bus, sam.account_id, per_batch, start=batch * per_batch, pad=pad)
                got = await fast.take(per_batch, within=30)
                assert [e.id for e in got] == ids

            # The slow client reads again: it lost events, was told so, and is live again.
            marker = await bus.publish(event_payload(sam.account_id, count))
            await slow.read_until(f"id: {marker}".encode(), within=30)
            events = [e for e in slow.events() if e.event != "ready"]
            kinds = [e.event for e in events]
            assert "resync" in kinds
            resync = events[kinds.index("resync")]
            assert resync.json["reason"] == "slow_client"
            delivered = [e for e in events if e.event == "handoff_assessment_ready"]
            assert len(delivered) < count
            keys = [e.key for e in events]
            assert keys == sorted(keys)
            assert len(set(keys)) == len(keys)
    finally:
        slow.close()
    # Both gone: the subscription goes too.
    await eventually(lambda: numsub(redis, sam.account_id), 0)


# -- shutdown -----------------------------------------------------------------------------------------


async def test_a_stopping_replica_ends_its_streams_at_once_so_clients_can_reconnect_elsewhere(
    api: Api, settings: Settings
) -> None:
    with run_replica_processes(settings, 1, **STREAM_REPLICA_ENV) as (replica,):
        async with stream_http() as http, open_stream(http, replica.url, api["sam"].token) as stream:
            await stream.ready()
            replica.proc.terminate()  # SIGTERM, as an orchestrator stops a replica
            # uvicorn waits for open responses before it exits; a stream the replica did not
            # end would keep it running until run_replica_processes killed it (code -9).
            code = await asyncio.to_thread(replica.proc.wait, 60)
            await asyncio.wait_for(stream.ended.wait(), 30)
            assert stream.error is None  # the response ended cleanly; the connection was not cut
        # uvicorn re-raises the signal once it has shut down: -SIGTERM is its clean exit, by itself.
        assert code in (0, -signal.SIGTERM), f"the replica exited with {code}; see {replica.log_path}"


async def test_a_client_that_vanishes_with_megabytes_unread_leaves_no_subscription_behind(
    api: Api, stream_replicas: list[str], redis: Redis
) -> None:
    gus = api["gus"]
    bus = EventBus(redis)
    stuck = RawSseSocket(stream_replicas[1], gus.token)
    try:
        await stuck.read_until(b"event: ready")
        await eventually(lambda: numsub(redis, gus.account_id), 1)
        # Megabytes it never reads: the socket buffers fill and the server stops writing to it.
        await publish_many(bus, gus.account_id, 300, pad="x" * 8192)
    finally:
        stuck.close()
    await eventually(lambda: numsub(redis, gus.account_id), 0)
