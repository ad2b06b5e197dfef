"""The suite's one way to wait: poll a condition until it holds, failing after a deadline.

A deadline is a guard against a hang, never a claim about speed (that is bench/'s): make it
generous, and say in the failure what was last seen.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], seconds: float = 20, interval: float = 0.1
) -> Any:
    """Poll an async predicate until it returns something truthy, and return that; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {seconds}s (last value {value!r})")
        await asyncio.sleep(interval)


async def wait_lock_waiter(engine: Any, statement_prefix: str = "") -> None:
    """Until a connection to ``engine``'s database waits on a lock, in a statement beginning with
    ``statement_prefix``: a request or transaction the test set up to block is now blocked."""
    from sqlalchemy import text

    async def waiting() -> bool:
        async with engine.connect() as probe:
            found = await probe.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE :prefix || '%'"
                ),
                {"prefix": statement_prefix},
            )
        return bool(found)

    await wait_for(waiting)


async def eventually(probe: Callable[[], Awaitable[Any]], expected: Any, within: float = 5.0) -> None:
    """Poll ``probe`` until it answers ``expected``; fail with the last answer after ``within`` seconds."""
    seen: list[Any] = []

    async def matches() -> bool:
        seen[:] = [await probe()]
        return bool(seen[0] == expected)

    try:
        await wait_for(matches, seconds=within, interval=0.02)
    except AssertionError:
        raise AssertionError(f"still {seen[0]!r}, not {expected!r}, after {within}s") from None


def wait_started(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    what: str,
    log: Callable[[], str],
    seconds: float = 30,
    interval: float = 0.1,
) -> None:
    """Wait, blocking, until the server ``proc`` started is ``ready()``; fail with the end of its
    ``log()`` when it exits first or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready within {seconds}s:\n{log()[-3000:]}")
        time.sleep(interval)


def stop_started(proc: subprocess.Popen[bytes], seconds: float = 10) -> None:
    """SIGTERM (the server's own shutdown), then SIGKILL after ``seconds``; waits until it is gone."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
