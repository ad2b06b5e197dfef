"""The `handoffs` command: dev, serve, worker, migrate, seed, create-user, rotate-secrets, data-key."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import click
import uvloop

from handoffs.config import ConfigError, Settings, get_settings
from handoffs.embedded import EmbeddedServerError, services
from handoffs.enums import JobTopic
from handoffs.logs import configure_logging, uvicorn_log_config

log = logging.getLogger("handoffs")


def _settings(data_dir: str | None) -> Settings:
    settings = get_settings()
    return replace(settings, data_dir=Path(data_dir)) if data_dir else settings


@contextlib.contextmanager
def _running_services(settings: Settings) -> Iterator[Settings]:
    """``settings`` with database and Redis URLs, embedded servers started for the unset ones,
    and the data encryption keys installed (migrations and commands read secrets with them)."""
    from handoffs.db.encryption import use_keys

    try:
        use_keys(settings.data_encryption_keys())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    with contextlib.ExitStack() as stack:
        try:
            # Sentinels named: no embedded Redis ("" is REDIS_URL unset, for the children too).
            redis_url = settings.redis_url or ("" if settings.redis_sentinels else None)
            svc = stack.enter_context(services(settings.data_dir, settings.database_url, redis_url))
        except EmbeddedServerError as exc:
            raise click.ClickException(str(exc)) from exc
        # Child processes (uvicorn workers, the worker) read the environment.
        os.environ["DATABASE_URL"] = svc.database_url
        os.environ["REDIS_URL"] = svc.redis_url
        yield settings.with_services(svc.database_url, svc.redis_url)


async def _seed(settings: Settings) -> int:
    from handoffs.db.engine import create_engine, create_sessionmaker
    from handoffs.db.tenancy import SYSTEM  # the CLI's statements span accounts
    from handoffs.domain.accounts.service import seed_demo

    engine = create_engine(settings, scope=SYSTEM)
    try:
        async with create_sessionmaker(engine)() as db:
            return await seed_demo(db)
    finally:
        await engine.dispose()


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where embedded PostgreSQL and Redis keep their files (default .data, or HANDOFFS_DATA_DIR).",
)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """handoffs: hand AI troubleshooting sessions between helpdesk engineers."""
    try:
        log_format = get_settings().log_format
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(log_format, verbose=verbose)


@main.command()
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def dev(data_dir: str | None, host: str, port: int) -> None:
    """Run everything: embedded PostgreSQL and Redis, migrations, demo data, the API and a worker."""
    from handoffs.db.engine import migrate
    from handoffs.domain.accounts.service import DEMO_PASSWORD, DEMO_USERS

    with _running_services(_settings(data_dir)) as settings:
        migrate(settings)
        added = asyncio.run(_seed(settings))
        url = f"http://{host}:{port}"
        settings = replace(settings, public_url=url)
        click.echo(f"\n  handoffs is running at {url}   (API docs: {url}/schema)")
        click.echo(f"  demo data: {added} users added" if added else "  demo data: already seeded")
        click.echo(f"  sign in with any of these, password '{DEMO_PASSWORD}':")
        for demo in DEMO_USERS:
            click.echo(f"    {demo.email:<20} {demo.role.value:<9} {demo.account}")
        if not settings.anthropic_api_key:
            click.echo("  AI assessments: offline assessor (set ANTHROPIC_API_KEY for real ones)")
        click.echo("  Ctrl-C stops the API, the worker and the embedded servers.\n")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve_with_worker(settings, host, port))


async def _serve_with_worker(settings: Settings, host: str, port: int) -> None:
    """The API and an arq worker in one event loop: what `make dev` runs."""
    import uvicorn
    from arq import Worker

    from handoffs.app import create_app
    from handoffs.integrations.ai import OfflineAssessor
    from handoffs.jobs.worker import worker_options

    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="info",
        log_config=uvicorn_log_config(settings.log_format),
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )  # fmt: skip
    server = uvicorn.Server(config)
    # Without a key the banner already said "offline assessor"; the worker need not warn again.
    extra_ctx = {} if settings.anthropic_api_key else {"assessor": OfflineAssessor()}
    worker = Worker(**worker_options(settings, extra_ctx=extra_ctx), handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        await server.serve()  # returns on Ctrl-C
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()  # cancels jobs in flight; arq re-runs them on the next start
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Run the API only, against DATABASE_URL and REDIS_URL."""
    import uvicorn

    settings = get_settings()
    if not settings.database_url or not settings.redis_configured:
        raise click.UsageError(
            "serve needs DATABASE_URL and REDIS_URL (or REDIS_SENTINELS); `handoffs dev` starts embedded ones"
        )
    if not settings.secret_key:
        click.echo("warning: SECRET_KEY is not set; using the key kept in the data folder", err=True)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each uvicorn process counts into files here, and any of them answers /metrics for all.
        # Emptied first: a previous run's files would count dead processes.
        folder = settings.data_dir / "prometheus"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    uvicorn.run(
        "handoffs.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info",
        log_config=uvicorn_log_config(settings.log_format),
        # Requests in flight get this long to finish after SIGTERM; live streams end at once
        # (handoffs.stream.process), so they never hold a stop up to it.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )  # fmt: skip


@main.command()
@click.option("--check", is_flag=True, help="Exit 0 if a worker reported healthy recently (container probe).")
def worker(check: bool) -> None:
    """Run a background worker (AI enrichment, email, PSA push, outbox sweep) against REDIS_URL."""
    from handoffs.jobs.queue import worker_healthy
    from handoffs.jobs.worker import run_worker, worker_options

    settings = get_settings()
    if not settings.database_url or not settings.redis_configured:
        raise click.UsageError(
            "worker needs DATABASE_URL and REDIS_URL (or REDIS_SENTINELS); `handoffs dev` runs one beside the API"
        )
    if check:
        raise SystemExit(0 if asyncio.run(worker_healthy(settings)) else 1)
    run_worker(worker_options(settings))


@main.command()
@data_dir_option
@click.option("--limit", default=20, show_default=True, type=int, help="Rows to list (and to retry).")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Run failed jobs again from their first attempt (after an outage or a credentials fix).",
)
@click.option(
    "--topic",
    type=click.Choice([topic.value for topic in JobTopic]),
    help="With --retry-failed: only these jobs.",
)
def outbox(data_dir: str | None, limit: int, retry_failed: bool, topic: str | None) -> None:
    """Show outbox rows by status, and the latest that are pending or failed; or retry the failed."""
    from sqlalchemy import func, select

    from handoffs.db.engine import create_engine, create_sessionmaker
    from handoffs.db.models import OutboxMessage
    from handoffs.db.tenancy import SYSTEM  # the CLI's statements span accounts
    from handoffs.enums import OutboxStatus

    if topic and not retry_failed:
        raise click.UsageError("--topic goes with --retry-failed")

    async def retry(settings: Settings) -> None:
        from handoffs.outbox.admin import retry_failed as retry_failed_jobs
        from handoffs.runtime import open_runtime

        runtime = await open_runtime(settings, role="cli")
        try:
            retried = await retry_failed_jobs(
                runtime.sessionmaker, runtime.redis, runtime.relay, topic=topic, limit=limit
            )
        finally:
            await runtime.close()
        for row_id, row_topic in retried:
            click.echo(f"queued again: {row_topic:<24} {row_id}")
        click.echo(f"{len(retried)} failed jobs queued again" if retried else "no failed jobs to retry")

    async def show(settings: Settings) -> None:
        engine = create_engine(settings, scope=SYSTEM)
        try:
            async with create_sessionmaker(engine)() as db:
                counts = await db.execute(
                    select(OutboxMessage.status, OutboxMessage.topic, func.count()).group_by(
                        OutboxMessage.status, OutboxMessage.topic
                    )
                )
                click.echo("status      topic                      rows")
                for status, row_topic, count in sorted(counts.all(), key=lambda r: (r[0].value, r[1])):
                    click.echo(f"{status.value:<11} {row_topic:<26} {count}")
                rows = await db.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.status.in_([OutboxStatus.pending, OutboxStatus.failed]))
                    .order_by(OutboxMessage.created_at.desc())
                    .limit(limit)
                )
                for row in rows:
                    click.echo(
                        f"{row.created_at:%Y-%m-%d %H:%M:%S} {row.status.value:<8} {row.topic:<24} "
                        f"{row.id} attempts={row.attempts} {row.last_error or ''}"
                    )
        finally:
            await engine.dispose()

    with _running_services(_settings(data_dir)) as settings:
        asyncio.run(retry(settings) if retry_failed else show(settings))


