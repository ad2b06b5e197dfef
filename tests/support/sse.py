"""Helpers for the live-stream tests: an SSE reader and parser, a publisher, raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from handoffs.config import Settings
from handoffs.events import EventBus, parse_stream_id
from tests.support.replicas import run_replicas

STREAM_PATH = "/api/v1/ai-sessions/escalations/stream"

#: Live-stream replicas: short keepalive so tests see several within a second. The cap stays
#: on, far above the 100 streams per user of the connection tests (test_stream_limits.py runs
#: its own replicas with a small one).
STREAM_REPLICA_ENV = {
    "SSE_KEEPALIVE_SECONDS": "0.3",
    "SSE_RETRY_MS": "500",
    "SSE_MAX_STREAMS_PER_USER": "1000",
}


@contextlib.contextmanager
def replicas_with_env(settings: Settings, count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """``run_replicas`` with extra environment for the replica processes only."""
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            # The processes copy the environment as they start; it is restored right after.
            urls = stack.enter_context(run_replicas(settings, count=count))
        yield urls


@dataclass
class SseEvent:
    """One dispatched server-sent event."""

    event: str
    data: str
    id: str | None = None

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.data))

    @property
    def key(self) -> tuple[int, int]:
        assert self.id is not None, f"{self.event} event without an id"
        key = parse_stream_id(self.id)
        assert key is not None, f"not a stream id: {self.id!r}"
        return key


@dataclass
class SseParser:
    """The event-stream parsing rules of the HTML standard, fed line by line."""

    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    _has_id: bool = False

    def feed_line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._data:
                self._event, self._has_id = "", False
                return None
            event = SseEvent(
                self._event or "message", "\n".join(self._data), self._id if self._has_id else None
            )
            self._event, self._data, self._has_id = "", [], False
            self.events.append(event)
            return event
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id, self._has_id = value, True
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def feed(self, text: str) -> list[SseEvent]:
        out = [self.feed_line(line) for line in text.replace("\r\n", "\n").split("\n")]
        return [e for e in out if e is not None]


class SseClient:
    """An open event stream, read by a background task into a queue."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = SseParser()
        self.queue: asyncio.Queue[SseEvent] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.error: BaseException | None = None
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for line in self.response.aiter_lines():
                event = self.parser.feed_line(line.rstrip("\r\n"))
                if event is not None:
                    self.queue.put_nowait(event)
        except (httpx.HTTPError, asyncio.CancelledError) as exc:
            self.error = exc
        finally:
            self.ended.set()

    async def next(self, within: float = 5.0) -> SseEvent:
        try:
            async with asyncio.timeout(within):
                return await self.queue.get()
        except TimeoutError:
            raise AssertionError(f"no event within {within}s (stream ended: {self.ended.is_set()})") from None

    async def take(self, count: int, within: float = 10.0) -> list[SseEvent]:
        out: list[SseEvent] = []
        try:
            async with asyncio.timeout(within):
                while len(out) < count:
                    out.append(await self.queue.get())
        except TimeoutError:
            raise AssertionError(f"got {len(out)} of {count} events within {within}s") from None
        return out

    async def until(self, predicate: Any, within: float = 10.0) -> list[SseEvent]:
        """Events up to and including the first one ``predicate`` accepts."""
        out: list[SseEvent] = []
        try:
            async with asyncio.timeout(within):
                while True:
                    event = await self.queue.get()
                    out.append(event)
                    if predicate(event):
                        return out
        except TimeoutError:
            raise AssertionError(
                f"no matching event within {within}s; got {[e.event for e in out]}"
            ) from None

    async def quiet_for(self, seconds: float) -> list[SseEvent]:
        """Whatever arrives within ``seconds`` (the caller asserts it is nothing, or what it expects)."""
        await asyncio.sleep(seconds)
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    async def keepalives(self, count: int, within: float = 30.0) -> list[SseEvent]:
        """Wait until ``count`` more ``: keepalive`` comments arrived; return the events that came too.

        A deadline, not a window: on a loaded machine they may come late, never too few.
        """
        target = self.parser.comments.count("keepalive") + count
        try:
            async with asyncio.timeout(within):
                while self.parser.comments.count("keepalive") < target:
                    if self.ended.is_set():
                        raise AssertionError(f"the stream ended before {count} keepalives")
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"fewer than {count} keepalives within {within}s") from None
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    async def ready(self, within: float = 10.0) -> SseEvent:
        first = await self.next(within)
        assert first.event == "ready", f"first event is {first.event!r}, not ready"
        return first

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        await self.response.aclose()


@contextlib.asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient,
    base_url: str,
    token: str | None,
    *,
    last_event_id: str | None = None,
    params: dict[str, str] | None = None,
) -> AsyncIterator[SseClient]:
    headers = {"Accept": "text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    request = http.build_request("GET", base_url + STREAM_PATH, headers=headers, params=params)
    response = await http.send(request, stream=True)
    try:
        assert response.status_code == 200, (response.status_code, await response.aread())
        client = SseClient(response)
        try:
            yield client
        finally:
            await client.close()
    finally:
        await response.aclose()


def stream_http(connections: int = 50) -> httpx.AsyncClient:
    """An httpx client for streams: no read timeout (streams idle between keepalives)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), limits=limits)


def event_payload(
    account_id: UUID | str, seq: int, kind: str = "handoff_assessment_ready", **extra: Any
) -> dict[str, Any]:
    """An event as the worker publishes one (the stream passes any type through)."""
    return {
        "type": kind,
        "account_id": str(account_id),
        "handoff_id": str(uuid4()),
        "session_id": str(uuid4()),
        "seq": seq,
        **extra,
    }


async def publish_many(
    bus: EventBus, account_id: UUID | str, count: int, *, start: int = 0, **extra: Any
) -> list[str]:
    """Publish ``count`` events in order; return their ids."""
    return [await bus.publish(event_payload(account_id, start + i, **extra)) for i in range(count)]


def seqs(events: Iterable[SseEvent]) -> list[int]:
    return [e.json["seq"] for e in events]


class RawSseSocket:
    """An SSE client on a bare socket with a tiny receive buffer, that reads only when told to.

    A browser on a bad network: the server's writes back up, and the hub has
    to drop events for it rather than wait.
    """

    def __init__(self, base_url: str, token: str, rcvbuf: int = 4096) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, int(port)))
        self.sock.sendall(
            (
                f"GET {STREAM_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        self.sock.setblocking(False)
        self.buffer = b""

    async def read_until(self, marker: bytes, within: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            while marker not in self.buffer:
                self.buffer += await loop.sock_recv(self.sock, 65536)

    def events(self) -> list[SseEvent]:
        _, _, body = self.buffer.partition(b"\r\n\r\n")
        return SseParser().feed(_dechunk(body).decode())

    def close(self) -> None:
        self.sock.close()


def _dechunk(body: bytes) -> bytes:
    """Undo HTTP/1.1 chunked transfer encoding (a trailing partial chunk is kept as is)."""
    out = bytearray()
    while body:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


# -- the framing itself ---------------------------------------------------------------
