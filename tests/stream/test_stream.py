"""The live escalation stream across two real replicas: delivery, tenancy, roles, resume.

Replicas are separate uvicorn processes against this worker's PostgreSQL and
Redis. Events come from real API calls (the outbox relay publishes them) or,
like the worker's ``handoff_assessment_ready``, straight from the event bus.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from handoffs.config import Settings
from handoffs.events import EventBus, channel_name, parse_stream_id
from handoffs.runtime import runtime_of
from tests.conftest import Actor, Api
from tests.support.polling import eventually
from tests.support.sse import (
    STREAM_PATH,
    SseEvent,
    event_payload,
    open_stream,
    publish_many,
    seqs,
    stream_http,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def bus(redis: Redis) -> EventBus:
    return EventBus(redis)


async def _call(http: httpx.AsyncClient, url: str, actor: Actor, method: str, path: str, **kw: Any) -> Any:
    response = await http.request(method, url + path, headers=actor.headers, **kw)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _escalate(
    http: httpx.AsyncClient, url: str, jane: Actor, ticket: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    session = await _call(
        http,
        url,
        jane,
        "POST",
        "/api/v1/ai-sessions",
        json={
            "title": "Outlook",
            "problem_summary": "Outlook is failing to sync email",
            "psa_ticket_id": ticket,
        },
    )
    handoff = await _call(
        http,
        url,
        jane,
        "POST",
        f"/api/v1/ai-sessions/{session['id']}/handoff",
        json={"intent": "escalate", "engineer_notes": "Rebuilt the profile", "priority": "high"},
    )
    return session, handoff


async def _numsub(redis: Redis, account_id: Any) -> int:
    ((_, count),) = await redis.pubsub_numsub(channel_name(account_id))
    return int(count)


async def _wait_numsub(redis: Redis, account_id: Any, expected: int, within: float = 5.0) -> None:
    await eventually(lambda: _numsub(redis, account_id), expected, within)


# -- delivery across replicas -------------------------------------------------------------


async def test_a_subscriber_on_replica_b_sees_an_escalation_made_on_a_and_claims_made_on_either(
    api: Api, stream_replicas: list[str]
) -> None:
    a, b = stream_replicas
    jane, sam, ada = api["jane"], api["sam"], api["ada"]
    async with (
        stream_http() as http,
        open_stream(http, b, sam.token) as on_b,
        open_stream(http, a, ada.token) as on_a,
    ):
        await on_b.ready()
        await on_a.ready()

        session, handoff = await _escalate(http, a, jane, "4711")
        created = await on_b.next()
        assert created.event == "handoff_created"
        body = created.json
        assert body["type"] == "handoff_created"
        assert body["handoff_id"] == handoff["id"]
        assert body["session_id"] == session["id"]
        assert body["account_id"] == str(jane.account_id)
        assert body["title"] == "Escalation from Jane · #4711: Outlook is failing to sync email"
        assert body["priority"] == "high"
        assert body["psa_ticket_id"] == "4711"
        assert body["created_by"]["name"] == jane.name
        assert (await on_a.next()).json == body  # the replica that made it sees it too

        # A claim on replica A, seen on B.
        await _call(
            http, a, ada, "POST", f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/claim"
        )
        claimed = await on_b.next()
        assert (claimed.event, claimed.json["handoff_id"]) == ("handoff_claimed", handoff["id"])
        assert claimed.json["claimed_by"]["id"] == str(ada.id)

        # Released on B, claimed again on B by Sam: both reach both replicas.
        await _call(
            http, b, ada, "POST", f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/release"
        )
        await _call(
            http, b, sam, "POST", f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/claim"
        )
        for stream in (on_b, on_a):
            released, reclaimed = await stream.take(2) if stream is on_b else (await stream.take(3))[1:]
            assert (released.event, reclaimed.event) == ("handoff_released", "handoff_claimed")
            assert reclaimed.json["claimed_by"]["id"] == str(sam.id)
            assert released.key < reclaimed.key
        assert created.key < claimed.key < released.key


async def test_first_event_is_ready_with_the_callers_account_and_the_response_is_an_uncached_event_stream(
    api: Api, stream_replicas: list[str]
) -> None:
    sam, gus = api["sam"], api["gus"]
    # A request cannot pick the account: a foreign account id in the query is ignored.
    foreign = {"account_id": str(gus.account_id)}
    async with stream_http() as http, open_stream(http, stream_replicas[0], sam.token, params=foreign) as s:
        headers = s.response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        ready = await s.ready()
        assert ready.json["account_id"] == str(sam.account_id)
        assert parse_stream_id(ready.id or "") is not None
        assert s.parser.retry == 500  # SSE_RETRY_MS of the test replicas


async def test_keepalive_comments_arrive_on_an_idle_stream(api: Api, stream_replicas: list[str]) -> None:
    async with stream_http() as http, open_stream(http, stream_replicas[1], api["olivia"].token) as s:
        await s.ready()
        # The test replicas send one every 0.3 s; nothing else comes on an idle stream.
        assert await s.keepalives(2) == []


@pytest.mark.parametrize(
    ("who", "status"),
    [("victor", 403), (None, 401), ("bad-token", 401)],
    ids=["viewer", "no-token", "bad-token"],
)
async def test_viewers_and_strangers_cannot_subscribe(
    api: Api, stream_replicas: list[str], who: str | None, status: int
) -> None:
    headers = {}
    if who == "bad-token":
        headers["Authorization"] = "Bearer not-a-jwt"
    elif who is not None:
        headers = api[who].headers
    async with stream_http() as http:
        response = await http.get(stream_replicas[0] + STREAM_PATH, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert not response.headers["content-type"].startswith("text/event-stream")


# -- tenancy -------------------------------------------------------------------------------


async def test_a_globex_subscriber_receives_nothing_of_acme_under_a_burst_of_200_events(
    api: Api, stream_replicas: list[str], bus: EventBus
) -> None:
    acme, globex = api["sam"], api["gus"]
    a, b = stream_replicas
    async with (
        stream_http() as http,
        open_stream(http, a, acme.token) as acme_stream,
        open_stream(http, a, globex.token) as globex_same_replica,
        open_stream(http, b, globex.token) as globex_other_replica,
    ):
        for s in (acme_stream, globex_same_replica, globex_other_replica):
            await s.ready()
        burst = await asyncio.gather(
            *(publish_many(bus, acme.account_id, 20, start=i * 20) for i in range(10))
        )
        last = max((parse_stream_id(i) or (0, 0), i) for ids in burst for i in ids)
        # The burst really went out: the Acme subscriber got it, to the last event (or, had
        # its queue overflowed on a busy machine, a resync covering what it could not take).
        got = await acme_stream.until(lambda e: e.key >= last[0])
        assert {e.json["account_id"] for e in got} == {str(acme.account_id)}
        # A Globex event afterwards is the first and only thing Globex subscribers see.
        marker = await bus.publish(
            event_payload(globex.account_id, 0, kind="handoff_created", title="Globex only")
        )
        for s in (globex_same_replica, globex_other_replica):
            first = await s.next()
            assert (first.id, first.json["account_id"]) == (marker, str(globex.account_id))
            assert await s.quiet_for(0.2) == []
        assert await acme_stream.quiet_for(0.1) == []


# -- resume ----------------------------------------------------------------------------------


async def test_reconnecting_with_last_event_id_gets_exactly_the_50_missed_events_in_order_then_live_ones(
    api: Api, stream_replicas: list[str], bus: EventBus
) -> None:
    sam = api["sam"]
    a, b = stream_replicas
    async with stream_http() as http:
        async with open_stream(http, a, sam.token) as first:
            await first.ready()
            seen = await bus.publish(event_payload(sam.account_id, -1))
            assert (await first.next()).id == seen
        missed = await publish_many(bus, sam.account_id, 50)
        # Back on the other replica, as a browser behind a load balancer would be.
        async with open_stream(http, b, sam.token, last_event_id=seen) as again:
            ready = await again.ready()
            assert ready.id == seen
            replayed = await again.take(50)
            assert [e.id for e in replayed] == missed
            assert seqs(replayed) == list(range(50))
            live = await bus.publish(event_payload(sam.account_id, 50))
            assert [e.id for e in await again.take(1)] == [live]
            assert await again.quiet_for(0.3) == []


async def test_the_last_event_id_query_parameter_resumes_a_first_connection(
    api: Api, stream_replicas: list[str], bus: EventBus
) -> None:
    ada = api["ada"]
    before = await bus.publish(event_payload(ada.account_id, 0))
    after = await publish_many(bus, ada.account_id, 3, start=1)
    async with (
        stream_http() as http,
        open_stream(http, stream_replicas[0], ada.token, params={"last_event_id": before}) as s,
    ):
        await s.ready()
        assert [e.id for e in await s.take(3)] == after


async def test_resume_has_no_gap_and_no_duplicate_while_events_keep_coming(
    api: Api, stream_replicas: list[str], bus: EventBus
) -> None:
    """The history/live seam: events are published throughout the reconnect."""
    sam = api["sam"]
    start_id = await bus.publish(event_payload(sam.account_id, -1))
    published: list[str] = []
    stop = asyncio.Event()

    async def publisher() -> None:
        seq = 0
        while not stop.is_set() or seq < 300:
            published.append(await bus.publish(event_payload(sam.account_id, seq)))
            seq += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(publisher())
    try:
        async with stream_http() as http:
            await asyncio.sleep(0.05)  # some history exists before the reconnect, more follows
            received: list[SseEvent] = []
            for url in stream_replicas:  # resume on each replica in turn, from the last id received
                last = received[-1].id if received else start_id
                async with open_stream(http, url, sam.token, last_event_id=last) as s:
                    await s.ready()
                    received += await s.take(60)
            stop.set()
            await task
            async with open_stream(http, stream_replicas[0], sam.token, last_event_id=received[-1].id) as s:
                await s.ready()
                received += await s.until(lambda e: e.id == published[-1], within=10)
    finally:
        task.cancel()
    assert [e.id for e in received] == published
    assert seqs(received) == list(range(len(published)))


async def test_an_id_older_than_the_history_gets_resync_first_then_live_events(
    api: Api, stream_replicas: list[str], bus: EventBus
) -> None:
    olivia = api["olivia"]
    oldest = await bus.publish(event_payload(olivia.account_id, 0))
    # Push it out of the bounded history (MAXLEN ~1000).
    await asyncio.gather(*(publish_many(bus, olivia.account_id, 120, start=1 + i * 120) for i in range(10)))
    assert await bus.history_after(olivia.account_id, oldest) is None
    async with stream_http() as http:
        for stale in (oldest, "1-0", "not-an-id"):
            async with open_stream(http, stream_replicas[1], olivia.token, last_event_id=stale) as s:
                await s.ready()
                resync = await s.next()
                assert resync.event == "resync"
                assert resync.json["reason"] == "history_gap"
                # From the resync's id on, the client gets every event: the ones the
                # replica had not handed on yet when it connected, then live ones.
                live = await bus.publish(event_payload(olivia.account_id, 9999))
                after_resync = await bus.history_after(olivia.account_id, resync.id or "")
                assert after_resync is not None
                assert after_resync[-1].id == live
                got = await s.until(lambda e, live=live: e.id == live)
                assert [e.id for e in got] == [e.id for e in after_resync]


# -- subscriptions ---------------------------------------------------------------------------


async def test_one_subscription_per_replica_per_account_released_when_the_last_client_leaves(
    api: Api, stream_replicas: list[str], redis: Redis
) -> None:
    sam, ada, gus = api["sam"], api["ada"], api["gus"]
    a, b = stream_replicas
    acme = sam.account_id
    # The replicas serve the whole run: an earlier test's streams may still be letting go.
    await _wait_numsub(redis, acme, 0)
    async with stream_http() as http:
        async with open_stream(http, a, sam.token) as s1, open_stream(http, a, ada.token) as s2:
            await s1.ready()
            await s2.ready()
            await _wait_numsub(redis, acme, 1)  # two clients, one replica: one subscription
            async with open_stream(http, b, sam.token) as s3, open_stream(http, b, gus.token) as s4:
                await s3.ready()
                await s4.ready()
                await _wait_numsub(redis, acme, 2)
                await _wait_numsub(redis, gus.account_id, 1)
            await _wait_numsub(redis, gus.account_id, 0)
            await _wait_numsub(redis, acme, 1)
        await _wait_numsub(redis, acme, 0)


async def test_the_default_keepalive_is_at_most_the_contracts_25_seconds(
    client: AsyncTestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every other stream test shortens it; this is the value a real deployment runs with.
    monkeypatch.delenv("SSE_KEEPALIVE_SECONDS", raising=False)
    assert Settings.from_env().sse_keepalive_seconds <= 25
    # The app's hub (built from the suite's settings, which keep the default) ticks that often.
    hub = runtime_of(client.app).hub
    assert hub is not None
    assert 0 < hub.keepalive_seconds <= 25
