"""The signed-in user's row, kept for a few seconds per process, so a request need not read it.

Authenticating a request read the user's row on every request: a pooled connection, ``BEGIN``,
the ``SELECT``, ``ROLLBACK``, and an ORM object; for ``GET /api/v1/me`` that was nearly all of
its cost (bench/README.md, "reads"). Here each process keeps the row's values of an *active*
user for ``AUTH_USER_CACHE_SECONDS`` (default 5 s) after it read them. So a user deactivated
or given another role in the database is refused, or served in the new role, within that
time on every replica, as is a token signed out on another replica (the deny-list is asked
as often, handoffs.security.revocation). ``0`` reads the row every time.

Each request gets its own ``User`` object built from the kept values (transient: in no
session), so no request sees another's changes to it, and none can flush it by accident.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from sqlalchemy import inspect as sa_inspect

from handoffs.db.models import User

#: What a request's ``User`` carries: every mapped column (advanced-alchemy's ``_sentinel``
#: column is the table's, not a mapped attribute).
_COLUMNS = tuple(attr.key for attr in sa_inspect(User).column_attrs if not attr.key.startswith("_"))


class UserCache:
    def __init__(self, seconds: float, max_users: int = 50_000) -> None:
        self.seconds = seconds
        self.max_users = max_users
        self._rows: dict[UUID, tuple[float, dict[str, Any]]] = {}

    def get(self, user_id: UUID) -> User | None:
        """A fresh ``User`` of the kept row, or None when none is kept or it is too old."""
        kept = self._rows.get(user_id)
        if kept is None:
            return None
        until, values = kept
        if time.monotonic() >= until:
            del self._rows[user_id]
            return None
        return User(**values)

    def keep(self, user: User) -> None:
        """Keep an active user's row (read just now) for ``seconds``."""
        if self.seconds <= 0 or not user.is_active:
            return
        if len(self._rows) >= self.max_users:
            self._drop_expired()
            if len(self._rows) >= self.max_users:  # many users within seconds: start over
                self._rows.clear()
        values = {key: getattr(user, key) for key in _COLUMNS}
        self._rows[user.id] = (time.monotonic() + self.seconds, values)

    def forget(self, user_id: UUID) -> None:
        self._rows.pop(user_id, None)

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for user_id in [u for u, (until, _) in self._rows.items() if until <= now]:
            del self._rows[user_id]
