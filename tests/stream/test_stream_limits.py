"""Streams end when their user may no longer read them, and each user has a cap (issue #14).

Against two real replicas of their own, with a short keepalive (0.3 s) and a cap of 3
streams per user, sharing this worker's PostgreSQL and Redis. The people are fresh users
(tests/support/people.py), deactivated or given another role in the database as an
administrator would: the API has no endpoint for that yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from litestar.security.jwt import Token
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handoffs.config import Settings
from handoffs.enums import Role
from handoffs.events import EventBus
from handoffs.security.revocation import PREFIX as REVOKED_PREFIX
from handoffs.stream.guard import EndReason, StreamGuard, StreamOwner, slots_key
from tests.conftest import AUTH_USER_CACHE_BOUND
from tests.support.people import Person, change_user, new_colleague, sign_in
from tests.support.polling import eventually
from tests.support.replicas import run_replica_processes
from tests.support.sse import (
    STREAM_PATH,
    STREAM_REPLICA_ENV,
    SseClient,
    event_payload,
    open_stream,
    replicas_with_env,
    stream_http,
)

pytestmark = pytest.mark.slow

LIMIT = 3
LIMITED_ENV = {**STREAM_REPLICA_ENV, "SSE_MAX_STREAMS_PER_USER": str(LIMIT)}
#: The lease of a slot with that keepalive: 3 ticks, at least 5 s (handoffs.stream.guard).
LEASE_SECONDS = 5


@pytest.fixture(scope="module")
def limited(settings: Settings, engine: AsyncEngine) -> Iterator[list[str]]:
    """Two replicas with a cap of 3 streams per user."""
    with replicas_with_env(settings, 2, LIMITED_ENV) as urls:
        yield urls


@pytest.fixture
def bus(redis: Redis) -> EventBus:
    return EventBus(redis)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status_of_open(http: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    """Ask for a stream and hang up at once: the answer's status, headers and (unless 200) body."""
    request = http.build_request(
        "GET", url + STREAM_PATH, headers={"Accept": "text/event-stream", **bearer(token)}
    )
    response = await http.send(request, stream=True)
    try:
        if response.status_code != 200:
            await response.aread()
        return response
    finally:
        await response.aclose()


async def ended_with(stream: SseClient, reason: EndReason, within: float = 15.0) -> None:
    """The stream's last event is ``access_ended`` for ``reason``, and the server then closed it."""
    events = await stream.until(lambda e: e.event == "access_ended", within=within)
    last = events[-1]
    assert last.json["reason"] == reason
    assert last.id is None  # no place to resume from
    async with asyncio.timeout(within):
        await stream.ended.wait()
    assert stream.error is None, stream.error  # closed by the server, not broken
    assert stream.queue.empty()


async def slots(redis: Redis, person: Person) -> int:
    return int(await redis.zcard(slots_key(person.id)))


# -- streams end -------------------------------------------------------------------------------


async def status(response: Awaitable[httpx.Response]) -> int:
    return (await response).status_code


async def test_a_deactivated_users_stream_ends_at_a_tick_while_a_colleagues_stays_open_and_receives(
    db: AsyncSession, limited: list[str], bus: EventBus, redis: Redis
) -> None:
    a, b = limited
    nina, omar = await new_colleague(db), await new_colleague(db)
    async with stream_http() as http:
        hers, his = await sign_in(http, a, nina), await sign_in(http, a, omar)
        async with open_stream(http, b, hers) as nina_stream, open_stream(http, b, his) as omar_stream:
            await nina_stream.ready()
            await omar_stream.ready()

            await change_user(db, nina, is_active=False)
            await ended_with(nina_stream, EndReason.deactivated)
            # A request is refused once the replica's kept row is older than AUTH_USER_CACHE_SECONDS.
            await eventually(
                lambda: status(http.get(f"{a}/api/v1/me", headers=bearer(hers))),
                401,
                within=AUTH_USER_CACHE_BOUND,
            )

            published = await bus.publish(event_payload(omar.account_id, 1))
            assert (await omar_stream.next()).id == published
            assert not omar_stream.ended.is_set()
        await eventually(lambda: status(status_of_open(http, a, hers)), 401, within=AUTH_USER_CACHE_BOUND)
    await eventually(lambda: slots(redis, nina), 0)  # her ended stream gave its slot back


