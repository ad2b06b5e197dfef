"""Secrets at rest: PSA credentials and chat webhook URLs encrypted

``psa_connections.credentials`` (jsonb) and ``chat_integrations.webhook_url``
(varchar 2000) become text holding a Fernet token each (handoffs.db.encryption),
and the rows already there are encrypted in place, in this transaction. The key
is the application's: the keys the running command installed from its settings
(``handoffs migrate``), else ``Settings.from_env()``, so DATA_ENCRYPTION_KEY (or,
unset, the key derived from SECRET_KEY) must be what the API and the workers will
run with. Downgrade decrypts them back with any of those keys.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:30:00
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy.dialects import postgresql

from handoffs.config import Settings
from handoffs.db.encryption import installed_keys, keyring

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table -> its secret column
SECRETS = {"psa_connections": "credentials", "chat_integrations": "webhook_url"}


def _keys() -> MultiFernet:
    return keyring(installed_keys() or Settings.from_env().data_encryption_keys())


def _rewrite(change: Callable[[MultiFernet, bytes], bytes]) -> None:
    """Every row's secret through ``change``; the keys are read only when there are rows."""
    conn = op.get_bind()
    fernet: MultiFernet | None = None
    for name, secret in SECRETS.items():
        rows = conn.execute(sa.text(f"SELECT id, {secret} FROM {name}")).all()  # noqa: S608 - fixed names
        for row_id, value in rows:
            fernet = fernet or _keys()
            try:
                changed = change(fernet, value.encode()).decode()
            except InvalidToken:
                raise RuntimeError(
                    f"{name}.{secret} of row {row_id} cannot be read with the configured DATA_ENCRYPTION_KEY"
                ) from None
            conn.execute(
                sa.text(f"UPDATE {name} SET {secret} = :value WHERE id = :id"),  # noqa: S608
                {"value": changed, "id": row_id},
            )


def upgrade() -> None:
    op.alter_column(
        "psa_connections",
        "credentials",
        type_=sa.Text(),
        existing_type=postgresql.JSONB(astext_type=sa.Text()),
        existing_nullable=False,
        postgresql_using="credentials::text",
    )
    op.alter_column(
        "chat_integrations",
        "webhook_url",
        type_=sa.Text(),
        existing_type=sa.String(length=2000),
        existing_nullable=False,
    )
    _rewrite(lambda fernet, plain: fernet.encrypt(plain))


def downgrade() -> None:
    _rewrite(lambda fernet, token: fernet.decrypt(token))
    op.alter_column(
        "chat_integrations",
        "webhook_url",
        type_=sa.String(length=2000),
        existing_type=sa.Text(),
        existing_nullable=False,
    )
    op.alter_column(
        "psa_connections",
        "credentials",
        type_=postgresql.JSONB(astext_type=sa.Text()),
        existing_type=sa.Text(),
        existing_nullable=False,
        postgresql_using="credentials::jsonb",
    )
