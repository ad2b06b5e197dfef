"""The streamed assessment as a user sees it: escalate → first delta on a subscriber, and its CPU.

All real processes on one machine: embedded PostgreSQL and Redis (or DATABASE_URL /
REDIS_URL), ONE API replica (``uvicorn handoffs.app:create_app``), ONE worker
(``python -m handoffs.cli worker``, what ``handoffs worker`` runs) whose SDK talks to a
fake Messages API in a process of its own (this file with ``--model-server PORT``, a raw
ASGI app under uvicorn), and this driver: an SSE subscriber signed in as sam@acme.test
(engineer) and N escalate POSTs sent at once as jane@acme.test.

    .venv/bin/python bench/assessment.py            # 50 and 200 at once, 2 ABBA rounds (~2 min on 2 cores)
    .venv/bin/python bench/assessment.py --quick    # 50 at once, 1 round (~25 s)

The fake model answers a streaming request (``"stream": true``) with the Messages API's
event sequence (message_start, content_block_start tool_use, ``input_json_delta`` chunks,
content_block_stop, message_delta with the usage, message_stop): the first chunk
``--first-token`` s (0.5) after the request arrived, then one every ``--chunk-interval``
s (0.02) of ``--chunk-chars`` (20) characters: the ~1,000-character tool input streams
over ~1 s. A plain request gets the whole message after the same total time.

Per phase (one mode, N escalations) a fresh worker process with ``ANTHROPIC_STREAMING=1``
or ``0`` is started and warmed up; then N pre-created sessions are escalated at once, and
for each handoff (matched by the id in the POST answer) the script records the POST's
send time, its answer, when the model request arrived and its first chunk left (stamped
by the fake, matched by the session id in the prompt's title), and when the subscriber
got the first ``handoff_assessment_delta`` and the ``handoff_assessment_ready``. All
stamps are ``time.monotonic()``, one clock for every process on Linux (CLOCK_MONOTONIC).

Worker CPU (psutil user + system) is taken from just before the first POST until every
outbox row of the phase's escalations is done, and divided by the assessments stored
(``session_handoffs.assessment_status = 'ready'``; anything else is counted as failed).
Streamed and plain phases alternate ABBA per round at every level. Targets: first delta
≤ first token + 150 ms at 200 at once; streamed worker CPU ≤ 1.5 times plain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

# bench/common.py, a sibling: run as a script, bench/ is sys.path[0] (from the repo root or bench/).
from common import (
    ESCALATE_BODY,
    busy_seconds,
    command_line,
    git_state,
    http_process,
    login,
    machine,
    migrate_and_seed,
    percentile,
    run_loop,
    seed,
    service_cpu,
    service_pids,
    start_stack,
    start_worker,
    stop_worker,
    write_json,
)

THIS = Path(__file__).resolve()
API = "/api/v1"
STREAM_PATH = f"{API}/ai-sessions/escalations/stream"
TOOL_NAME = "record_assessment"  # handoffs.integrations.ai.TOOL_NAME; checked in main()
MODEL = "claude-sonnet-5-5"
#: The sessions' titles carry their id, so the fake model can tell which escalation asks.
TITLE_PREFIX = "Outlook sync "
SESSION_IN_PROMPT = re.compile(rb"Session title: " + TITLE_PREFIX.encode() + rb"([0-9a-f-]{36})")

# -- the fake Messages API (this file with --model-server) ---------------------------------------

#: A valid record_assessment input (tests/support/fake_anthropic.py's VALID_OUTPUT, written out
#: to ~1,000 characters, the length of a real one's first half).
TOOL_INPUT: dict[str, Any] = {
    "assessment": {
        "likely_cause": "A corrupted OST file after the Outlook update: the profile loops on "
        "'Trying to connect' while OWA works, so the mailbox itself is fine.",
        "what_was_tried": ["Restarted Outlook", "Ran the Inbox Repair Tool", "Re-created the profile"],
        "next_steps": [
            "Rename the OST and let Outlook rebuild it",
            "Check the Exchange mailbox quota and the licence",
            "Test autodiscover with the Remote Connectivity Analyzer",
        ],
        "risk": "medium",
        "confidence": 0.72,
    },
    "escalation_package": {
        "summary": "Outlook stopped syncing for the finance team after Tuesday's update; OWA works.",
        "symptoms": ["Outlook shows 'Disconnected'", "Send/receive errors 0x8004010F"],
        "environment": ["Microsoft 365", "Outlook 2021", "Exchange Online"],
        "open_questions": ["Do other clients (OWA, phone) sync?", "Is the whole team affected?"],
        "documentation_markdown": "## Escalation\n\nOST rebuild recommended.\n\n- Profile re-created\n"
        "- Inbox Repair Tool run\n\nNext: rebuild the OST, then check autodiscover and the quota.",
    },
}


def message(tool_input: dict[str, Any]) -> dict[str, Any]:
    """The finished Messages API answer: one forced tool call (fake_anthropic.message's shape)."""
    return {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "tool_use", "id": "toolu_bench", "name": TOOL_NAME, "input": tool_input}],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1200,
            "output_tokens": 350,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 900,
        },
    }


