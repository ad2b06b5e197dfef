"""The Coalescer: concurrent awaits share one batch call; failures and cancellations stay with their caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

import pytest

from handoffs.jobs.batching import Coalescer


class Recorder:
    """A batch function that records its batches and doubles each item; ``bad`` items fail their batch.

    ``gated``: batches wait for ``gate`` to open, so a test holds one in flight for as long as it
    needs (no sleeps racing the machine); ``in_flight`` is set once the first batch has started.
    """

    def __init__(self, *, bad: int | None = None, pause: float = 0.0, gated: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.bad = bad
        self.pause = pause
        self.gate = asyncio.Event()
        self.in_flight = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.in_flight.set()
        await self.gate.wait()
        await asyncio.sleep(self.pause)
        if self.bad in items:
            raise ValueError(f"cannot take {self.bad}")
        return [item * 2 for item in items]


async def queued(*calls: Awaitable[int]) -> list[asyncio.Task[int]]:
    """Start the calls and let each reach the coalescer's queue (one turn of the loop)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(0)
    return tasks


async def test_calls_that_arrive_while_a_batch_is_in_flight_share_the_next_one() -> None:
    record = Recorder(gated=True)
    coalesce = Coalescer(record)
    first = asyncio.create_task(coalesce(1))
    await record.in_flight.wait()  # the first batch is in flight with [1]
    rest = await queued(*(coalesce(i) for i in range(2, 7)))
    record.gate.set()
    results = await asyncio.gather(first, *rest)
    assert results == [2, 4, 6, 8, 10, 12]
    assert record.batches == [[1], [2, 3, 4, 5, 6]]
    assert (coalesce.batches, coalesce.items) == (2, 6)


async def test_an_idle_coalescer_does_not_linger() -> None:
    record = Recorder()
    coalesce = Coalescer(record, max_wait=30.0)
    # A linger of 30 s would blow this timeout: an item arriving at an idle coalescer goes at once.
    assert await asyncio.wait_for(coalesce(21), timeout=5) == 42


async def test_a_busy_coalescer_lingers_so_items_arriving_one_by_one_share_a_batch() -> None:
    record = Recorder()
    coalesce = Coalescer(record, max_wait=0.5)
    assert await coalesce(0) == 0  # a batch just ran: the coalescer counts as busy
    tasks = []
    for i in range(1, 6):  # one by one, each in a later turn of the loop, as arq starts jobs
        tasks.extend(await queued(coalesce(i)))
    assert await asyncio.gather(*tasks) == [2, 4, 6, 8, 10]
    assert record.batches == [[0], [1, 2, 3, 4, 5]]


async def test_without_a_linger_items_arriving_one_by_one_go_one_by_one() -> None:
    record = Recorder()
    coalesce = Coalescer(record)
    for i in range(3):
        assert await coalesce(i) == i * 2
    assert record.batches == [[0], [1], [2]]


async def test_a_failing_batch_is_run_item_by_item_so_only_the_bad_caller_fails() -> None:
    record = Recorder(bad=3, gated=True)
    coalesce = Coalescer(record)
    blocker = asyncio.create_task(coalesce(0))
    await record.in_flight.wait()
    rest = await queued(*(coalesce(i) for i in range(1, 6)))
    record.gate.set()
    results = await asyncio.gather(blocker, *rest, return_exceptions=True)
    assert results[:3] == [0, 2, 4]
    assert isinstance(results[3], ValueError)
    assert "cannot take 3" in str(results[3])
    assert results[4:] == [8, 10]
    assert record.batches == [[0], [1, 2, 3, 4, 5], [1], [2], [3], [4], [5]]


async def test_a_batch_function_returning_the_wrong_count_fails_its_callers_readably() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return list(items)[1:]

    coalesce = Coalescer(short, name="short")
    with pytest.raises(RuntimeError, match="short returned 0 results for 1 items"):
        await coalesce(1)


async def test_a_cancelled_caller_leaves_the_batch_to_the_others() -> None:
    record = Recorder(gated=True)
    coalesce = Coalescer(record)
    first = asyncio.create_task(coalesce(1))
    await record.in_flight.wait()
    leaving, staying = await queued(coalesce(2), coalesce(3))
    leaving.cancel()  # as arq cancels a job at its timeout
    await asyncio.sleep(0)  # the cancellation lands before the batch in flight ends
    record.gate.set()
    assert await first == 2
    assert await staying == 6
    assert leaving.cancelled()
    assert record.batches == [[1], [3]]  # a caller cancelled before its batch started is left out


async def test_batches_are_capped_at_max_batch() -> None:
    record = Recorder(gated=True)
    coalesce = Coalescer(record, max_batch=2)
    first = asyncio.create_task(coalesce(0))
    await record.in_flight.wait()
    rest = await queued(*(coalesce(i) for i in range(1, 6)))
    record.gate.set()
    assert await asyncio.gather(first, *rest) == [0, 2, 4, 6, 8, 10]
    assert record.batches == [[0], [1, 2], [3, 4], [5]]


async def test_draining_waits_for_the_batch_in_flight_and_those_behind_it() -> None:
    record = Recorder(pause=0.02)
    coalesce = Coalescer(record)
    tasks = [asyncio.create_task(coalesce(i)) for i in range(3)]
    await asyncio.sleep(0)
    await coalesce.drain()
    assert all(task.done() for task in tasks)
    assert [task.result() for task in tasks] == [0, 2, 4]


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(Recorder(), max_batch=0)
    with pytest.raises(ValueError, match="max_wait"):
        Coalescer(Recorder(), max_wait=-1)
