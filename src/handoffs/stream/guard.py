"""Who may keep a stream open, and how many: re-checked at every keepalive tick, capped per user.

A stream outlives the request that authenticated it, so what the JWT middleware checked
once (the token is not revoked, the user is active) is checked again for every open stream
at each keepalive tick, batched per replica: one ``MGET`` of the streams' token ids on the
deny-list (``security/revocation.py``) and one primary-key lookup of their users, whatever
the number of streams. A stream ends (``access_ended``) when its token was revoked or has
expired, or its user was deactivated or no longer has a role that may stream. Nothing of
this runs per event.

The cap. Each user's open streams are a sorted set in Redis, one member per stream, scored
with the moment its lease runs out (Redis time, so replicas' clocks do not matter). Opening
a stream drops the expired members and, if the user already has the maximum, answers with
the time until the oldest lease runs out instead of adding one. Every replica renews its
streams' leases at each tick; a stream that ends removes its member at once. A replica that
dies removes nothing, but stops renewing: its members age out within one lease (three
ticks, at least 5 s), and a Redis that lost its data gets the live streams back at the
next tick. A count (INCR/DECR) could do neither.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from litestar.security.jwt import Token
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import any_, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from handoffs.config import Settings
from handoffs.db.engine import UUID_ARRAY
from handoffs.db.models import User
from handoffs.enums import Role
from handoffs.security.revocation import revoked_among

log = logging.getLogger(__name__)

#: The least role that may read the live stream: the endpoint's guard and the tick's re-check.
STREAM_ROLE = Role.engineer
#: ``<prefix><user id>``: the sorted set of that user's open streams.
SLOTS_PREFIX = "handoffs:stream:slots:"
#: A lease lasts this many keepalive ticks (and at least ``MIN_LEASE_SECONDS``): a tick or two
#: late (a busy replica) does not lose a live stream's slot.
LEASE_TICKS = 3
MIN_LEASE_SECONDS = 5.0


class EndReason(StrEnum):
    """Why a stream was ended: the ``reason`` of its ``access_ended`` event."""

    signed_out = "signed_out"
    expired = "expired"
    deactivated = "deactivated"
    role_changed = "role_changed"


def slots_key(user_id: UUID | str) -> str:
    return f"{SLOTS_PREFIX}{user_id}"


@dataclass(frozen=True, slots=True)
class StreamOwner:
    """Whom one open stream serves, as the tick re-checks it: the user, the token, the slot."""

    user_id: UUID
    jti: str | None
    expires_at: float
    """The token's ``exp``, in unix seconds."""
    slot: str = field(default_factory=lambda: uuid.uuid4().hex)
    """This stream's member in its user's slot set: unique per stream."""

    @classmethod
    def of(cls, user_id: UUID, token: Token) -> StreamOwner:
        jti = token.jti if isinstance(token.jti, str) and token.jti else None
        return cls(user_id, jti, token.exp.timestamp())


# Redis time in milliseconds, shared by both scripts.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS[1] the user's slots; ARGV: the cap, the lease (ms), the new stream's member.
# -1: admitted. Otherwise the milliseconds until the oldest lease runs out.
_ADMIT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(0, tonumber(oldest[2]) - now)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return -1
"""
)
# KEYS: users' slot sets; ARGV: the lease (ms), then per key its member count and members.
# ZADD without XX: a member that aged out while its stream stayed open (Redis restarted) is
# counted again.
_RENEW = (
    _NOW
    + """
local until_ms = now + tonumber(ARGV[1])
local i = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    redis.call('ZADD', KEYS[k], until_ms, ARGV[i])
    i = i + 1
  end
  redis.call('PEXPIRE', KEYS[k], ARGV[1])