def _frame(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def stream_frames(msg: dict[str, Any], chunk: int) -> tuple[bytes, list[bytes], bytes]:
    """The answer as SSE frames (fake_anthropic.sse_events' sequence): what goes out at once,
    the ``input_json_delta`` chunks to pace, and what follows the last chunk."""
    block = msg["content"][0]
    start = {**msg, "content": [], "stop_reason": None, "usage": {**msg["usage"], "output_tokens": 1}}
    head = (
        _frame("message_start", {"type": "message_start", "message": start})
        + _frame("ping", {"type": "ping"})
        + _frame(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {**block, "input": {}}},
        )
    )
    raw = json.dumps(block["input"])
    chunks = [
        _frame(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": raw[i : i + chunk]},
            },
        )
        for i in range(0, len(raw), chunk)
    ]
    tail = (
        _frame("content_block_stop", {"type": "content_block_stop", "index": 0})
        + _frame(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": msg["usage"]["output_tokens"]},
            },
        )
        + _frame("message_stop", {"type": "message_stop"})
    )
    return head, chunks, tail


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class FakeMessagesAPI:
    """``POST /v1/messages`` at a fixed pace (raw ASGI: uvicorn's cost and ours, nothing else);
    ``GET /stats`` lists every request: its session, streamed or not, when it arrived, when
    its first chunk and its end went out (``time.monotonic()``)."""

    def __init__(self, first_token: float, interval: float, chunk: int) -> None:
        self.first_token = first_token
        self.interval = interval
        msg = message(TOOL_INPUT)
        self.head, self.chunks, self.tail = stream_frames(msg, chunk)
        self.whole = json.dumps(msg).encode()
        self.records: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/stats":
            body = json.dumps({"records": self.records, "chunks": len(self.chunks)}).encode()
            await self._answer(send, 200, b"application/json", body)
            return
        if scope["method"] != "POST" or scope["path"] != "/v1/messages":
            await self._answer(send, 404, b"application/json", b'{"type":"error"}')
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        arrived = time.monotonic()
        found = SESSION_IN_PROMPT.search(body)
        record: dict[str, Any] = {
            "session": found.group(1).decode() if found else None,
            "stream": bool(json.loads(body).get("stream")),
            "arrived": arrived,
        }
        self.records.append(record)
        first = arrived + self.first_token
        last = len(self.chunks) - 1
        if not record["stream"]:
            await _sleep_until(first + last * self.interval)
            record["first_chunk"] = record["done"] = time.monotonic()
            await self._answer(send, 200, b"application/json", self.whole)
            return
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.head, "more_body": True})
        for k, chunk in enumerate(self.chunks):
            await _sleep_until(first + k * self.interval)
            if k == 0:
                record["first_chunk"] = time.monotonic()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": self.tail, "more_body": False})
        record["done"] = time.monotonic()

    @staticmethod
    async def _answer(send: Any, status: int, kind: bytes, body: bytes) -> None:
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def model_server(port: int, first_token: float, interval: float, chunk: int) -> int:
    import uvicorn

    app = FakeMessagesAPI(first_token, interval, chunk)
    uvicorn.run(
        app, host="127.0.0.1", port=port, lifespan="off", access_log=False, log_level="warning",
        loop="uvloop", http="httptools", backlog=4096,
    )  # fmt: skip
    return 0


# -- the worker wrapper (this file with --worker-child): only for --profile-worker / --poll-delay ---


def worker_child() -> int:
    """What ``handoffs worker`` runs (cli.worker), plus two bench-only knobs from the environment:
    ``BENCH_WORKER_PROFILE``: a cProfile of CPU time (``time.process_time``), on from SIGUSR1 to
    SIGUSR2 (the driver sends them around the timed escalations), written there at exit;
    ``BENCH_WORKER_POLL_DELAY``: arq's ``poll_delay`` (``worker_options`` leaves arq's 0.5 s)."""
    import cProfile

    from handoffs.config import get_settings
    from handoffs.jobs.worker import run_worker, worker_options
    from handoffs.logs import configure_logging

    configure_logging()
    options = worker_options(get_settings())
    if poll := os.environ.get("BENCH_WORKER_POLL_DELAY"):
        options["poll_delay"] = float(poll)
    profile_path = os.environ.get("BENCH_WORKER_PROFILE")
    profiler = cProfile.Profile(time.process_time) if profile_path else None
    if profiler is not None:
        signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
        signal.signal(signal.SIGUSR2, lambda *_: profiler.disable())
    try:
        run_worker(options)  # until SIGTERM
    finally:
        if profiler is not None and profile_path:
            profiler.disable()
            profiler.dump_stats(profile_path)
    return 0


# -- the subscriber: one SSE stream as sam -------------------------------------------------------


class Subscriber(asyncio.Protocol):
    """The live stream over a raw socket (bench/fanout.py's, but reading whole frames): per handoff,
    when its first ``handoff_assessment_delta`` arrived, how many, and when ``..._ready`` did."""

    def __init__(self, request: bytes) -> None:
        import msgspec

        class Head(msgspec.Struct):
            type: str = ""
            handoff_id: str | None = None

        self._decode = msgspec.json.Decoder(Head).decode
        self.request = request
        self.transport: Any = None
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        self._buf = b""
        self._header_done = False
        self.first_delta: dict[str, float] = {}
        self.deltas: dict[str, int] = {}
        self.done: dict[str, tuple[str, float]] = {}  # handoff → (ready | failed, arrival)
        self.resyncs = 0
        self.frames = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf + data
        if not self._header_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the stream was refused: {buf[:200]!r}")
            self._header_done = True
            buf = buf[end + 4 :]
        # Chunked transfer encoding: the size lines sit between frames; frames never hold "\r\n".
        frames = buf.split(b"\n\n")
        self._buf = frames.pop()
        for raw in frames:
            self._frame(raw, now)

    def _frame(self, raw: bytes, now: float) -> None:
        i = raw.find(b"event: ")
        if i < 0:
            return  # keepalive comment, retry hint, chunk sizes
        self.frames += 1
        name = raw[i + 7 : raw.find(b"\n", i)]
        if name == b"ready":
            self.ready.set()
            return
        if name == b"resync":
            self.resyncs += 1
            return
        if not name.startswith(b"handoff_assessment_"):
            return
        data = raw[raw.find(b"data: ", i) + 6 :]
        hid = self._decode(data).handoff_id
        if hid is None:
            return
        if name == b"handoff_assessment_delta":
            self.deltas[hid] = self.deltas.get(hid, 0) + 1
            self.first_delta.setdefault(hid, now)
        elif name in (b"handoff_assessment_ready", b"handoff_assessment_failed"):
            self.done.setdefault(hid, (name.decode().rsplit("_", 1)[1], now))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


