"""The transactional outbox: work that must follow a commit, written inside it.

Rows are added to the caller's transaction, so they exist exactly when the
change that caused them does. After the commit the writer hands their ids to
the relay (``handoffs.relay``), which enqueues arq jobs (job id = row id) and
publishes live events; a periodic sweep catches whatever a crash dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.models import OutboxMessage

if TYPE_CHECKING:
    from handoffs.relay import OutboxRelay


class Topic:
    """Outbox topics; job topics are arq function names."""

    enrich_escalation = "enrich_escalation"
    send_escalation_emails = "send_escalation_emails"
    push_to_psa = "push_to_psa"
    event = "event"


class OutboxWriter:
    """Collects a transaction's outbox rows and hands them to the relay once it commits."""

    def __init__(self, db: AsyncSession, relay: OutboxRelay | None = None) -> None:
        self.db = db
        self.relay = relay
        self._rows: list[OutboxMessage] = []

    def add(self, account_id: UUID, topic: str, payload: dict[str, Any]) -> OutboxMessage:
        row = OutboxMessage(account_id=account_id, topic=topic, payload=payload)
        self.db.add(row)
        self._rows.append(row)
        return row

    def discard(self) -> None:
        """Forget the rows of a rolled-back transaction."""
        self._rows.clear()

    def committed(self) -> None:
        """Call right after a successful commit: dispatch without waiting for the sweep."""
        rows, self._rows = self._rows, []
        if self.relay is not None:
            self.relay.dispatch_soon(row.id for row in rows)
