"""Group commit for concurrent callers: many awaits, one batch call.

A worker runs hundreds of jobs at once, and each would otherwise pay its own
database round trips (``BEGIN``, the statement, ``COMMIT``) for a read or a
write that differs from its neighbours' only in its parameters. A
``Coalescer`` lets each job await its own item while one flusher task runs a
batch function over every item that arrived. While a batch is in flight the
next one gathers; while the coalescer is busy, a batch also lingers a few
milliseconds (``max_wait``) for company, since under steady load jobs arrive
one by one, a few milliseconds apart. An item arriving at an idle coalescer
goes out at once. So under load one statement serves many jobs, and when
idle nothing waits. The outbox relay's fast path works the same way, without
the linger.

Not ``aiodataloader``: a DataLoader dispatches on the next event-loop tick, so
only calls made in the same tick share a batch, and arq starts jobs one Redis
round trip apart: its batches would hold one job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class Coalescer(Generic[T, R]):
    """``await coalescer(item)`` runs ``batch_fn`` over this and concurrent items; returns this item's result.

    ``max_wait`` (seconds) is the linger of a group commit: when a batch ran
    less than ``max_wait`` ago, the next one waits that long for company
    before it starts. An item arriving at an idle coalescer goes at once.

    ``observe``, if given, is called with each batch's size (a metrics hook).

    ``batch_fn`` gets the items in arrival order and returns one result per
    item, in the same order. If it raises for a batch of several, each item
    is run again alone, so one bad item fails only its own caller.
    Cancelling a caller does not cancel the batch it is part of: the others
    still need it.
    """

    def __init__(
        self,
        batch_fn: BatchFn[T, R],
        *,
        max_batch: int = 500,
        max_wait: float = 0.0,
        name: str = "",
        observe: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be at least 1 and max_wait not negative")
        self._batch_fn = batch_fn
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._last_batch_at = float("-inf")
        self.name = name or getattr(batch_fn, "__qualname__", "batch")
        self._observe = observe
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name=f"coalesce:{self.name}"
            )
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        if self.max_wait and loop.time() - self._last_batch_at < self.max_wait:
            # Busy (a batch ran moments ago): let more items gather, as a group commit does.
            await asyncio.sleep(self.max_wait)
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                live = [(item, future) for item, future in batch if not future.cancelled()]
                if live:
                    await self._run(live)
        except BaseException:
            # The flusher itself was cancelled (shutdown): its callers must not wait forever.
            waiting, self._waiting = self._waiting, []
            for _, future in waiting:
                future.cancel()
            raise

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self._last_batch_at = asyncio.get_running_loop().time()
        self.batches += 1
        self.items += len(batch)
        if self._observe is not None:
            self._observe(len(batch))
        try:
            results = await self._batch_fn([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name} returned {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            log.warning("%s failed for a batch of %d (%r); running each alone", self.name, len(batch), exc)
            for one in batch:
                await self._run([one])
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            # A done future's caller was cancelled (a job timeout); the batch ran for the others.
            if not future.done():
                future.set_result(result)

    async def drain(self) -> None:
        """Wait for the batch in flight and any gathered behind it."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher})


def _fail(future: asyncio.Future[R], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
