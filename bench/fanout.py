"""Live-stream fan-out: N SSE subscribers over two API replicas, one publisher.

For each N it starts two fresh uvicorn replicas, opens N/2 event streams on
each from ONE load-generator process (raw asyncio sockets, not httpx: an
httpx client per stream costs more than the server side at 10,000), then
publishes events one at a time through the event bus, as the worker does,
and measures for every (event, subscriber) the time from just before the
publish call to the moment the event's bytes reach the load generator.

    .venv/bin/python bench/fanout.py                    # N = 1000, 5000, 10000 (~3 min on 2 cores)
    .venv/bin/python bench/fanout.py --quick            # N = 200, 1000
    .venv/bin/python bench/fanout.py --levels 2,10000 --events 40 --interval 0.5
    .venv/bin/python bench/fanout.py --from escalate    # each event a real escalation POSTed to a replica

With ``--from escalate`` the latency is measured from the escalate POST (what a senior sees), not
from the publish call, and the card's title carries the event's number.

Reported per N: p50/p99/max latency, deliveries missing, resyncs, RSS per
connection of each replica ((RSS with N/2 streams - RSS idle) / (N/2)),
Redis connections held by the replicas (CLIENT LIST) and CPU of each process.
All subscribers belong to one account, the worst case: every event goes to
every stream. Targets: N = 10,000 with p99 < 250 ms and <= 30 KB per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

# bench/common.py, a sibling: run as a script, bench/ is sys.path[0] (from the repo root or bench/).
from common import (
    ROOT,
    busy_seconds,
    command_line,
    cpu_model,
    migrate_and_seed,
    percentile,
    run_loop,
    seed,
    start_stack,
    write_json,
)

STREAM_PATH = "/api/v1/ai-sessions/escalations/stream"
BENCH_CLIENT_NAME = "handoffs-bench"
MARKER = b'"bench_seq":'
#: With ``--from escalate`` the marker is in the session's title, which the card repeats.
TITLE_MARKER = b"bench_seq="
TARGET_P99_MS = 250.0
TARGET_KB_PER_CONNECTION = 30.0


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one (10,000 sockets need it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the load generator: one protocol object per stream --------------------------------------


@dataclass
class Tally:
    """Shared by every subscriber of one level."""

    published_at: dict[int, float] = field(default_factory=dict)
    #: Per event (its ``bench_seq``), the publish→receive seconds of every stream that got it.
    latencies: dict[int, list[float]] = field(default_factory=dict)
    ready: int = 0
    refused: int = 0
    lost: int = 0
    resyncs: int = 0
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0
    marker: bytes = MARKER


class Subscriber(asyncio.Protocol):
    """One event stream: sends the request, then only scans incoming bytes for event markers.

    Each event carries ``"bench_seq":N``; the scan keeps a short tail between
    reads, so a marker split across two TCP reads is still found once.
    """

    __slots__ = ("_head", "_seen", "_tail", "is_ready", "request", "tally", "transport")

    def __init__(self, tally: Tally, request: bytes) -> None:
        self.tally = tally
        self.request = request
        self.transport: Any = None
        self.is_ready = False
        self._head = b""
        self._tail = b""
        self._seen: set[int] = set()

    def connection_made(self, transport: Any) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have write() and close().
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        tally = self.tally
        if not self.is_ready:
            self._head += data
            if not self._head.startswith(b"HTTP/1.1 200"):
                if len(self._head) >= 12:
                    tally.refused += 1
                    self.transport.close()
                return
            if b"event: ready" not in self._head:
                return
            self.is_ready = True
            self._head = b""
            tally.ready += 1
            if tally.ready >= tally.expected:
                tally.all_ready.set()
            return
        buf = self._tail + data if self._tail else data
        pos = 0
        while True:
            i = buf.find(tally.marker, pos)
            if i < 0:
                break
            j = k = i + len(tally.marker)
            n = len(buf)
            while k < n and 48 <= buf[k] <= 57:
                k += 1
            if k == n:
                break  # digits may continue in the next read
            seq = int(buf[j:k])
            sent = tally.published_at.get(seq)
            if sent is not None and seq not in self._seen:  # the first frame naming it
                self._seen.add(seq)
                tally.latencies[seq].append(now - sent)
            pos = k
        if b"event: resync" in data:
            tally.resyncs += 1
        # Keep only what may hold the start of a marker not seen whole yet.
        self._tail = buf[max(pos, len(buf) - 40) :] if buf.rfind(b'"', pos) >= 0 else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.lost += 1


# -- replicas ----------------------------------------------------------------------------------


@dataclass
class Replica:
    url: str
    proc: subprocess.Popen[bytes]

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)


def _child_limits() -> None:  # runs in the replica process before exec
    raise_fd_limit()


@contextlib.contextmanager
def replicas(env: dict[str, str], count: int, log_dir: Path) -> Iterator[list[Replica]]:
    import httpx

    from handoffs.embedded import free_port

    started: list[Replica] = []
    try:
        for index in range(count):
            port = free_port()
            log = (log_dir / f"replica-{index}-{port}.log").open("wb")
            cmd = [sys.executable, "-m", "uvicorn", "handoffs.app:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", str(port), "--backlog", "4096",
                   "--no-access-log", "--log-level", "warning"]  # fmt: skip
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_child_limits
            )
            started.append(Replica(f"http://127.0.0.1:{port}", proc))
        deadline = time.monotonic() + 60
        for replica in started:
            while True:
                if replica.proc.poll() is not None:
                    raise RuntimeError(f"replica {replica.url} exited; see {log_dir}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{replica.url}/health/ready", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica {replica.url} did not become ready; see {log_dir}")
                time.sleep(0.1)
        yield started
    finally:
        for replica in started:
            replica.proc.terminate()
        for replica in started:
            try:
                replica.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait()


def rss_bytes(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, everything but idle and iowait)."""
    import psutil

    return busy_seconds(psutil.cpu_times())


