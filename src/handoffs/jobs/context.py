"""What every job receives: clients created once per worker process in ``on_startup``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handoffs.ai import Assessor
from handoffs.config import Settings
from handoffs.events import EventBus
from handoffs.relay import OutboxRelay

CTX_KEY = "handoffs"


@dataclass
class JobContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus
    relay: OutboxRelay
    assessor: Assessor
    http: httpx.AsyncClient
    """For PSA vendors; tests swap its transport."""


def job_context(ctx: dict[str, Any]) -> JobContext:
    jc: JobContext = ctx[CTX_KEY]
    return jc
