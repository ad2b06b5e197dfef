"""Row-level security on every tenant table, and the non-owner role the app runs as

Defence in depth behind the ``account_id`` filters every query already has: a statement that
forgets one sees (and writes) the rows of the transaction's account only. Each table gets a
policy on ``app.account_id`` (or ``app.scope = 'system'``, the worker's, the relay's, the CLI's
and sign-in's cross-account statements), FORCEd so that the owner is held to it too. The
settings are made transaction-local by the app (handoffs.db.tenancy); unset, nothing is visible.

A superuser bypasses row-level security whatever FORCE says, and an owner without FORCE does,
so the app switches to ``handoffs_app`` (NOLOGIN, no BYPASSRLS, owner of nothing) at the start
of each transaction (``DB_APP_ROLE``). This migration creates it when missing, gives it DML on
the tables (now and, by default privileges, later ones), and grants it to the migrating user,
which lets that login ``SET ROLE`` to it. Neither needs a superuser: CREATEROLE is enough
(managed PostgreSQL's admin user has it; docs/deployment.md).

Roles are cluster-wide: databases migrated at the same time (the suite's, one per worker) race
to create it, hence the guard on both the check and the error.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 19:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "handoffs_app"

#: Every table with an ``account_id`` (session_messages, the timeline, comments and deliveries
#: carry theirs too, so no policy needs to look a parent row up).
TENANT_TABLES = (
    "teams",
    "users",
    "ai_sessions",
    "session_messages",
    "session_handoffs",
    "handoff_timeline",
    "handoff_comments",
    "notifications",
    "outbox",
    "email_deliveries",
    "escalation_policies",
    "chat_integrations",
    "chat_deliveries",
    "psa_sync_steps",
    "psa_connections",
)

#: Read once per statement (a sub-select is an InitPlan), not per row; '' or unset is no account.
ACCOUNT = "(SELECT nullif(current_setting('app.account_id', true), '')::uuid)"
SYSTEM = "(SELECT current_setting('app.scope', true)) = 'system'"


def upgrade() -> None:
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database's migration created it meanwhile
        END $$
    """)
    op.execute(f"""
        DO $$
        BEGIN
            GRANT {ROLE} TO CURRENT_USER;
        EXCEPTION WHEN unique_violation THEN
            NULL;  -- granted meanwhile, by another database's migration as the same user
        END $$
    """)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    # DML, never TRUNCATE (which row-level security does not filter) nor DDL.
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    # Tables later migrations create (as this same user) are granted without anyone remembering.
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE}"
    )
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {ROLE}")

    for name in TENANT_TABLES:
        _protect(name, f"account_id = {ACCOUNT}")
    _protect("accounts", f"id = {ACCOUNT}")


def _protect(name: str, own_rows: str) -> None:
    op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
    # FOR ALL with USING only: the same test checks the rows written (WITH CHECK), so a
    # transaction of one account cannot insert nor move a row into another.
    op.execute(f"CREATE POLICY tenant_isolation ON {name} USING ({own_rows} OR {SYSTEM})")


def downgrade() -> None:
    for name in (*TENANT_TABLES, "accounts"):
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {name}")
        op.execute(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
    # The role stays: it is the cluster's, and other databases' grants may still name it.
