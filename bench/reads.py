"""Authenticated reads vs ``GET /health``: what one API process serves, as ratios in one run.

    .venv/bin/python bench/reads.py                 # 32 connections, 3 rounds of 5 s per path
    .venv/bin/python bench/reads.py --quick         # 1 round of 2 s
    .venv/bin/python bench/reads.py --clients 32,128,512
    .venv/bin/python bench/reads.py --profile me    # py-spy over the API during /me; top frames

One uvicorn process (the app factory ``handoffs.app:create_app``, as ``handoffs serve`` runs it)
against PostgreSQL and Redis (embedded, or ``DATABASE_URL`` / ``REDIS_URL``); the load comes from
``wrk`` (Debian's package: ``apt-get install wrk``), which costs far less CPU per request than a
Python client, so the API process is what saturates. Rounds interleave the paths (ABBA), and each
figure is a ratio to ``/health`` in the same round; the API's CPU per request is read from
/proc for the process.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import (
    command_line,
    git_state,
    login,
    machine,
    migrate_and_seed,
    run_loop,
    start_stack,
    write_json,
)

PATHS = {
    "health": "/health",
    "me": "/api/v1/me",
    "unread": "/api/v1/notifications/unread-count",
    "queue": "/api/v1/ai-sessions/queue",
}
TARGETS = {"me": 0.5, "unread": 0.35, "queue": 0.35}


@dataclass
class Measure:
    path: str
    clients: int
    round: int
    rps: float
    api_cpu_ms: float | None
    errors: int
    non_2xx: int
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def wrk(url: str, token: str | None, clients: int, seconds: float, threads: int = 1) -> dict[str, Any]:
    """One wrk run; its requests/s, errors, non-2xx answers and latency percentiles."""
    cmd = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{max(1, round(seconds))}s", "--latency",
           "--timeout", "30s"]  # fmt: skip
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # wrk's "Socket errors: connect 0, read 0, write 0, timeout 0": a timeout is an answer later
    # than --timeout (30 s), kept apart from errors.
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write) (\d+)", out))
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0

    def pct(label: str) -> float | None:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return None
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "errors": errors, "non_2xx": non_2xx, "p50": pct("50"), "p99": pct("99"), "raw": out}


def proc_cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


async def fill_queue(base_url: str, token: str, n: int, messages: int = 8) -> None:
    """``n`` open escalations through the API, each with a ``messages``-long transcript (the
    handoff keeps a snapshot of it): the queue a busy team looks at."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        for i in range(n):
            session = await http.post(
                "/api/v1/ai-sessions",
                json={
                    "title": f"Outlook sync #{i}",
                    "problem_summary": "Outlook fails to sync after the move",
                },
            )
            sid = session.json()["id"]
            for m in range(messages):
                role = "user" if m % 2 == 0 else "assistant"
                text = f"Step {m}: " + "checked the OST, the profile and the mailbox quota. " * 6
                await http.post(f"/api/v1/ai-sessions/{sid}/messages", json={"role": role, "content": text})
            escalated = await http.post(
                f"/api/v1/ai-sessions/{sid}/handoff",
                json={"intent": "escalate", "priority": "normal", "engineer_notes": "Tried the usual."},
            )
            escalated.raise_for_status()


def settle(pid: int, seconds: float = 10.0) -> None:
    """Wait until the API is idle: after wrk stops, a server with hundreds of connections is still
    answering the requests in flight, and that CPU would count against the next run."""
    deadline = time.monotonic() + seconds
    last = proc_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = proc_cpu(pid)
        if now - last < 0.01:  # under 4% of a core in the last quarter second
            return
        last = now


def measure(base: str, token: str, pid: int, name: str, clients: int, seconds: float, rnd: int) -> Measure:
    settle(pid)
    before = proc_cpu(pid)
    w = wrk(base + PATHS[name], None if name == "health" else token, clients, seconds)
    cpu = proc_cpu(pid) - before
    done = w["rps"] * seconds
    return Measure(
        path=name, clients=clients, round=rnd, rps=round(w["rps"], 1),
        api_cpu_ms=round(cpu * 1000 / done, 3) if done else None,
        errors=w["errors"], non_2xx=w["non_2xx"], latency_p50_ms=w["p50"], latency_p99_ms=w["p99"],
    )  # fmt: skip


