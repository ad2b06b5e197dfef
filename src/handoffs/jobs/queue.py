"""The arq Redis client shared by the API (enqueue) and the worker (consume)."""

from __future__ import annotations

from arq.connections import ArqRedis
from arq.constants import default_queue_name, health_check_key_suffix

from handoffs.config import Settings
from handoffs.redis_clients import redis_client


def arq_redis(settings: Settings) -> ArqRedis:
    """arq's client, made like every other (handoffs.redis_clients): through Sentinel when it is
    configured, retrying a lost connection. Not connected yet: the first command connects."""
    return redis_client(settings, ArqRedis)


async def create_arq_pool(settings: Settings) -> ArqRedis:
    """:func:`arq_redis`, connected: a Redis (re)starting now is waited for, REDIS_RETRY_SECONDS."""
    redis = arq_redis(settings)
    try:
        await redis.ping()
    except BaseException:
        await redis.aclose()
        raise
    return redis


async def worker_healthy(settings: Settings) -> bool:
    """Whether a worker reported in recently (arq's health-check key): ``handoffs worker --check``."""
    redis = arq_redis(settings)
    try:
        return bool(await redis.get(default_queue_name + health_check_key_suffix))
    finally:
        await redis.aclose()