async def open_subscriber(base_url: str, token: str) -> Subscriber:
    host, port = base_url.removeprefix("http://").split(":")
    request = (
        f"GET {STREAM_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    sub = Subscriber(request)
    await asyncio.get_running_loop().create_connection(lambda: sub, host, int(port))
    await asyncio.wait_for(sub.ready.wait(), 30)
    return sub


# -- the processes under test ----------------------------------------------------------------------


@contextlib.contextmanager
def model_process(env: dict[str, str], log_path: Path, plan: Plan) -> Iterator[tuple[str, int]]:
    from handoffs.embedded import free_port

    port = free_port()
    cmd = [sys.executable, str(THIS), "--model-server", str(port), "--first-token", str(plan.first_token),
           "--chunk-interval", str(plan.chunk_interval), "--chunk-chars", str(plan.chunk_chars)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with http_process(cmd, env, log_path, f"{url}/stats", what="the fake model", seconds=30) as pid:
        yield url, pid


class WorkerProcess:
    """ONE ``handoffs worker`` process (or, for --profile-worker / --poll-delay, this file's wrapper)."""

    def __init__(self, env: dict[str, str], log_path: Path, *, wrapper: bool) -> None:
        self.env = env
        self.log_path = log_path
        self.wrapper = wrapper
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, redis: Any) -> None:
        cmd = [sys.executable, str(THIS), "--worker-child"] if self.wrapper else [
            sys.executable, "-m", "handoffs.cli", "worker"]  # fmt: skip
        self.proc = await start_worker(redis, cmd, self.env, self.log_path)

    async def stop(self) -> None:
        if self.proc is not None:
            await stop_worker(self.proc)
            self.proc = None


class Meter:
    """CPU seconds so far of each named process, of our PostgreSQL + Redis, and of the machine."""

    def __init__(self, pids: dict[str, int], services: list[int]) -> None:
        import psutil

        self.psutil = psutil
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.services = [psutil.Process(pid) for pid in services if psutil.pid_exists(pid)]

    def sample(self, **extra: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, proc in [*self.procs.items(), *((n, self.psutil.Process(p)) for n, p in extra.items())]:
            t = proc.cpu_times()
            out[name] = t.user + t.system
        out["services"] = sum(service_cpu(p) for p in self.services)
        m = self.psutil.cpu_times()
        out["machine"] = busy_seconds(m)
        out["steal"] = getattr(m, "steal", 0.0)
        return out


# -- one phase: N escalations at once, one mode -----------------------------------------------------


@dataclass
class Phase:
    mode: str  # "streamed" | "plain"
    level: int
    round: int
    escalations: int
    posted: int = 0
    ready: int = 0
    failed: int = 0
    #: seconds from the first POST until every outbox row of the phase was done
    window_s: float = 0.0
    timed_out: bool = False
    cpu_s: dict[str, float] = field(default_factory=dict)
    worker_idle_cpu_per_s: float | None = None
    #: the worker's busiest second of the phase (CPU sampled every 100 ms), in cores
    worker_peak_cores: float | None = None
    #: per handoff, seconds after its POST was sent (None: never seen)
    answered: list[float] = field(default_factory=list)
    #: the enrich_escalation job: handed to arq by the API's relay, and started by the worker (arq's stamps)
    job_queued: list[float | None] = field(default_factory=list)
    job_started: list[float | None] = field(default_factory=list)
    model_arrived: list[float | None] = field(default_factory=list)
    first_chunk: list[float | None] = field(default_factory=list)
    first_delta: list[float | None] = field(default_factory=list)
    #: first delta on the subscriber - first chunk sent by the model: the streaming path itself
    #: (SDK, coalescer, Redis, the replica's hub, SSE)
    stream_path: list[float | None] = field(default_factory=list)
    done: list[float | None] = field(default_factory=list)
    deltas: list[int] = field(default_factory=list)
    #: every job of the phase's escalations (4 each: assessment, emails, PSA, chat), and the seconds
    #: from the worker starting the first to starting the last
    jobs_started: int = 0
    job_start_span_s: float | None = None
    model_requests: int = 0
    model_requests_streamed: int = 0
    events_missing: int = 0
    resyncs: int = 0
    post_errors: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def worker_ms_per_assessment(self) -> float | None:
        cpu = self.cpu_s.get("worker")
        return cpu * 1000 / self.ready if cpu is not None and self.ready else None


@dataclass
class Bench:
    url: str
    model_url: str
    token: str
    settings: Any
    env: dict[str, str]
    data_dir: Path
    redis: Any
    engine: Any
    sub: Subscriber
    meter: Meter
    sessions: list[UUID]
    plan: Plan
    ssl_context: Any = None
    phases_run: int = 0

    def take(self, n: int) -> list[UUID]:
        taken, self.sessions = self.sessions[:n], self.sessions[n:]
        assert len(taken) == n, "not enough pre-created sessions"
        return taken


async def escalate_all(
    b: Bench, sessions: list[UUID], on_start: Callable[[], None] | None = None
) -> list[tuple[UUID, float, float, str | None, str]]:
    """POST every escalation at once, each on its own open keep-alive connection (as escalate.py's
    clients): (session, sent, answered, handoff id or None, error). ``on_start`` runs once the
    connections are open, just before the first POST: where the clock starts.

    The clients share one SSL context: httpx builds one per client otherwise (~15 ms of CPU each,
    3 s for 200, even for plain http)."""
    import httpx

    headers = {"Authorization": f"Bearer {b.token}", "Content-Type": "application/json"}
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=b.url, headers=headers, limits=one, timeout=60.0, verify=b.ssl_context
                )
            )
            for _ in sessions
        ]
        await asyncio.gather(*(c.get("/health") for c in clients))  # connections open before the clock
        if on_start is not None:
            on_start()

        async def post(client: httpx.AsyncClient, sid: UUID) -> tuple[UUID, float, float, str | None, str]:
            sent = time.monotonic()
            try:
                r = await client.post(f"{API}/ai-sessions/{sid}/handoff", content=ESCALATE_BODY)
            except httpx.HTTPError as exc:
                return sid, sent, time.monotonic(), None, f"{type(exc).__name__}: {exc}"
            answered = time.monotonic()
            if r.status_code != 201:
                return sid, sent, answered, None, f"{r.status_code}: {r.text[:200]}"
            return sid, sent, answered, str(r.json()["id"]), ""

        return await asyncio.gather(*(post(c, s) for c, s in zip(clients, sessions, strict=True)))


