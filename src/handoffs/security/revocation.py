"""Signing out revokes the token: its id (``jti``) is denied in Redis until the token expires.

Every replica checks the deny-list when it authenticates a request. The replica that signed a
token out refuses it at once; every other replica asks Redis about a token at most once per
``AUTH_USER_CACHE_SECONDS`` (:class:`RevocationCheck`), so a signed-out token is refused
everywhere within that, the same bound as a deactivation or role change (the user's row is
kept as long, handoffs.security.user_cache). The Redis round trip on every request was a sixth
of ``GET /api/v1/me``'s CPU and a third of its throughput (bench/README.md, "reads"). ``0`` asks on every request, so
sign-out is refused everywhere at once. Open live streams are checked at each keepalive tick
(handoffs.stream.guard). Only the token that signed out is revoked; the user's other sessions
and API tokens stay valid. Redis away: tokens are not refused for it (logged), as readiness
reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime

from litestar.security.jwt import Token
from redis.asyncio import Redis
from redis.exceptions import RedisError

from handoffs.security.kept import Kept

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


class RevocationCheck:
    """Whether a token was signed out: Redis's deny-list, asked at most once per ``seconds`` per
    token in this process; a token this process signed out (or saw denied) is refused without
    asking until it expires."""

    def __init__(self, redis: Redis, seconds: float, max_kept: int = 50_000) -> None:
        self.redis = redis
        self.seconds = seconds
        self._clean: Kept[str, bool] = Kept(max_kept)
        """Token ids that count as not signed out without asking, for ``seconds`` each."""
        self._denied: Kept[str, bool] = Kept(max_kept)
        """Token ids refused here without asking, until their token expires."""

    async def revoked(self, token: Token) -> bool:
        if not token.jti:
            return False
        jti = str(token.jti)
        if self._denied.get(jti):
            return True
        if self._clean.get(jti):
            return False
        try:
            denied = bool(await self.redis.exists(f"{PREFIX}{jti}"))
        except RedisError:
            log.warning("token deny-list unavailable (Redis): a token was not checked")
            return False
        if denied:
            self.deny(token)
        elif self.seconds > 0:
            self._clean.put(jti, True, self.seconds)
        return denied

    def deny(self, token: Token) -> None:
        """Refuse ``token`` in this process from now on (it signed out here, or Redis denies it)."""
        if not token.jti:
            return
        jti = str(token.jti)
        self._clean.pop(jti)
        self._denied.put(jti, True, (token.exp - datetime.now(UTC)).total_seconds())
