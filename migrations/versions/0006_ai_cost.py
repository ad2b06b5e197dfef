"""What an assessment cost: cache writes and dollars per handoff

``ai_cache_write_tokens`` (prompt-cache writes, billed at 1.25 times the input price) joins the
input, output and cache-read counts; ``ai_cost_usd`` is the handoff's model cost
at the price table of the time (handoffs.pricing). Existing handoffs keep 0: their
cache writes were not recorded, so a cost computed now would be a guess.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "session_handoffs",
        sa.Column("ai_cache_write_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "session_handoffs",
        sa.Column("ai_cost_usd", sa.Numeric(12, 6), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("session_handoffs", "ai_cost_usd")
    op.drop_column("session_handoffs", "ai_cache_write_tokens")