@main.command()
@data_dir_option
@click.option("--revision", default="head", show_default=True)
def migrate(data_dir: str | None, revision: str) -> None:
    """Apply database migrations."""
    from handoffs.db.engine import migrate as run_migrations

    with _running_services(_settings(data_dir)) as settings:
        run_migrations(settings, revision)
        click.echo(f"migrated to {revision}")


@main.command()
@data_dir_option
def seed(data_dir: str | None) -> None:
    """Create the demo accounts and users (idempotent)."""
    with _running_services(_settings(data_dir)) as settings:
        added = asyncio.run(_seed(settings))
        click.echo(f"seeded: {added} users added")


@main.command("create-user")
@data_dir_option
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--account", "account_name", required=True, help="Account (tenant) name; created when missing.")
@click.option(
    "--role",
    type=click.Choice(["viewer", "engineer", "admin", "owner"]),
    default="engineer",
    show_default=True,
)
@click.option("--team", default="Helpdesk", show_default=True)
@click.password_option()
def create_user(
    data_dir: str | None, email: str, name: str, account_name: str, role: str, team: str, password: str
) -> None:
    """Create a user (and their account and team when missing)."""
    from handoffs.db.engine import create_engine, create_sessionmaker
    from handoffs.db.tenancy import SYSTEM  # the CLI's statements span accounts
    from handoffs.domain.accounts.service import UserService
    from handoffs.enums import Role
    from handoffs.errors import DomainError

    async def run(settings: Settings) -> str:
        engine = create_engine(settings, scope=SYSTEM)
        try:
            async with create_sessionmaker(engine)() as db:
                service = UserService(db)
                account, team_row = await service.ensure_account(account_name, team)
                user = await service.create_user(
                    account=account, team=team_row, email=email, name=name, role=Role(role), password=password
                )
                await db.commit()
                return str(user.id)
        finally:
            await engine.dispose()

    with _running_services(_settings(data_dir)) as settings:
        try:
            user_id = asyncio.run(run(settings))
        except DomainError as exc:
            raise click.ClickException(exc.detail) from exc
        click.echo(f"created user {email} ({role}) with id {user_id}")


