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

from typing import Any
from uuid import UUID

from sqlalchemy import inspect as sa_inspect

from handoffs.db.models import User
from handoffs.security.kept import Kept

#: What a request's ``User`` carries: every mapped column (advanced-alchemy's ``_sentinel``
#: column is the table's, not a mapped attribute).
_COLUMNS = tuple(attr.key for attr in sa_inspect(User).column_attrs if not attr.key.startswith("_"))


class UserCache:
    def __init__(self, seconds: float, max_users: int = 50_000) -> None:
        self.seconds = seconds
        self._rows: Kept[UUID, dict[str, Any]] = Kept(max_users)

    def get(self, user_id: UUID) -> User | None:
        """A fresh ``User`` of the kept row, or None when none is kept or it is too old."""
        values = self._rows.get(user_id)
        return None if values is None else User(**values)

    def keep(self, user: User) -> None:
        """Keep an active user's row (read just now) for ``seconds``."""
        if self.seconds <= 0 or not user.is_active:
            return
        self._rows.put(user.id, {key: getattr(user, key) for key in _COLUMNS}, self.seconds)

    def forget(self, user_id: UUID) -> None:
        self._rows.pop(user_id)
