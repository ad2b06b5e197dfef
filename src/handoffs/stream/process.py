"""What a replica serving streams changes in its process: shutdown signals and GC thresholds."""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


def chain_shutdown_signals(on_stop: Callable[[], None]) -> Callable[[], None]:
    """Run ``on_stop`` on the event loop when the process is told to stop; returns the undo.

    uvicorn waits for open responses before it runs the lifespan shutdown,
    and an event stream never ends by itself: without this a SIGTERM would
    hang until the graceful-shutdown timeout (``SHUTDOWN_GRACE_SECONDS``). The server's own handler
    still runs, after ours. Off the main thread (a test client) nothing is chained.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    chained: list[tuple[int, Any, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: FrameType | None, previous: Callable[..., Any] = previous) -> None:
            loop.call_soon_threadsafe(on_stop)
            previous(signum, frame)

        signal.signal(sig, handler)
        chained.append((sig, previous, handler))

    def undo() -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous, handler in chained:
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
        chained.clear()

    return undo


def tune_gc(gen0_threshold: int) -> None:
    """Collect young objects less often: fan-out to thousands of streams must not feed full collections.

    Every open stream keeps ~130 container objects alive (the ASGI call
    chain, its task group, the user row...). With CPython's default
    threshold (700) the short-lived objects of one fan-out survive the many
    young collections that run during it, get promoted, and soon trigger a
    full collection that walks every stream's objects: measured 0.5-0.7 s
    with 5,000 streams in one replica, a pause every few events. A threshold
    of 50,000 keeps those objects young (they die by reference count first).
    """
    _, gen1, gen2 = gc.get_threshold()
    if gc.get_threshold()[0] < gen0_threshold:
        gc.set_threshold(gen0_threshold, gen1, gen2)
