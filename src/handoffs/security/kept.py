"""A per-process map whose entries lapse: what authentication keeps for a few seconds.

The user's row (handoffs.security.user_cache) and a token's sign-out answer
(handoffs.security.revocation) are kept this way. The truth is elsewhere (PostgreSQL, Redis),
so the map may forget at any time: when it is full, lapsed entries go, and if it is still
full (many new keys within seconds), everything does.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    __slots__ = ("_items", "max_items")

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        """The value kept for ``key``, or None when none is or it has lapsed."""
        kept = self._items.get(key)
        if kept is None:
            return None
        until, value = kept
        if time.monotonic() >= until:
            del self._items[key]
            return None
        return value

    def put(self, key: K, value: V, seconds: float) -> None:
        """Keep ``value`` for ``seconds`` from now."""
        now = time.monotonic()
        if len(self._items) >= self.max_items:
            self._items = {k: kept for k, kept in self._items.items() if kept[0] > now}
            if len(self._items) >= self.max_items:
                self._items.clear()
        self._items[key] = (now + seconds, value)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)