def profile(
    base: str, token: str, pid: int, name: str, clients: int, seconds: float, out: Path
) -> list[tuple[str, float]]:
    """py-spy over the API process while wrk drives ``name``; the frames with the most own time."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = out.with_suffix(".txt")
    spy = subprocess.Popen(
        [pyspy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--nonblocking",
         "--duration", str(int(seconds) + 1), "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    wrk(base + PATHS[name], None if name == "health" else token, clients, seconds)
    spy.wait(timeout=60)
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += n
    print(f"\nprofile of {name}: {total} samples; raw stacks in {raw}")
    print("top own time:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {n * 100 / total:5.1f}%  {frame}")
    print("top inclusive (handoffs, litestar, sqlalchemy, advanced_alchemy, asyncpg, jwt, msgspec):")
    keep = ("handoffs", "litestar", "sqlalchemy", "advanced_alchemy", "asyncpg", "jwt", "msgspec", "uvicorn")
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:80]:
        if any(k in frame for k in keep):
            print(f"  {n * 100 / total:5.1f}%  {frame}")
    return sorted(((f, n / total) for f, n in own.items()), key=lambda kv: -kv[1])[:25]


def _short(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"
    m = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    func, path, _ = m.groups()
    for marker in ("site-packages/", "src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{func} ({path})"


def summarise(measures: list[Measure]) -> dict[str, Any]:
    by: dict[tuple[int, int], dict[str, Measure]] = defaultdict(dict)
    for m in measures:
        by[(m.clients, m.round)][m.path] = m
    table: dict[int, dict[str, dict[str, Any]]] = {}
    for clients in sorted({m.clients for m in measures}):
        rows: dict[str, dict[str, Any]] = {}
        rounds = [by[k] for k in by if k[0] == clients]
        for name in PATHS:
            ratios = sorted(r[name].rps / r["health"].rps for r in rounds if name in r and r["health"].rps)
            rps = sorted(r[name].rps for r in rounds if name in r)
            cpu = sorted(r[name].api_cpu_ms for r in rounds if name in r and r[name].api_cpu_ms)
            rows[name] = {
                "rps_median": round(statistics.median(rps), 1) if rps else None,
                "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
                "ratio_min": round(ratios[0], 3) if ratios else None,
                "api_cpu_ms_median": round(statistics.median(cpu), 3) if cpu else None,
                "target": TARGETS.get(name),
            }
        table[clients] = rows
    return table


def markdown(table: dict[int, dict[str, dict[str, Any]]]) -> str:
    lines = ["| clients | request | req/s (median) | ÷ /health (median, min) | API CPU per request | target |",
             "|--:|---|--:|--:|--:|--:|"]  # fmt: skip
    for clients, rows in table.items():
        for name, r in rows.items():
            target = f"≥ {r['target']}" if r["target"] else ""
            ratio = "1.00" if name == "health" else f"{r['ratio_median']:.2f} ({r['ratio_min']:.2f})"
            cpu = f"{r['api_cpu_ms_median']:.3f} ms" if r["api_cpu_ms_median"] else "?"
            lines.append(
                f"| {clients} | `{PATHS[name]}` | {r['rps_median']:,.0f} | {ratio} | {cpu} | {target} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--clients", default="32")
    p.add_argument("--rounds", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--queue", type=int, default=50, help="open escalations in the queue (default 50)")
    p.add_argument("--profile", choices=sorted(PATHS), help="profile the API under this path's load")
    p.add_argument("--json", type=Path)
    p.add_argument("--no-json", action="store_true")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/reads.py needs wrk (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    clients = [int(c) for c in args.clients.split(",")]
    from escalate import api_server

    with start_stack("handoffs-reads-", False) as stack:
        settings = stack.settings()
        migrate_and_seed(settings, "jane@acme.test")
        env = stack.env(pythonpath=True)
        env["LOG_FORMAT"] = "text"
        with api_server(env, stack.data_dir / "api.log", "handoffs.app:create_app") as (url, pid):
            token = run_loop(login(url, "sam@acme.test"))
            if args.queue:
                run_loop(fill_queue(url, run_loop(login(url, "jane@acme.test")), args.queue))
            print(f"API pid {pid} at {url}; {stack.describe()}", flush=True)
            for name in PATHS:  # warm-up: imports, statement caches, the pool
                wrk(url + PATHS[name], None if name == "health" else token, 8, 1.0)
            if args.profile:
                folder = Path(tempfile.mkdtemp(prefix="handoffs-profile-"))
                profile(url, token, pid, args.profile, clients[0], seconds * 2, folder / args.profile)
                return 0
            measures: list[Measure] = []
            order = list(PATHS)
            for rnd in range(rounds):
                for c in clients:
                    for name in order if rnd % 2 == 0 else order[::-1]:
                        m = measure(url, token, pid, name, c, seconds, rnd)
                        measures.append(m)
                        print(f"  round {rnd} c={c:<4} {name:<7} {m.rps:9.1f} req/s  "
                              f"cpu {m.api_cpu_ms} ms/req  p99 {m.latency_p99_ms} ms  "
                              f"errors {m.errors} non-2xx {m.non_2xx}", flush=True)  # fmt: skip
    table = summarise(measures)
    print()
    print(markdown(table))
    result = {
        "bench": "reads", "machine": machine(), "git": git_state(), "command": command_line("reads", argv),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "measures": [asdict(m) for m in measures], "table": {str(k): v for k, v in table.items()},
    }  # fmt: skip
    if not args.no_json:
        write_json(result, args.json, "reads")
    bad = sum(m.errors + m.non_2xx for m in measures)
    if bad:
        print(f"{bad} errors or non-2xx answers", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