async def outstanding(engine: Any, handoff_ids: list[str]) -> tuple[int, int]:
    """(handoffs still pending an assessment, their outbox rows not done or failed)."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    """
                    SELECT (SELECT count(*) FROM session_handoffs
                             WHERE id = ANY(CAST(:ids AS uuid[])) AND assessment_status = 'pending') AS pending,
                           (SELECT count(*) FROM outbox WHERE status NOT IN ('done', 'failed')
                             AND payload->>'handoff_id' = ANY(CAST(:ids AS text[]))) AS jobs
                    """
                ),
                {"ids": handoff_ids},
            )
        ).one()
    return int(row.pending), int(row.jobs)


async def assessment_statuses(engine: Any, handoff_ids: list[str]) -> dict[str, int]:
    from sqlalchemy import text

    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT assessment_status, count(*) FROM session_handoffs "
                "WHERE id = ANY(CAST(:ids AS uuid[])) GROUP BY 1"
            ),
            {"ids": handoff_ids},
        )
        return {str(status): int(n) for status, n in rows.all()}


async def wait_settled(b: Bench, handoff_ids: list[str], seconds: float) -> bool:
    """Until every assessment is stored (or given up) and every job of these escalations has run.

    The subscriber's ready/failed events say when to look (free); the database is asked then, every
    100 ms, and once a second meanwhile: a subscriber that was told to resync (its queue overflowed
    in the burst) never sees some of those events, and waiting for them held the phase's window
    open until the timeout (~100 s at 200). Polling every 100 ms all along cost PostgreSQL and this
    process more CPU than the worker."""
    deadline = time.monotonic() + seconds
    for tick in range(int(seconds * 100)):
        if all(h in b.sub.done for h in handoff_ids):
            break
        if tick % 100 == 99 and await outstanding(b.engine, handoff_ids) == (0, 0):
            return True
        await asyncio.sleep(0.01)
    while True:
        pending, jobs = await outstanding(b.engine, handoff_ids)
        if pending == 0 and jobs == 0:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


async def job_times(b: Bench, handoff_ids: list[str]) -> tuple[dict[str, tuple[float, float]], list[float]]:
    """When the escalations' jobs were enqueued and started, from arq's results (wall-clock ms,
    moved onto ``time.monotonic()``; a job's id is its outbox row's): (per handoff, its
    enrich_escalation's (queued, started)), and the start of every job of theirs, all topics."""
    from arq.jobs import Job
    from sqlalchemy import text

    async with b.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, topic, payload->>'handoff_id' AS hid FROM outbox WHERE topic <> 'event' "
                    "AND payload->>'handoff_id' = ANY(CAST(:ids AS text[]))"
                ),
                {"ids": handoff_ids},
            )
        ).all()
    offset = time.time() - time.monotonic()
    enrich: dict[str, tuple[float, float]] = {}
    starts: list[float] = []
    for row in rows:
        info = await Job(str(row.id), b.redis).result_info()
        if info is None:
            continue
        started = info.start_time.timestamp() - offset
        starts.append(started)
        if row.topic == "enrich_escalation":
            enrich[row.hid] = (info.enqueue_time.timestamp() - offset, started)
    return enrich, sorted(starts)


async def model_records(b: Bench) -> list[dict[str, Any]]:
    import httpx

    async with httpx.AsyncClient() as client:
        r = await client.get(f"{b.model_url}/stats")
        return list(r.json()["records"])


async def sample_cpu(proc: Any, interval: float = 0.1) -> list[tuple[float, float]]:
    """(time, CPU seconds) of ``proc`` every ``interval`` until cancelled; returns the samples."""
    samples: list[tuple[float, float]] = []
    try:
        while True:
            t = proc.cpu_times()
            samples.append((time.monotonic(), t.user + t.system))
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        return samples


def peak_cores(samples: list[tuple[float, float]], span: float = 1.0) -> float | None:
    """The most CPU used in any ``span`` seconds of the samples, in cores."""
    best = None
    j = 0
    for i in range(len(samples)):
        while samples[i][0] - samples[j][0] > span:
            j += 1
        if samples[i][0] - samples[j][0] >= span * 0.9:
            cores = (samples[i][1] - samples[j][1]) / (samples[i][0] - samples[j][0])
            best = cores if best is None else max(best, cores)
    return round(best, 2) if best is not None else None