end
return #KEYS
"""
)

_USERS = select(User.id, User.is_active, User.role).where(User.id == any_(bindparam("ids", type_=UUID_ARRAY)))


class StreamGuard:
    """A replica's checks of its open streams, and the per-user cap (Redis, across replicas).

    ``redis`` is the replica's single auth connection (``Runtime.auth_redis``): the scripts
    and ``MGET`` run on it, so a burst of stream opens does not grow the shared pool.
    """

    def __init__(self, engine: AsyncEngine, redis: Redis, *, max_per_user: int, lease_seconds: float) -> None:
        self.engine = engine
        self.redis = redis
        self.max_per_user = max_per_user
        self.lease_ms = int(lease_seconds * 1000)
        self._admit = redis.register_script(_ADMIT)
        self._renew = redis.register_script(_RENEW)
        self._renewing: set[str] = set()
        self._released_while_renewing: list[StreamOwner] = []
        self._unreachable: set[str] = set()

    @classmethod
    def of(cls, engine: AsyncEngine, redis: Redis, settings: Settings) -> StreamGuard:
        lease = max(LEASE_TICKS * settings.sse_keepalive_seconds, MIN_LEASE_SECONDS)
        return cls(engine, redis, max_per_user=settings.sse_max_streams_per_user, lease_seconds=lease)

    @property
    def capped(self) -> bool:
        return self.max_per_user > 0

    # -- the cap ---------------------------------------------------------------------

    async def admit(self, owner: StreamOwner) -> int | None:
        """Take a slot for a new stream: None, or the seconds until one could free (cap reached)."""
        if not self.capped:
            return None
        try:
            wait_ms = int(
                await self._admit(
                    keys=[slots_key(owner.user_id)], args=[self.max_per_user, self.lease_ms, owner.slot]
                )
            )
        except RedisError as exc:
            # As the sign-in limits do: Redis away, not applied. The next renewal counts it.
            log.warning("stream cap unavailable (Redis: %s): a stream opened uncounted", exc)
            return None
        return None if wait_ms < 0 else max(1, math.ceil(wait_ms / 1000))

    async def release(self, owner: StreamOwner) -> None:
        """Free a stream's slot (its stream ended)."""
        if not self.capped:
            return
        if owner.slot in self._renewing:
            # The renewal under way may reach Redis after this removal and add it back.
            self._released_while_renewing.append(owner)
        try:
            await self.redis.zrem(slots_key(owner.user_id), owner.slot)
        except RedisError as exc:
            log.warning("could not free a stream's slot (Redis: %s); it ages out with its lease", exc)

    async def _renew_slots(self, owners: Sequence[StreamOwner]) -> None:
        by_user: dict[UUID, list[str]] = {}
        for owner in owners:
            by_user.setdefault(owner.user_id, []).append(owner.slot)
        keys = [slots_key(user_id) for user_id in by_user]
        args: list[str | int] = [self.lease_ms]
        for slots in by_user.values():
            args += [len(slots), *slots]
        self._renewing = {owner.slot for owner in owners}
        try:
            async with self._deadline():
                await self._renew(keys=keys, args=args)
            self._reachable("Redis")
        except (RedisError, TimeoutError) as exc:
            self._unreachable_now("Redis", exc)
        finally:
            self._renewing = set()
            late, self._released_while_renewing = self._released_while_renewing, []
        for owner in late:
            await self.release(owner)

    # -- the re-check --------------------------------------------------------------------

    async def review(self, owners: Sequence[StreamOwner]) -> dict[str, EndReason]:
        """Renew these streams' leases and say which must end, and why, by slot.

        One renewal script, one ``MGET`` and one query for all of them. What cannot be
        checked (Redis or PostgreSQL away, or too slow) ends nothing: the next tick tries again.
        """
        if not owners:
            return {}
        if self.capped:
            await self._renew_slots(owners)
        ended: dict[str, EndReason] = {}
        now = time.time()
        for owner in owners:
            if owner.expires_at <= now:
                ended[owner.slot] = EndReason.expired
        live = [owner for owner in owners if owner.slot not in ended]
        revoked = await self._revoked({owner.jti for owner in live if owner.jti})
        refused = await self._refused_users({owner.user_id for owner in live})
        for owner in live:
            if owner.jti in revoked:
                ended[owner.slot] = EndReason.signed_out
            elif (reason := refused.get(owner.user_id)) is not None:
                ended[owner.slot] = reason
        return ended

    async def _revoked(self, jtis: Collection[str]) -> set[str]:
        try:
            async with self._deadline():
                revoked = await revoked_among(self.redis, jtis)
        except (RedisError, TimeoutError) as exc:
            self._unreachable_now("Redis", exc)
            return set()
        self._reachable("Redis")
        return revoked

    async def _refused_users(self, ids: Collection[UUID]) -> dict[UUID, EndReason]:
        """The users among ``ids`` who may no longer stream: gone or inactive, or below the role."""
        if not ids:
            return {}
        try:
            async with self._deadline(), self.engine.connect() as conn:
                rows = {row.id: row for row in await conn.execute(_USERS, {"ids": list(ids)})}
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            self._unreachable_now("PostgreSQL", exc)
            return {}
        self._reachable("PostgreSQL")
        refused: dict[UUID, EndReason] = {}
        for user_id in ids:
            row = rows.get(user_id)
            if row is None or not row.is_active:
                refused[user_id] = EndReason.deactivated
            elif not Role(row.role).at_least(STREAM_ROLE):
                refused[user_id] = EndReason.role_changed
        return refused

    def _deadline(self) -> asyncio.Timeout:
        # Half a lease: a hung Redis or PostgreSQL delays the next review, never stops them.
        return asyncio.timeout(self.lease_ms / 2000)

    # Logs say what changed: once when a check cannot run, once when it can again.
    def _unreachable_now(self, what: str, exc: BaseException) -> None:
        if what not in self._unreachable:
            self._unreachable.add(what)
            why = str(exc) or type(exc).__name__
            log.warning("open streams' checks skipped (%s: %s); trying again at each tick", what, why)

    def _reachable(self, what: str) -> None:
        if what in self._unreachable:
            self._unreachable.discard(what)
            log.info("open streams are checked again (%s is back)", what)
