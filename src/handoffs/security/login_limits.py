"""Sign-in rate limits: failed attempts counted per email and per client address, across replicas.

Counters live in Redis (one fixed window each, ``LOGIN_WINDOW_SECONDS``): every failed
sign-in adds one to its email's and its address's counter. While either is at its limit
the sign-in answers 429 with ``Retry-After`` *before* the password is checked, so the
right password does not get through either. A success clears its email's counter (a
person who mistyped a few times is not punished for later typos), not the address's.
Emails are hashed in the keys. Redis away: sign-in is not refused for it (logged), since
a replica's readiness already reports Redis down.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from handoffs.config import Settings

log = logging.getLogger(__name__)

PREFIX = "handoffs:login:failures:"


def _keys(address: str, email: str) -> tuple[str, str]:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"{PREFIX}email:{digest}", f"{PREFIX}addr:{address}"


@dataclass(frozen=True, slots=True)
class LoginLimiter:
    redis: Redis
    per_email: int
    per_address: int
    window_seconds: int

    @classmethod
    def of(cls, redis: Redis, settings: Settings) -> LoginLimiter:
        return cls(
            redis,
            settings.login_max_failures_per_email,
            settings.login_max_failures_per_address,
            settings.login_window_seconds,
        )

    async def retry_after(self, address: str, email: str) -> int | None:
        """Seconds until this sign-in may be tried again, or None when it may be tried now."""
        email_key, address_key = _keys(address, email)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in (email_key, address_key):
                    pipe.get(key)
                    pipe.ttl(key)
                by_email, email_ttl, by_address, address_ttl = await pipe.execute()
        except RedisError:
            log.warning("sign-in limits unavailable (Redis): not applied to this attempt")
            return None
        waits = []
        if by_email is not None and int(by_email) >= self.per_email:
            waits.append(int(email_ttl))
        if by_address is not None and int(by_address) >= self.per_address:
            waits.append(int(address_ttl))
        return max(1, *waits) if waits else None

    async def failed(self, address: str, email: str) -> None:
        """Count a failed sign-in against its email and its address (a window starts at the first)."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in _keys(address, email):
                    pipe.set(key, 0, ex=self.window_seconds, nx=True)
                    pipe.incr(key)
                await pipe.execute()
        except RedisError:
            log.warning("sign-in limits unavailable (Redis): a failed attempt was not counted")

    async def succeeded(self, email: str) -> None:
        try:
            await self.redis.delete(_keys("", email)[0])
        except RedisError:
            log.warning("sign-in limits unavailable (Redis): could not clear an email's failures")
