"""Signing out revokes the token: its id (``jti``) is denied in Redis until the token expires.

Every replica checks the deny-list when it authenticates a request (one Redis round trip,
alongside the user's row), so a signed-out bearer token or cookie is refused everywhere at
once; open live streams are checked at each keepalive tick (handoffs.stream.guard). Only
the token that signed out is revoked; the user's other sessions and API tokens stay valid.
Redis away: tokens are not refused for it (logged), as readiness reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime

from litestar.security.jwt import Token
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PREFIX = "handoffs:auth:revoked:"


async def revoke(redis: Redis, token: Token) -> bool:
    """Deny ``token`` until it expires; False when it has no id (minted before revocation existed)."""
    if not token.jti:
        return False
    seconds = int((token.exp - datetime.now(UTC)).total_seconds()) + 1
    if seconds > 0:
        await redis.set(f"{PREFIX}{token.jti}", 1, ex=seconds)
    return True


async def revoked_among(redis: Redis, jtis: Collection[str]) -> set[str]:
    """Which of these token ids are denied: one ``MGET`` for all (the live stream's tick checks
    every open stream's token at once). Raises ``RedisError``: the caller says what it skipped."""
    if not jtis:
        return set()
    ordered = list(jtis)
    values = await redis.mget([f"{PREFIX}{jti}" for jti in ordered])
    return {jti for jti, value in zip(ordered, values, strict=True) if value is not None}


async def is_revoked(redis: Redis, token: Token) -> bool:
    if not token.jti:
        return False
    try:
        return bool(await redis.exists(f"{PREFIX}{token.jti}"))
    except RedisError:
        log.warning("token deny-list unavailable (Redis): a token was not checked")
        return False