async def run_phase(b: Bench, mode: str, level: int, round_no: int) -> Phase:
    """A fresh worker in ``mode``, warmed up; then ``level`` escalations at once, timed."""
    env = {**b.env, "ANTHROPIC_STREAMING": "1" if mode == "streamed" else "0"}
    b.phases_run += 1
    tag = f"{b.phases_run:02d}-{mode}-{level}"
    if b.plan.profile_worker:
        env["BENCH_WORKER_PROFILE"] = str(b.data_dir / f"worker-{tag}.prof")
    if b.plan.poll_delay is not None:
        env["BENCH_WORKER_POLL_DELAY"] = str(b.plan.poll_delay)
    worker = WorkerProcess(env, b.data_dir / f"worker-{tag}.log", wrapper=b.plan.wrapper)
    await worker.start(b.redis)
    phase = Phase(mode=mode, level=level, round=round_no, escalations=level)
    posts: list[tuple[UUID, float, float, str | None, str]] = []
    hids: list[str] = []
    sessions: list[UUID] = []
    resyncs0 = b.sub.resyncs
    try:
        # Warm-up (imports, the SDK's first connections, prepared statements), not counted.
        warm = [r[3] for r in await escalate_all(b, b.take(b.plan.warmup)) if r[3]]
        await wait_settled(b, warm, 60)
        idle0 = b.meter.sample(worker=worker.pid)
        await asyncio.sleep(2.0)
        idle1 = b.meter.sample(worker=worker.pid)
        phase.worker_idle_cpu_per_s = round((idle1["worker"] - idle0["worker"]) / 2.0, 4)

        sessions = b.take(level)
        before: dict[str, float] = {}
        t0 = 0.0

        def start_clock() -> None:
            nonlocal t0
            if b.plan.profile_worker:
                os.kill(worker.pid, signal.SIGUSR1)
            before.update(b.meter.sample(worker=worker.pid))
            t0 = time.monotonic()

        sampler = asyncio.create_task(sample_cpu(b.meter.psutil.Process(worker.pid)))
        try:
            posts = await escalate_all(b, sessions, start_clock)
            hids = [r[3] for r in posts if r[3]]
            phase.posted = len(hids)
            phase.post_errors = [r[4] for r in posts if r[4]][:5]
            phase.timed_out = not await wait_settled(b, hids, max(60.0, level * 0.5))
            after = b.meter.sample(worker=worker.pid)
        finally:
            sampler.cancel()
            samples = await sampler
        phase.worker_peak_cores = peak_cores(samples)
        if b.plan.profile_worker:
            os.kill(worker.pid, signal.SIGUSR2)
        phase.window_s = round(time.monotonic() - t0, 3)
        phase.cpu_s = {k: round(after[k] - before[k], 3) for k in after}
    finally:
        await worker.stop()

    phase.statuses = await assessment_statuses(b.engine, hids)
    phase.ready = phase.statuses.get("ready", 0)
    phase.failed = level - phase.ready
    phase.resyncs = b.sub.resyncs - resyncs0
    jobs, starts = await job_times(b, hids)
    if len(starts) > 1:
        phase.jobs_started = len(starts)
        phase.job_start_span_s = round(starts[-1] - starts[0], 3)
    by_session = {r["session"]: r for r in await model_records(b) if r["session"]}
    sids = {str(s) for s in sessions}
    phase.model_requests = sum(1 for s in sids if s in by_session)
    phase.model_requests_streamed = sum(1 for s in sids if by_session.get(s, {}).get("stream"))
    for sid, sent, answered, hid, _ in posts:
        if hid is None:
            continue
        rec = by_session.get(str(sid), {})
        phase.answered.append(answered - sent)
        queued_started = jobs.get(hid)
        phase.job_queued.append(queued_started[0] - sent if queued_started else None)
        phase.job_started.append(queued_started[1] - sent if queued_started else None)
        phase.model_arrived.append(rec["arrived"] - sent if "arrived" in rec else None)
        phase.first_chunk.append(rec["first_chunk"] - sent if "first_chunk" in rec else None)
        delta = b.sub.first_delta.get(hid)
        phase.first_delta.append(delta - sent if delta is not None else None)
        phase.stream_path.append(
            delta - rec["first_chunk"] if delta is not None and "first_chunk" in rec else None
        )
        done = b.sub.done.get(hid)
        phase.done.append(done[1] - sent if done is not None else None)
        phase.deltas.append(b.sub.deltas.get(hid, 0))
    phase.events_missing = sum(1 for d in phase.done if d is None)
    return phase


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    levels: list[int]
    rounds: int
    warmup: int
    messages: int
    first_token: float
    chunk_interval: float
    chunk_chars: int
    profile_worker: bool
    poll_delay: float | None

    @property
    def wrapper(self) -> bool:
        return self.profile_worker or self.poll_delay is not None


#: A handoff's way from its POST to the subscriber, each step's time after the POST was sent.
STEPS = ("answered", "job_queued", "job_started", "model_arrived", "first_chunk", "first_delta", "done")


def _ms(xs: list[float | None], q: float) -> float | None:
    seen = sorted(x for x in xs if x is not None)
    return round(percentile(seen, q) * 1000, 1) if seen else None


def _cores(p: Phase) -> dict[str, float]:
    """Average cores busy over the phase's window: each process of ours, and everything else."""
    c, secs = p.cpu_s, p.window_s
    if not c or not secs:
        return {}
    ours = ("worker", "api", "model", "services", "driver")
    out = {k: round(c[k] / secs, 2) for k in ours}
    out["other"] = round(max(0.0, c["machine"] - sum(c[k] for k in ours)) / secs, 2)
    return out


def log_phase(p: Phase) -> None:
    print(
        f"  round {p.round} {p.mode:<8} x{p.level:<4} ready={p.ready} failed={p.failed} "
        f"first delta p50/p99={_ms(p.first_delta, 0.5)}/{_ms(p.first_delta, 0.99)} ms "
        f"ready p50/p99={_ms(p.done, 0.5)}/{_ms(p.done, 0.99)} ms "
        f"worker={p.cpu_s.get('worker')} s ({p.worker_ms_per_assessment and round(p.worker_ms_per_assessment, 2)}"
        f" ms/assessment) window={p.window_s}s cores={_cores(p)}" + (" TIMED OUT" if p.timed_out else ""),
        flush=True,
    )