async def test_signing_out_on_replica_a_ends_that_tokens_streams_on_both_replicas_and_only_those(
    db: AsyncSession, limited: list[str], bus: EventBus, redis: Redis
) -> None:
    a, b = limited
    nina = await new_colleague(db)
    async with stream_http() as http:
        laptop, script = await sign_in(http, a, nina), await sign_in(http, b, nina)
        async with (
            open_stream(http, a, laptop) as here,
            open_stream(http, b, laptop) as there,
            open_stream(http, b, script) as other,
        ):
            for stream in (here, there, other):
                await stream.ready()

            out = await http.post(f"{a}/api/v1/auth/logout", headers=bearer(laptop))
            assert out.status_code == 200, out.text
            await ended_with(here, EndReason.signed_out)  # this replica: as the logout is handled
            await ended_with(there, EndReason.signed_out)  # the other: at its next tick

            published = await bus.publish(event_payload(nina.account_id, 1))
            assert (await other.next()).id == published  # her other token still streams
            # The two ended streams gave their slots back: two more fit under the cap of 3.
            await eventually(lambda: slots(redis, nina), 1)
            async with open_stream(http, a, script) as more, open_stream(http, b, script) as most:
                await more.ready()
                await most.ready()


async def test_a_role_change_to_viewer_ends_the_stream_and_a_promotion_does_not(
    db: AsyncSession, limited: list[str]
) -> None:
    a, b = limited
    demoted, promoted = await new_colleague(db), await new_colleague(db)
    async with stream_http() as http:
        demoted_token, promoted_token = await sign_in(http, a, demoted), await sign_in(http, a, promoted)
        async with (
            open_stream(http, a, demoted_token) as going,
            open_stream(http, b, promoted_token) as staying,
        ):
            await going.ready()
            await staying.ready()
            await change_user(db, demoted, role=Role.viewer)
            await change_user(db, promoted, role=Role.admin)
            await ended_with(going, EndReason.role_changed)
            assert await staying.keepalives(3) == []
            assert not staying.ended.is_set()
        await eventually(
            lambda: status(status_of_open(http, b, demoted_token)), 403, within=AUTH_USER_CACHE_BOUND
        )


async def test_a_stream_ends_when_its_token_expires(
    settings: Settings, db: AsyncSession, limited: list[str]
) -> None:
    nina = await new_colleague(db)
    # As the login endpoint mints one, only short-lived.
    token = Token(sub=str(nina.id), exp=datetime.now(UTC) + timedelta(seconds=3), jti=uuid4().hex)
    encoded = token.encode(secret=settings.secret_key, algorithm="HS256")
    async with stream_http() as http, open_stream(http, limited[0], encoded) as stream:
        await stream.ready()
        await ended_with(stream, EndReason.expired)


# -- the cap -------------------------------------------------------------------------------------


async def test_the_fourth_stream_of_a_user_gets_429_with_retry_after_on_either_replica_until_one_closes(
    db: AsyncSession, limited: list[str], redis: Redis
) -> None:
    a, b = limited
    nina = await new_colleague(db)
    async with stream_http() as http:
        token = await sign_in(http, a, nina)
        async with open_stream(http, a, token) as first, open_stream(http, b, token) as second:
            await first.ready()
            await second.ready()
            async with open_stream(http, a, token) as third:
                await third.ready()
                for url in (a, b):
                    response = await status_of_open(http, url, token)
                    assert response.status_code == 429, response.text
                    assert 1 <= int(response.headers["retry-after"]) <= LEASE_SECONDS
                    assert response.json()["detail"].startswith("You have 3 live streams open")
                assert await slots(redis, nina) == LIMIT  # refused ones took none
            # Closing one frees its slot at once, on any replica: no lease to wait for.
            await eventually(lambda: slots(redis, nina), LIMIT - 1)
            async with open_stream(http, b, token) as again:
                await again.ready()
                assert (await status_of_open(http, a, token)).status_code == 429
            assert not first.ended.is_set()
            assert not second.ended.is_set()


async def test_each_user_has_a_cap_of_their_own(db: AsyncSession, limited: list[str]) -> None:
    a, b = limited
    nina, omar = await new_colleague(db), await new_colleague(db)
    async with stream_http() as http, AsyncExitStack() as stack:
        hers, his = await sign_in(http, a, nina), await sign_in(http, a, omar)
        for token in (hers, his):
            for url in (a, b, a):
                stream = await stack.enter_async_context(open_stream(http, url, token))
                await stream.ready()
        assert (await status_of_open(http, b, hers)).status_code == 429
        assert (await status_of_open(http, b, his)).status_code == 429


