"""Row-level security: whose rows a transaction may see (migration 0009, docs/security.md).

Every tenant table has a FORCEd policy that lets a statement see and write the rows of
``app.account_id`` only, or every row when ``app.scope`` is ``system``. Both settings, and the
switch to the non-owner role ``DB_APP_ROLE``, are made transaction-local by one statement at the
start of each transaction (``begin`` below): nothing outlives the transaction, so behind PgBouncer
in transaction pooling mode the next transaction, on whatever server connection, starts clean.

Whose rows, in order:

- the engine's or connection's ``handoffs_scope`` execution option: the worker's, the CLI's and
  the outbox relay's engines are :data:`SYSTEM` (their batches span accounts), see
  :func:`system_engine`;
- else the current task's :func:`use_scope`: the API sets the signed-in user's account where it
  authenticates the request (handoffs.security.auth);
- else none: a transaction that nobody scoped reads nothing of any tenant table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final, Literal
from uuid import UUID

from sqlalchemy import Connection, String, cast, event, func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

SYSTEM: Final = "system"
"""Every account's rows: the worker, the relay, the CLI, sign-in's lookup by email."""

Scope = UUID | Literal["system"]

#: The execution option an engine (or connection) names its fixed scope by.
SCOPE_OPTION: Final = "handoffs_scope"

#: The current task's scope. A contextvar, so it needs no plumbing through services; each ASGI
#: request runs in its own task (a copy of the server's context), so one request's value never
#: reaches another's, and a task a request starts inherits it, which can only narrow what it sees.
_SCOPE: ContextVar[Scope | None] = ContextVar("handoffs_db_scope", default=None)


def use_scope(scope: Scope | None) -> None:
    """Transactions the current task begins from now on see ``scope``'s rows (None: none)."""
    _SCOPE.set(scope)


@contextmanager
def scoped(scope: Scope | None) -> Iterator[None]:
    """Transactions begun inside the block see ``scope``'s rows. A transaction begun inside keeps
    its scope until it ends, even after the block: end it inside when that matters."""
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def system_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (same pool) with every transaction in the system scope."""
    return engine.execution_options(**{SCOPE_OPTION: SYSTEM})


def settings_for(scope: Scope | None) -> tuple[str, str]:
    """``(app.account_id, app.scope)`` for ``scope``."""
    if scope is None:
        return "", ""
    if scope == SYSTEM:
        return "", SYSTEM
    return str(UUID(str(scope))), ""  # a UUID, whatever it came as: never text of the caller's


def enter_account(account_id: ColumnElement[Any] | InstrumentedAttribute[UUID]) -> ColumnElement[str]:
    """A column to select next to a row that names an account: from that row on, the rest of the
    transaction sees that account's rows only (``app.scope`` cleared). The API's authentication
    reads its user with it, folding the switch from the lookup's system scope to the user's
    account into the lookup itself rather than one more round trip. The policies read both
    settings once per statement (a sub-select), before any row is projected, so the lookup
    statement itself still runs in the scope it began in."""
    return func.concat(
        func.set_config("app.account_id", cast(account_id, String), True),
        func.set_config("app.scope", "", True),
    )


class _EnterScope:
    """The engine's ``begin`` listener: the role and scope of the transaction, in one statement.

    It runs inside Connection.begin (which suppresses autobegin meanwhile), so the statement is
    the transaction's first: asyncpg sends BEGIN, then this, then the caller's own. One round
    trip per transaction (a ``set_config`` each, folded into one SELECT).
    """

    __slots__ = ("__weakref__", "role", "sql")  # SQLAlchemy keeps listeners by weak reference

    def __init__(self, role: str) -> None:
        # set_config('role', …, true) is SET LOCAL ROLE with a bound value: allowed because the
        # login role is a member of ``role`` (the migration grants it), undone at the end.
        # Driver SQL ($n: asyncpg's own placeholders), not a text() construct: no statement
        # compilation or cache key per transaction (bench/db_path.py: ~50-150 µs less each).
        self.role = role
        role_part = "set_config('role', $3, true), " if role else ""
        self.sql = (
            f"SELECT {role_part}set_config('app.account_id', $1, true), set_config('app.scope', $2, true)"
        )

    def __call__(self, conn: Connection) -> None:
        scope = conn.get_execution_options().get(SCOPE_OPTION, _SCOPE.get())
        account, kind = settings_for(scope)
        values = (account, kind, self.role) if self.role else (account, kind)
        conn.exec_driver_sql(self.sql, values).close()


def install(engine: AsyncEngine, role: str) -> None:
    """Scope every transaction of ``engine``; ``role`` empty: no role switch (the login role is
    already the non-owner one)."""
    event.listen(engine.sync_engine, "begin", _EnterScope(role))