def cpu_seconds(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


# -- one level -----------------------------------------------------------------------------------


@dataclass
class Level:
    subscribers: int
    ready: int
    refused: int
    events: int
    deliveries_expected: int
    deliveries: int
    missing: int
    resyncs: int
    lost_during_run: int
    connect_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    per_event_p99_ms: list[float]
    gc_gen0_threshold: str
    rss_idle_mb: list[float]
    rss_loaded_mb: list[float]
    kb_per_connection: list[float]
    redis_connections_replicas: int
    redis_connections_idle: int
    hub_connections: int
    cpu_s_during_publish: dict[str, float]
    publish_window_s: float
    us_per_stream_event: list[float]
    """Each replica's CPU in the window per stream it holds per event (issue #15: ≤ 8 µs)."""
    measured_from: str


async def open_streams(
    replicas_: list[Replica], token: str, count: int, tally: Tally, batch: int = 250
) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    subscribers: list[Subscriber] = []
    for start in range(0, count, batch):
        tasks = []
        for i in range(start, min(count, start + batch)):
            replica = replicas_[i % len(replicas_)]
            host, port = replica.host_port
            request = (
                f"GET {STREAM_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
            sub = Subscriber(tally, request)
            subscribers.append(sub)
            tasks.append(loop.create_connection(lambda sub=sub: sub, host, port))  # type: ignore[misc]
        await asyncio.gather(*tasks)
        # Let the replicas authenticate most of this batch before the next one lands.
        enough = min(count, start + batch) - batch // 2
        await until(lambda enough=enough: tally.ready + tally.refused >= enough, 120)
    return subscribers


async def until(condition: Any, seconds: float) -> bool:
    """Poll ``condition`` every 10 ms for up to ``seconds``; return whether it came true."""
    for _ in range(int(seconds * 100)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return bool(condition())


async def redis_connections(redis: Any) -> tuple[int, int]:
    """(connections of everyone but this bench, of which hub subscriber connections)."""
    clients = [c for c in await redis.client_list() if c.get("name") != BENCH_CLIENT_NAME]
    hubs = [c for c in clients if c.get("name", "").startswith("handoffs-hub")]
    return len(clients), len(hubs)


async def run_level(
    n: int,
    replicas_: list[Replica],
    token: str,
    account_id: UUID,
    redis_url: str,
    events: int,
    interval: float,
    escalate: EscalateFrom | None = None,
) -> Level:
    from redis.asyncio import Redis

    from handoffs.events import EventBus

    redis = Redis.from_url(redis_url, client_name=BENCH_CLIENT_NAME)
    bus = EventBus(redis)
    pids = [r.proc.pid for r in replicas_]
    try:
        # Warm up each replica (imports, caches, the hub's subscription), then measure it idle.
        warm = Tally(expected=2 * len(replicas_))
        warm_subs = await open_streams(replicas_, token, warm.expected, warm)
        await asyncio.wait_for(warm.all_ready.wait(), 30)
        for seq in range(3):
            warm.latencies[seq] = []
            warm.published_at[seq] = time.perf_counter()
            await bus.publish(_event(account_id, seq))
            await asyncio.sleep(0.05)
        for sub in warm_subs:
            assert sub.transport is not None
            sub.transport.close()
        await asyncio.sleep(1.0)
        rss_idle = [rss_bytes(pid) for pid in pids]
        redis_idle, _ = await redis_connections(redis)

        tally = Tally(expected=n, marker=TITLE_MARKER if escalate else MARKER)
        sessions = await escalate.sessions(events) if escalate else []
        started = time.perf_counter()
        subscribers = await open_streams(replicas_, token, n, tally)
        try:
            await asyncio.wait_for(tally.all_ready.wait(), 300)
        except TimeoutError:
            print(f"  only {tally.ready} of {n} streams became ready ({tally.refused} refused)", flush=True)
        connect_s = time.perf_counter() - started
        await asyncio.sleep(2.0)
        rss_loaded = [rss_bytes(pid) for pid in pids]
        redis_loaded, hubs = await redis_connections(redis)
        lost_before = tally.lost

        cpu_before = {f"replica{i}": cpu_seconds(pid) for i, pid in enumerate(pids)}
        cpu_before["loadgen"] = cpu_seconds(os.getpid())
        machine_before = machine_busy()
        window_start = time.perf_counter()
        for seq in range(events):
            tally.latencies[seq] = []
            tally.published_at[seq] = time.perf_counter()
            if escalate:
                await escalate.send(sessions[seq])
            else:
                await bus.publish(_event(account_id, seq))
            await asyncio.sleep(interval)
        if escalate:
            await escalate.close()
        expected = events * tally.ready
        await until(lambda: sum(map(len, tally.latencies.values())) >= expected, 10)
        window = time.perf_counter() - window_start
        cpu = {
            f"replica{i}": round(cpu_seconds(pid) - cpu_before[f"replica{i}"], 2)
            for i, pid in enumerate(pids)
        }
        cpu["loadgen"] = round(cpu_seconds(os.getpid()) - cpu_before["loadgen"], 2)
        # Everything else that ran on the machine meanwhile (Redis, the kernel's share, other
        # people's processes): the number to check before trusting a latency.
        cpu["machine"] = round(machine_busy() - machine_before, 2)
        cpu["other"] = round(cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine"), 2)

        lost_during_run = tally.lost - lost_before
        lat = sorted(x for xs in tally.latencies.values() for x in xs)
        per_event = [
            round(percentile(sorted(xs), 0.99) * 1000, 1) for _, xs in sorted(tally.latencies.items())
        ]
        deliveries = len(lat)
        for sub in subscribers:
            if sub.transport is not None:
                sub.transport.close()
        await asyncio.sleep(0.5)
        per_stream = [max(1, tally.ready // len(pids))] * len(pids)
        return Level(
            subscribers=n,
            ready=tally.ready,
            refused=tally.refused,
            events=events,
            deliveries_expected=expected,
            deliveries=deliveries,
            missing=max(0, expected - deliveries),
            resyncs=tally.resyncs,
            lost_during_run=lost_during_run,
            connect_s=round(connect_s, 2),
            p50_ms=round(percentile(lat, 0.50) * 1000, 1),
            p90_ms=round(percentile(lat, 0.90) * 1000, 1),
            p99_ms=round(percentile(lat, 0.99) * 1000, 1),
            max_ms=round((lat[-1] if lat else math.nan) * 1000, 1),
            per_event_p99_ms=per_event,
            gc_gen0_threshold=os.environ.get("SSE_GC_GEN0_THRESHOLD", "default (50000)"),
            rss_idle_mb=[round(r / 2**20, 1) for r in rss_idle],
            rss_loaded_mb=[round(r / 2**20, 1) for r in rss_loaded],
            kb_per_connection=[
                round((loaded - idle) / streams / 1024, 1)
                for loaded, idle, streams in zip(rss_loaded, rss_idle, per_stream, strict=True)
            ],
            redis_connections_replicas=redis_loaded,
            redis_connections_idle=redis_idle,
            hub_connections=hubs,
            cpu_s_during_publish=cpu,
            publish_window_s=round(window, 2),
            us_per_stream_event=[
                round(cpu[f"replica{i}"] * 1e6 / (events * streams), 1)
                for i, streams in enumerate(per_stream)
            ],
            measured_from="escalate POST" if escalate else "publish",
        )
    finally:
        await redis.aclose()


@dataclass
class EscalateFrom:
    """``--from escalate``: each event is a real escalation POSTed to the first replica by a
    junior (sessions made before the window), so the latency is what a senior sees: escalate
    POST sent → its ``handoff_created`` card read, through the handoff's transaction, the
    outbox, the relay's fast path, the bus and the hub."""

    url: str
    token: str
    http: Any = None

    async def sessions(self, n: int) -> list[str]:
        import httpx

        self.http = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        out = []
        for seq in range(n):
            made = await self.http.post(
                "/api/v1/ai-sessions",
                json={"title": f"bench_seq={seq}; Outlook sync", "problem_summary": "Outlook fails to sync"},
            )
            made.raise_for_status()
            out.append(str(made.json()["id"]))
        return out

    async def send(self, session_id: str) -> None:
        from common import ESCALATE_BODY

        answer = await self.http.post(
            f"/api/v1/ai-sessions/{session_id}/handoff",
            content=ESCALATE_BODY,
            headers={"Content-Type": "application/json"},
        )
        answer.raise_for_status()

    async def close(self) -> None:
        await self.http.aclose()


def _event(account_id: UUID, seq: int) -> dict[str, Any]:
    # Shaped like a handoff_created card: ~600 bytes of JSON, as the console receives.
    return {
        "type": "handoff_created",
        "account_id": str(account_id),
        "handoff_id": "0190e3c4-0000-7000-8000-000000000000",
        "session_id": "0190e3c4-0000-7000-8000-000000000001",
        "title": "Escalation from Jane · #100231: Outlook is failing to sync email after the mailbox move",
        "priority": "high",
        "problem_summary": "Outlook is failing to sync email after the mailbox moved to Exchange Online; OWA works.",
        "psa_ticket_id": "100231",
        "created_by": {"id": "0190e3c4-0000-7000-8000-000000000002", "name": "Jane Doe"},
        "intent": "escalate",
        "bench_seq": seq,
    }


# -- setup ---------------------------------------------------------------------------------------


def mint_token(secret: str, user_id: UUID) -> str:
    from litestar.security.jwt import Token

    token = Token(sub=str(user_id), exp=datetime.now(UTC) + timedelta(hours=2))
    return token.encode(secret=secret, algorithm="HS256")


def machine() -> dict[str, Any]:
    """Fewer fields than ``common.machine()``, ``cpu`` always there: as this benchmark's JSON has them."""
    return {"cpu": cpu_model() or "", "nproc": os.cpu_count(), "python": platform.python_version()}


def markdown(levels: list[Level]) -> str:
    rows = [
        "| subscribers | ready | p50 ms | p99 ms | max ms | missing | resyncs | KB/conn (A, B) "
        "| RSS idle→loaded MB (A, B) | Redis conns (replicas) | CPU s A/B/loadgen/other "
        "| µs CPU per stream per event (A, B) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|",
    ]
    for lv in levels:
        rss = ", ".join(f"{i}→{loaded}" for i, loaded in zip(lv.rss_idle_mb, lv.rss_loaded_mb, strict=True))
        cpu = "/".join(str(v) for k, v in lv.cpu_s_during_publish.items() if k != "machine")
        rows.append(
            f"| {lv.subscribers:,} | {lv.ready:,} | {lv.p50_ms} | {lv.p99_ms} | {lv.max_ms} | {lv.missing} "
            f"| {lv.resyncs} | {', '.join(str(k) for k in lv.kb_per_connection)} | {rss} "
            f"| {lv.redis_connections_replicas} ({lv.hub_connections} hub) | {cpu} "
            f"| {', '.join(str(u) for u in lv.us_per_stream_event)} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--levels", default=None, help="comma-separated subscriber counts (default 1000,5000,10000)"
    )
    p.add_argument("--quick", action="store_true", help="levels 200,1000 and fewer events")
    p.add_argument("--events", type=int, default=None, help="events published per level (default 30)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between events (default 0.5)")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument(
        "--from",
        dest="source",
        choices=["publish", "escalate"],
        default="publish",
        help="events published on the bus (default), or real escalations POSTed to a replica",
    )
    p.add_argument("--json", type=Path, help="write results here (default bench/out/fanout-<time>.json)")
    p.add_argument("--no-json", action="store_true")
    p.add_argument("--keep-data", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(x) for x in (args.levels or ("200,1000" if args.quick else "1000,5000,10000")).split(",")]
    events = args.events or (10 if args.quick else 30)
    fd_limit = raise_fd_limit()
    if fd_limit < max(levels) + 200:
        print(f"open-files limit is {fd_limit}: too low for {max(levels)} sockets", file=sys.stderr)
        return 2
    results: list[Level] = []
    with start_stack("handoffs-fanout-", args.keep_data) as stack:
        settings = stack.settings()
        owner = migrate_and_seed(settings, "sam@acme.test")
        token = mint_token(stack.secret, owner.user_id)
        junior_token = mint_token(stack.secret, run_loop(seed(settings, "jane@acme.test")).user_id)
        env = stack.env(pythonpath=False)  # the replicas serve handoffs.app alone
        env["SSE_MAX_STREAMS_PER_USER"] = "0"  # one token opens every stream: no per-user cap
        print(f"{stack.describe()}; open-files limit {fd_limit}", flush=True)
        for n in levels:
            with replicas(env, args.replicas, stack.data_dir) as reps:
                print(
                    f"N={n}: {args.replicas} fresh replicas, {events} events every {args.interval}s",
                    flush=True,
                )
                escalate = EscalateFrom(reps[0].url, junior_token) if args.source == "escalate" else None
                level = run_loop(
                    run_level(
                        n, reps, token, owner.account_id, stack.svc.redis_url, events, args.interval, escalate
                    )
                )
                results.append(level)
                print(f"  {asdict(level)}", flush=True)

    m = machine()
    print(f"\n{m['cpu']}, nproc={m['nproc']}, Python {m['python']}\n")
    print(markdown(results))
    if not args.no_json:
        write_json(
            {
                "levels": [asdict(lv) for lv in results],
                "machine": m,
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": command_line("fanout", argv),
                "targets": {"p99_ms": TARGET_P99_MS, "kb_per_connection": TARGET_KB_PER_CONNECTION},
            },
            args.json,
            "fanout",
        )
    return 0 if all(lv.missing == 0 and lv.ready == lv.subscribers for lv in results) else 1


if __name__ == "__main__":
    sys.exit(main())