async def test_the_slots_of_a_replica_that_died_age_out_within_a_lease(
    settings: Settings, db: AsyncSession, limited: list[str]
) -> None:
    nina = await new_colleague(db)
    with run_replica_processes(settings, 1, **LIMITED_ENV) as (doomed,):
        async with stream_http() as http:
            token = await sign_in(http, limited[0], nina)
            async with AsyncExitStack() as stack:
                for _ in range(LIMIT):
                    stream = await stack.enter_async_context(open_stream(http, doomed.url, token))
                    await stream.ready()
                doomed.kill()  # SIGKILL: nothing of its streams is freed
                refused = await status_of_open(http, limited[0], token)
                assert refused.status_code == 429
                assert 1 <= int(refused.headers["retry-after"]) <= LEASE_SECONDS

            async def opens() -> int:
                return (await status_of_open(http, limited[1], token)).status_code

            # Nobody renews the dead replica's leases: they run out, and she may stream again.
            await eventually(opens, 200, within=LEASE_SECONDS * 4)


# -- one batch per tick -----------------------------------------------------------------------------


class CountingRedis(Redis):
    """Says which commands it sent."""

    commands: list[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return await super().execute_command(*args, **options)


async def test_one_review_checks_any_number_of_streams_with_one_query_one_mget_and_one_renewal(
    settings: Settings, engine: AsyncEngine, db: AsyncSession, redis: Redis
) -> None:
    fine, gone, viewer = await new_colleague(db), await new_colleague(db), await new_colleague(db)
    await change_user(db, gone, is_active=False)
    await change_user(db, viewer, role=Role.viewer)
    later = time.time() + 3600
    streams = [StreamOwner(fine.id, f"fine-{i % 5}", later) for i in range(40)]
    signed_out = StreamOwner(fine.id, "signed-out", later)
    expired = StreamOwner(fine.id, "expired", time.time() - 1)
    unknown = StreamOwner(uuid4(), None, later)
    others = [StreamOwner(gone.id, "gone", later), StreamOwner(viewer.id, "viewer", later)]
    owners = [*streams, signed_out, expired, unknown, *others]
    await redis.set(f"{REVOKED_PREFIX}signed-out", 1, ex=60)  # as logout does

    counting = CountingRedis.from_url(settings.required_redis_url, single_connection_client=True)
    counting.commands = []
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    guard = StreamGuard(engine, counting, max_per_user=100, lease_seconds=LEASE_SECONDS)
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await guard.review(owners)  # the first review also loads the renewal script into Redis
        counting.commands.clear()
        statements.clear()
        ended = await guard.review(owners)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        await counting.aclose()

    assert ended == {
        signed_out.slot: EndReason.signed_out,
        expired.slot: EndReason.expired,
        unknown.slot: EndReason.deactivated,
        others[0].slot: EndReason.deactivated,
        others[1].slot: EndReason.role_changed,
    }
    assert counting.commands == ["EVALSHA", "MGET"]
    # One transaction: its row-level security scope (handoffs.db.tenancy), then the one query.
    scope, query = statements
    assert scope.startswith("SELECT set_config(")
    assert "FROM users" in query
    # Every stream's lease was renewed, counted once per stream.
    assert await redis.zcard(slots_key(fine.id)) == len(streams) + 2
    lease_end = await redis.zscore(slots_key(fine.id), streams[0].slot)
    assert lease_end is not None
    assert lease_end / 1000 > time.time() + LEASE_SECONDS - 2


async def test_a_stream_open_longer_than_a_lease_still_holds_its_slot(
    db: AsyncSession, limited: list[str], redis: Redis
) -> None:
    a, b = limited
    nina = await new_colleague(db)
    async with stream_http() as http, AsyncExitStack() as stack:
        token = await sign_in(http, a, nina)
        streams = [await stack.enter_async_context(open_stream(http, url, token)) for url in (a, b, b)]
        for stream in streams:
            await stream.ready()
        # Each tick renews the leases of the replica's streams: they outlive the first one.
        await asyncio.sleep(LEASE_SECONDS + 1)
        assert await slots(redis, nina) == LIMIT
        assert (await status_of_open(http, a, token)).status_code == 429
