"""What one SSE frame to one open stream costs at the bottom: a socket write, with no web stack.

    .venv/bin/python bench/fanout_floor.py                     # 1,000 / 5,000 / 10,000 streams, 30 events
    .venv/bin/python bench/fanout_floor.py --levels 5000 --events 10

Issue #15 asks the fan-out for at most 8 µs of a replica's CPU per stream per event; this
measures what the machine allows, so the replica's figure (fanout.py) can be read against it.
A writer process holds N loopback TCP connections (uvloop, as the replicas run), a reader
process (uvloop) reads them all. For each event the writer sends the same ~600-byte frame to
every connection, three ways, each a round of its own, alternating (ABBA):

- ``write``: one loop over the transports, ``transport.write(frame)``: the floor (the syscall
  and the kernel's TCP work, which on loopback includes the receiving side's);
- ``task``: one task per connection waiting on a future, woken for each event, which then
  writes: the shape of a per-client response task (what Litestar's ``Stream`` is), without
  Litestar;
- ``drain``: the same, awaiting ``writer.drain()`` after each write through asyncio streams:
  per-connection flow control, as uvicorn's ASGI ``send`` does for each body.

Each figure is the writer's CPU (user + system, from ``os.times``) per stream per event; the
reader's CPU is reported apart. Every frame must arrive (counted by the reader).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
from datetime import UTC, datetime
from typing import Any

from common import command_line, git_state, machine, write_json

#: The size of a ``handoff_created`` frame as the replicas send it (fanout.py's events).
FRAME = b"id: 1700000000000-0\nevent: handoff_created\ndata: " + b'{"x":"' + b"a" * 540 + b'"}\n\n'
WAYS = ("write", "task", "drain")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def reader(port: int, n: int, expect: int, ready: Any, done: Any, cpu: Any) -> None:
    """Open ``n`` connections and read until ``expect`` bytes arrived on each, in all."""
    import uvloop

    async def main() -> None:
        total = 0
        finished = asyncio.get_running_loop().create_future()

        class Reader(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                nonlocal total
                total += len(data)
                if total >= expect and not finished.done():
                    finished.set_result(None)

        loop = asyncio.get_running_loop()
        for start in range(0, n, 500):
            await asyncio.gather(
                *(
                    loop.create_connection(Reader, "127.0.0.1", port)
                    for _ in range(start, min(n, start + 500))
                )
            )
        ready.set()
        started = _cpu()
        await asyncio.wait_for(finished, 600)
        cpu.value = _cpu() - started
        done.set()

    uvloop.run(main())


async def serve(n: int, events: int, rounds: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    writers: list[asyncio.StreamWriter] = []
    accepted = loop.create_future()

    def on_stream(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)
        transports.append(w.transport)  # type: ignore[arg-type]
        if len(writers) == n and not accepted.done():
            accepted.set_result(None)

    server = await asyncio.start_server(on_stream, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    ctx = mp.get_context("spawn")
    ready, done, reader_cpu = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
    expect = len(FRAME) * events * n * rounds * len(WAYS)
    proc = ctx.Process(target=reader, args=(port, n, expect, ready, done, reader_cpu))
    proc.start()
    await asyncio.wait_for(accepted, 120)
    await loop.run_in_executor(None, ready.wait)

    # One waiting task per connection for the "task" and "drain" ways, woken by one future per event.
    wake: list[asyncio.Future[None]] = [loop.create_future()]
    sent = 0
    target = 0
    all_sent = asyncio.Event()

    async def client(i: int, drain: bool) -> None:
        nonlocal sent
        transport, writer = transports[i], writers[i]
        for _ in range(events):
            future = wake[0]
            await future
            if drain:
                writer.write(FRAME)
                await writer.drain()
            else:
                transport.write(FRAME)
            sent += 1
            if sent == target:
                all_sent.set()

    per: dict[str, list[float]] = {way: [] for way in WAYS}
    order = [list(WAYS) if r % 2 == 0 else list(reversed(WAYS)) for r in range(rounds)]
    for ways in order:
        for way in ways:
            await asyncio.sleep(0.3)  # the reader has caught up
            if way == "write":
                started = _cpu()
                for _ in range(events):
                    for t in transports:
                        t.write(FRAME)
                    await asyncio.sleep(0)
                used = _cpu() - started
            else:
                sent = 0
                tasks = [asyncio.create_task(client(i, way == "drain")) for i in range(n)]
                await asyncio.sleep(0.05)  # all waiting
                started = _cpu()
                for k in range(events):
                    old, wake[0] = wake[0], loop.create_future()
                    old.set_result(None)
                    target = (k + 1) * n
                    all_sent.clear()
                    await all_sent.wait()  # every task wrote this event
                await asyncio.gather(*tasks)
                used = _cpu() - started
            per[way].append(used * 1e6 / (events * n))
            print(f"  n={n:>6} {way:<6} {per[way][-1]:6.2f} µs CPU per stream per event", flush=True)
    await loop.run_in_executor(None, done.wait, 600)
    proc.join(30)
    server.close()
    for w in writers:
        w.close()
    median = {way: sorted(v)[len(v) // 2] for way, v in per.items()}
    return {
        "n": n,
        "per_us": per,
        "median_us": median,
        "reader_us": reader_cpu.value * 1e6 / (expect / len(FRAME)),
    }


def main(argv: list[str] | None = None) -> int:
    import resource

    import uvloop

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", default="1000,5000,10000")
    p.add_argument("--events", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-json", action="store_true")
    args = p.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = []
    for n in [int(x) for x in args.levels.split(",")]:
        if n + 100 > hard:  # per process: the writer holds n sockets, the reader n
            print(f"  n={n}: needs {n + 100} open files, the limit is {hard}; skipped", flush=True)
            continue
        results.append(uvloop.run(serve(n, args.events, args.rounds)))
    print(
        "\n| streams | write (floor) | task per stream | task + drain | reader per frame |\n|--:|--:|--:|--:|--:|"
    )
    for r in results:
        m = r["median_us"]
        print(
            f"| {r['n']:,} | {m['write']:.2f} µs | {m['task']:.2f} µs | {m['drain']:.2f} µs | {r['reader_us']:.2f} µs |"
        )
    if not args.no_json:
        write_json(
            {"bench": "fanout_floor", "machine": machine(), "git": git_state(), "results": results,
             "command": command_line("fanout_floor", argv), "finished_at": datetime.now(UTC).isoformat()},
            None, "fanout_floor",
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
