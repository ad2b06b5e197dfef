"""The outbox rows not done yet, indexed

The sweep looks for ``dispatched`` rows whose job vanished, and ``GET /metrics``
counts the backlog by status; both read only rows that are not ``done``, which
are few, while done rows pile up. A partial index on ``(status, dispatched_at)
WHERE status <> 'done'`` serves both without reading the done ones.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_open",
        "outbox",
        ["status", "dispatched_at"],
        unique=False,
        postgresql_where=sa.text("status <> 'done'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_open", table_name="outbox", postgresql_where=sa.text("status <> 'done'"))
