"""The transactional outbox: work that must follow a commit, written inside it.

Rows are added to the caller's transaction, so they exist exactly when the
change that caused them does. After the commit the writer hands their ids to
the relay (``handoffs.outbox.relay``), which enqueues arq jobs (job id = row id) and
publishes live events; a periodic sweep catches whatever a crash dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from handoffs.db.models import OutboxMessage

if TYPE_CHECKING:
    from handoffs.outbox.relay import OutboxRelay


class OutboxWriter:
    """Collects a transaction's outbox rows, writes them with its commit, then hands them to the relay."""

    def __init__(self, db: AsyncSession, relay: OutboxRelay | None = None) -> None:
        self.db = db
        self.relay = relay
        self._rows: list[dict[str, Any]] = []
        self._written: list[UUID] = []

    def add(self, account_id: UUID, topic: str, payload: dict[str, Any]) -> UUID:
        row_id = uuid7()
        self._rows.append({"id": row_id, "account_id": account_id, "topic": topic, "payload": payload})
        return row_id

    def dispatch_on_commit(self, ids: Iterable[UUID]) -> None:
        """Rows the caller wrote itself in this transaction (one fixed-shape statement): hand them
        on with the others once it commits."""
        self._written.extend(ids)

    async def commit(self) -> None:
        """Insert the rows (one bulk INSERT), commit the transaction, dispatch without waiting for the sweep.

        A failed commit forgets the rows with the transaction and re-raises.
        """
        rows, self._rows = self._rows, []
        written, self._written = self._written, []
        try:
            if rows:
                await self.db.execute(insert(OutboxMessage), rows)
            await self.db.commit()
        except Exception:
            await self.db.rollback()
            raise
        if self.relay is not None:
            self.relay.dispatch_soon([*written, *(row["id"] for row in rows)])
