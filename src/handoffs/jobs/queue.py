"""arq connection settings shared by the API (enqueue) and the worker (consume)."""

from __future__ import annotations

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from handoffs.config import Settings


def redis_settings(settings: Settings) -> RedisSettings:
    rs = RedisSettings.from_dsn(settings.required_redis_url)
    # Ride out a Redis restart instead of failing at start-up.
    rs.conn_retries = 10
    rs.conn_retry_delay = 1
    return rs


async def create_arq_pool(settings: Settings) -> ArqRedis:
    return await create_pool(redis_settings(settings))