@main.command("rotate-secrets")
@data_dir_option
@click.option(
    "--batch-size", default=100, show_default=True, type=click.IntRange(1), help="Rows per transaction."
)
@click.option(
    "--clear-unreadable",
    is_flag=True,
    help="Reset secrets no key reads (a lost key) to empty, for their admins to set again.",
)
def rotate_secrets(data_dir: str | None, batch_size: int, clear_unreadable: bool) -> None:
    """Re-encrypt every PSA credential and chat webhook URL with the first DATA_ENCRYPTION_KEY.

    Idempotent: rows already under the first key are left alone. Run it once every process has
    the new key first in its list; then the old keys can be dropped (docs/deployment.md).
    """
    from handoffs.db.encryption import installed_keys, rotate
    from handoffs.db.engine import create_engine
    from handoffs.db.tenancy import SYSTEM  # the CLI's statements span accounts

    async def run(settings: Settings) -> None:
        engine = create_engine(settings, scope=SYSTEM)
        try:
            done = await rotate(
                engine, installed_keys(), batch_size=batch_size, clear_unreadable=clear_unreadable
            )
        finally:
            await engine.dispose()
        click.echo(f"rewrote {done.rewritten} rows with the first key ({done.current} were already under it)")
        if done.cleared:
            click.echo(f"cleared {done.cleared} rows no key could read: their admins have to set them again")
        left = len(done.unreadable) - done.cleared
        if left:
            for name, account_id in done.unreadable:
                click.echo(f"unreadable: {name} of account {account_id}", err=True)
            raise click.ClickException(
                f"{left} rows cannot be read with any configured key: add the key they were written "
                "with, or run again with --clear-unreadable"
            )

    with _running_services(_settings(data_dir)) as settings:
        asyncio.run(run(settings))


@main.command("data-key")
@data_dir_option
@click.option(
    "--derived",
    is_flag=True,
    help="Print the key derived from SECRET_KEY (what an installation without DATA_ENCRYPTION_KEY uses).",
)
def data_key(data_dir: str | None, derived: bool) -> None:
    """Print a new DATA_ENCRYPTION_KEY (a Fernet key), or with --derived the one in use without it."""
    from cryptography.fernet import Fernet

    if derived:
        settings = _settings(data_dir)
        click.echo(settings.derived_data_key(settings.resolved_secret_key()))
    else:
        click.echo(Fernet.generate_key().decode("ascii"))


if __name__ == "__main__":  # pragma: no cover
    main()
