"""What every job receives: clients created once per worker process in ``on_startup``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handoffs import metrics
from handoffs.config import Settings
from handoffs.events import EventBus
from handoffs.integrations.ai import Assessor
from handoffs.jobs.batching import Coalescer
from handoffs.outbox.relay import OutboxRelay
from handoffs.pricing import ModelPrice
from handoffs.runtime import Runtime

CTX_KEY = "handoffs"

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class JobContext:
    """The worker's runtime (handoffs.runtime) and what jobs add to it; its parts are named
    here too, as the jobs use them."""

    settings: Settings
    runtime: Runtime
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus
    relay: OutboxRelay
    assessor: Assessor
    http: httpx.AsyncClient
    """For PSA vendors and chat webhooks, checked by the outbound policy; tests may swap it."""
    _coalescers: dict[Any, Coalescer[Any, Any]] = field(default_factory=dict, repr=False)

    @cached_property
    def prices(self) -> dict[str, ModelPrice]:
        """The model price table (handoffs.pricing), read once per worker."""
        return self.settings.price_table()

    def coalesced(
        self, batch_fn: Callable[[JobContext, Sequence[T]], Awaitable[Sequence[R]]]
    ) -> Coalescer[T, R]:
        """This process's one ``Coalescer`` for ``batch_fn``: concurrent jobs share its calls."""
        coalescer = self._coalescers.get(batch_fn)
        if coalescer is None:
            name = f"{batch_fn.__module__.rsplit('.', 1)[-1]}.{batch_fn.__qualname__.lstrip('_')}"
            coalescer = self._coalescers[batch_fn] = Coalescer(
                partial(batch_fn, self),
                max_wait=self.settings.worker_batch_wait_ms / 1000,
                name=name,
                observe=metrics.BATCH_ITEMS.labels(name).observe,
            )
        return coalescer

    async def drain(self) -> None:
        """Let batched reads and writes in flight finish (on shutdown)."""
        for coalescer in list(self._coalescers.values()):
            await coalescer.drain()


def job_context(ctx: dict[str, Any]) -> JobContext:
    jc: JobContext = ctx[CTX_KEY]
    return jc