async def benchmark(
    url: str, model_url: str, settings: Any, env: dict[str, str], data_dir: Path, meter: Meter, plan: Plan
) -> dict[str, Any]:
    from escalate import create_sessions
    from redis.asyncio import Redis
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    jane = await seed(settings, "jane@acme.test")
    per_phase = [lv + plan.warmup for lv in plan.levels for _ in range(plan.rounds * 2)]
    print(f"pre-creating {sum(per_phase)} sessions ({plan.messages} messages each)", flush=True)
    sessions = await create_sessions(settings, jane, sum(per_phase), plan.messages)
    engine = create_async_engine(
        settings.sqlalchemy_url, pool_size=2, max_overflow=2,
        connect_args={"server_settings": {"application_name": "bench-driver"}},
    )  # fmt: skip
    async with engine.begin() as conn:  # the title carries the id: the fake model reads it
        await conn.execute(
            text("UPDATE ai_sessions SET title = :prefix || id::text WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"prefix": TITLE_PREFIX, "ids": [str(s) for s in sessions]},
        )
    redis = Redis.from_url(settings.redis_url)
    sub = await open_subscriber(url, await login(url, "sam@acme.test"))
    b = Bench(url=url, model_url=model_url, token=await login(url, "jane@acme.test"), settings=settings, env=env,
              data_dir=data_dir, redis=redis, engine=engine, sub=sub, meter=meter, sessions=sessions,
              plan=plan, ssl_context=ssl.create_default_context())  # fmt: skip
    phases: list[Phase] = []
    load = [os.getloadavg()]
    try:
        for level in plan.levels:
            for round_no in range(1, plan.rounds + 1):
                # ABBA: streamed first in odd rounds, plain first in even ones.
                order = ("streamed", "plain") if round_no % 2 else ("plain", "streamed")
                for mode in order:
                    phase = await run_phase(b, mode, level, round_no)
                    log_phase(phase)
                    phases.append(phase)
            load.append(os.getloadavg())
    finally:
        if sub.transport is not None:
            sub.transport.close()
        await redis.aclose()
        await engine.dispose()
    return {"phases": phases, "loadavg": load, "subscriber_frames": sub.frames}


def summarise(phases: list[Phase], plan: Plan, target_ms: float, cpu_target: float) -> dict[str, Any]:
    levels: list[dict[str, Any]] = []
    for level in plan.levels:
        row: dict[str, Any] = {"level": level}
        for mode in ("streamed", "plain"):
            ps = [p for p in phases if p.level == level and p.mode == mode]
            ok = sum(p.ready for p in ps)
            cpu = sum(p.cpu_s.get("worker", 0.0) for p in ps)

            def pick(name: str, ps: list[Phase] = ps) -> list[Any]:
                return [x for p in ps for x in getattr(p, name)]

            row[mode] = {
                "ready": ok,
                "failed": sum(p.failed for p in ps),
                "worker_ms_per_assessment": round(cpu * 1000 / ok, 2) if ok else None,
                "worker_ms_per_assessment_per_round": [
                    round(p.worker_ms_per_assessment, 2) if p.worker_ms_per_assessment else None for p in ps
                ],
                "worker_idle_cpu_ms_per_s": [
                    round(p.worker_idle_cpu_per_s * 1000, 1) if p.worker_idle_cpu_per_s is not None else None
                    for p in ps
                ],
                **{
                    f"{name}_{q}_ms": _ms(pick(name), v)
                    for name in (*STEPS, "stream_path")
                    for q, v in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
                },
                "deltas_per_handoff": round(sum(pick("deltas")) / len(pick("deltas")), 1)
                if pick("deltas")
                else None,
                "events_missing": sum(p.events_missing for p in ps),
                "resyncs": sum(p.resyncs for p in ps),
                "model_requests": sum(p.model_requests for p in ps),
                "model_requests_streamed": sum(p.model_requests_streamed for p in ps),
                "other_cores_max": max((_cores(p).get("other", 0.0) for p in ps), default=None),
                "worker_peak_cores": max((p.worker_peak_cores or 0.0 for p in ps), default=None),
                "jobs_started": sum(p.jobs_started for p in ps),
                "job_starts_per_s": round(
                    sum(p.jobs_started for p in ps) / sum(p.job_start_span_s or 0.0 for p in ps)
                )
                if sum(p.job_start_span_s or 0.0 for p in ps)
                else None,
            }
        s, pl = row["streamed"], row["plain"]
        row["cpu_ratio"] = (
            round(s["worker_ms_per_assessment"] / pl["worker_ms_per_assessment"], 3)
            if s["worker_ms_per_assessment"] and pl["worker_ms_per_assessment"]
            else None
        )
        row["cpu_extra_ms"] = (
            round(s["worker_ms_per_assessment"] - pl["worker_ms_per_assessment"], 2)
            if row["cpu_ratio"] is not None
            else None
        )
        row["cpu_ratio_per_round"] = []
        for round_no in range(1, plan.rounds + 1):
            pair = {p.mode: p for p in phases if p.level == level and p.round == round_no}
            a = pair.get("streamed") and pair["streamed"].worker_ms_per_assessment
            c = pair.get("plain") and pair["plain"].worker_ms_per_assessment
            row["cpu_ratio_per_round"].append(round(a / c, 3) if a and c else None)
        levels.append(row)
    ok_s = sum(p.ready for p in phases if p.mode == "streamed")
    ok_p = sum(p.ready for p in phases if p.mode == "plain")
    cpu_s = sum(p.cpu_s.get("worker", 0.0) for p in phases if p.mode == "streamed")
    cpu_p = sum(p.cpu_s.get("worker", 0.0) for p in phases if p.mode == "plain")
    ratio = (cpu_s / ok_s) / (cpu_p / ok_p) if ok_s and ok_p and cpu_p else None
    top = max(plan.levels)
    top_row = next(r for r in levels if r["level"] == top)
    first_p99 = top_row["streamed"]["first_delta_p99_ms"]
    budget = plan.first_token * 1000 + target_ms
    return {
        "levels": levels,
        "cpu_ratio": round(ratio, 3) if ratio else None,
        "cpu_met": ratio is not None and ratio <= cpu_target,
        "first_delta_budget_ms": budget,
        "first_delta_met_at": top,
        "first_delta_met": first_p99 is not None and first_p99 <= budget,
        "failures": sum(p.failed for p in phases),
        "post_errors": sum(p.level - p.posted for p in phases),
        "events_missing": sum(p.events_missing for p in phases),
    }


def markdown(phases: list[Phase], s: dict[str, Any], plan: Plan, cpu_target: float) -> str:
    def f(v: Any, fmt: str = ".1f") -> str:
        return "-" if v is None else format(v, fmt)

    lines = [
        "| round | mode | at once | ready | failed | first delta p50 / p90 / p99 / max ms "
        "| ready p50 / p99 ms | deltas/handoff | worker CPU ms/assessment | worker idle ms/s "
        "| window s | cores: worker / API / model / PG+Redis / driver / other | worker's busiest second, cores |",
        "|--:|---|--:|--:|--:|---|---|--:|--:|--:|--:|---|--:|",
    ]
    for p in phases:
        c = _cores(p)
        cores = " / ".join(
            f(c.get(k), ".2f") for k in ("worker", "api", "model", "services", "driver", "other")
        )
        fd = " / ".join(f(_ms(p.first_delta, q)) for q in (0.5, 0.9, 0.99, 1.0))
        idle = p.worker_idle_cpu_per_s * 1000 if p.worker_idle_cpu_per_s is not None else None
        lines.append(
            f"| {p.round} | {p.mode} | {p.level} | {p.ready} | {p.failed} | {fd if p.mode == 'streamed' else '-'} "
            f"| {f(_ms(p.done, 0.5))} / {f(_ms(p.done, 0.99))} "
            f"| {f(sum(p.deltas) / len(p.deltas) if p.deltas else None)} | {f(p.worker_ms_per_assessment, '.2f')} "
            f"| {f(idle)} | {p.window_s:.2f} | {cores} | {f(p.worker_peak_cores, '.2f')} |"
        )
    budget = s["first_delta_budget_ms"]
    lines += [
        "",
        "Where the time goes (streamed, p50 / p99 ms after the POST was sent): POST answered → its "
        "enrich job handed to arq (the API's relay) → started by the worker (arq) → model request "
        "arrived → its first chunk sent → first delta on the subscriber → ready on the subscriber.",
        "",
        "| at once | POST answered | job queued | job started | model request | first chunk | first delta "
        f"| ready | first delta ≤ {budget:g} ms (p99) | jobs the worker started per s "
        "| first chunk → first delta (the stream's own path) |",
        "|--:|---|---|---|---|---|---|---|---|--:|---|",
    ]
    for row in s["levels"]:
        st = row["streamed"]
        cells = [f"{f(st[f'{n}_p50_ms'])} / {f(st[f'{n}_p99_ms'])}" for n in STEPS]
        met = st["first_delta_p99_ms"] is not None and st["first_delta_p99_ms"] <= budget
        lines.append(
            f"| {row['level']} | {' | '.join(cells)} | {'met' if met else 'MISSED'} | {f(st['job_starts_per_s'], 'd')} "
            f"| {f(st['stream_path_p50_ms'])} / {f(st['stream_path_p99_ms'])} |"
        )
    lines += [
        "",
        "| at once | worker CPU ms/assessment: streamed / plain | streamed ÷ plain | per round "
        f"| extra ms per streamed | plain: ready p50 / p99 ms | target ≤ {cpu_target:g} |",
        "|--:|---|--:|---|--:|---|---|",
    ]
    for row in s["levels"]:
        st, pl = row["streamed"], row["plain"]
        met = row["cpu_ratio"] is not None and row["cpu_ratio"] <= cpu_target
        lines.append(
            f"| {row['level']} | {f(st['worker_ms_per_assessment'], '.2f')} / {f(pl['worker_ms_per_assessment'], '.2f')} "
            f"| {f(row['cpu_ratio'], '.2f')} | {', '.join(f(x, '.2f') for x in row['cpu_ratio_per_round'])} "
            f"| {f(row['cpu_extra_ms'], '.2f')} | {f(pl['done_p50_ms'])} / {f(pl['done_p99_ms'])} "
            f"| {'met' if met else 'MISSED'} |"
        )
    lines.append(
        f"\nall levels: streamed ÷ plain worker CPU per assessment **{f(s['cpu_ratio'], '.2f')}** "
        f"({'met' if s['cpu_met'] else 'MISSED'}); failures {s['failures']}, POST errors {s['post_errors']}, "
        f"events not seen by the subscriber {s['events_missing']}"
    )
    other = max(
        (r[m]["other_cores_max"] or 0.0 for r in s["levels"] for m in ("streamed", "plain")), default=0.0
    )
    if other > 0.25:
        lines.append(
            f"\nNote: other processes used up to {other:.2f} cores during these phases: latencies are "
            "noisy, CPU per assessment much less so."
        )
    return "\n".join(lines)


def _package(filename: str, func: str) -> str:
    """Who owns a profiled function: its site-packages folder, handoffs, a stdlib module, or builtins."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/handoffs/" in filename:
        return "handoffs"
    if "/lib/python3" in filename:
        return "stdlib " + filename.split("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
    if found := re.search(r"of '([A-Za-z_]\w*)", func) or re.search(
        r"built-in method ([A-Za-z_]\w*)\.", func
    ):
        return found.group(1)
    return "builtins"


def profile_summary(data_dir: Path, phases: list[Phase], limit: int = 15) -> dict[str, Any]:
    """Each worker's cProfile over its timed escalations (``--profile-worker``): own CPU time per
    package in ms per stored assessment, and the top functions."""
    import io
    import pstats

    out: dict[str, Any] = {}
    for path, phase in zip(sorted(data_dir.glob("worker-*.prof")), phases, strict=False):
        stats = pstats.Stats(str(path), stream=io.StringIO())
        by: dict[str, float] = {}
        for (filename, _, func), (_, _, tottime, _, _) in stats.stats.items():
            by[_package(filename, func)] = by.get(_package(filename, func), 0.0) + tottime
        n = max(1, phase.ready)
        buf = io.StringIO()
        stats.stream = buf
        stats.sort_stats("tottime").print_stats(limit)
        out[path.stem] = {
            "profiled_cpu_ms_per_assessment": round(sum(by.values()) * 1000 / n, 2),
            "ms_per_assessment_by_package": {
                k: round(v * 1000 / n, 2)
                for k, v in sorted(by.items(), key=lambda kv: -kv[1])
                if v * 1000 / n >= 0.05
            },
            "top": buf.getvalue(),
        }
    return out


def profile_table(profiles: dict[str, Any]) -> str:
    """Package x worker: own CPU ms per assessment, from the profiles."""
    names = list(profiles)
    packages: list[str] = []
    for p in profiles.values():
        packages += [k for k in p["ms_per_assessment_by_package"] if k not in packages]
    lines = ["| package | " + " | ".join(names) + " |", "|---|" + "--:|" * len(names)]
    lines.append(
        "| **all (profiled)** | "
        + " | ".join(f"**{profiles[n]['profiled_cpu_ms_per_assessment']:.2f}**" for n in names)
        + " |"
    )
    for pkg in packages[:20]:
        cells = [profiles[n]["ms_per_assessment_by_package"].get(pkg) for n in names]
        lines.append(f"| {pkg} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smoke run: 50 at once, 1 round")
    p.add_argument("--levels", help="comma-separated escalations at once (default 50,200; --quick 50)")
    p.add_argument("--rounds", type=int, help="ABBA rounds per level (default 2; --quick 1)")
    p.add_argument("--warmup", type=int, default=10, help="escalations per fresh worker before timing")
    p.add_argument("--messages", type=int, default=6, help="transcript length of each session")
    p.add_argument("--first-token", type=float, default=0.5, help="the fake model's time to first chunk, s")
    p.add_argument("--chunk-interval", type=float, default=0.02, help="seconds between chunks")
    p.add_argument("--chunk-chars", type=int, default=20, help="characters of tool JSON per chunk")
    p.add_argument("--target-ms", type=float, default=150.0, help="allowed on top of the first token, ms")
    p.add_argument("--cpu-target", type=float, default=1.5, help="allowed streamed ÷ plain worker CPU")
    p.add_argument(
        "--profile-worker", action="store_true", help="cProfile each worker (bench wrapper; slows it)"
    )
    p.add_argument(
        "--poll-delay", type=float, help="arq poll_delay for the worker (bench wrapper; default arq's 0.5 s)"
    )
    p.add_argument("--json", type=Path, help="write results here (default bench/out/assessment-<time>.json)")
    p.add_argument("--no-json", action="store_true", help="do not write a JSON file")
    p.add_argument("--keep-data", action="store_true", help="keep the temporary data dir (logs, profiles)")
    # The processes this file starts for itself.
    p.add_argument("--model-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model_server:
        return model_server(args.model_server, args.first_token, args.chunk_interval, args.chunk_chars)
    if args.worker_child:
        return worker_child()

    import msgspec
    from escalate import api_server

    from handoffs.integrations.ai import TOOL_NAME as REAL_TOOL_NAME
    from handoffs.integrations.ai import ModelOutput

    assert REAL_TOOL_NAME == TOOL_NAME, REAL_TOOL_NAME
    msgspec.convert(TOOL_INPUT, ModelOutput)  # the fake's answer must be one the worker stores

    plan = Plan(
        levels=[int(x) for x in (args.levels or ("50" if args.quick else "50,200")).split(",")],
        rounds=args.rounds or (1 if args.quick else 2),
        warmup=args.warmup,
        messages=args.messages,
        first_token=args.first_token,
        chunk_interval=args.chunk_interval,
        chunk_chars=args.chunk_chars,
        profile_worker=args.profile_worker,
        poll_delay=args.poll_delay,
    )
    git = git_state()
    started = time.monotonic()
    with start_stack("handoffs-bench-assessment-", args.keep_data) as stack:
        settings = stack.settings()
        migrate_and_seed(settings, "sam@acme.test")
        base_env = stack.env(pythonpath=False)
        for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_STREAMING"):
            base_env.pop(key, None)  # the API does not call the model; the worker gets its own
        print(f"{stack.describe()}; data dir {stack.data_dir}", flush=True)
        with (
            model_process(base_env, stack.data_dir / "model.log", plan) as (model_url, model_pid),
            api_server(base_env, stack.data_dir / "api.log", "handoffs.app:create_app") as (url, api_pid),
        ):
            worker_env = {**base_env, "ANTHROPIC_API_KEY": "sk-bench", "ANTHROPIC_BASE_URL": model_url}
            print(f"API pid {api_pid} at {url}; fake model pid {model_pid} at {model_url}", flush=True)
            meter = Meter(
                {"api": api_pid, "model": model_pid, "driver": os.getpid()}, service_pids(stack.svc)
            )
            result = run_loop(benchmark(url, model_url, settings, worker_env, stack.data_dir, meter, plan))
            phases_run: list[Phase] = result["phases"]
            profiles = profile_summary(stack.data_dir, phases_run) if plan.profile_worker else {}

    phases: list[Phase] = result["phases"]
    summary = summarise(phases, plan, args.target_ms, args.cpu_target)
    m = machine()
    print(
        f"\n{m.get('cpu', '?')}, nproc={m['nproc']}, Python {m['python']}; load average {result['loadavg']}\n"
    )
    print(markdown(phases, summary, plan, args.cpu_target))
    if profiles:
        print("\nWorker CPU by package, ms per assessment (cProfile of the timed escalations, CPU time):\n")
        print(profile_table(profiles))
        for name, prof in profiles.items():
            print(f"\n-- {name} (by own CPU time)\n{prof['top']}")
    print(f"\nrun took {time.monotonic() - started:.0f} s")
    if not args.no_json:
        write_json(
            {
                "plan": asdict(plan),
                "targets": {"first_delta_ms": summary["first_delta_budget_ms"], "cpu_ratio": args.cpu_target},
                "summary": summary,
                "phases": [{**asdict(p), "cores": _cores(p)} for p in phases],
                "loadavg": result["loadavg"],
                "subscriber_frames": result["subscriber_frames"],
                "profiles": profiles,
                "machine": m,
                "git": git,
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": command_line("assessment", argv),
            },
            args.json,
            "assessment",
        )
    bad = summary["failures"] or summary["post_errors"] or any(p.timed_out for p in phases)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
