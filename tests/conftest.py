"""Shared fixtures: real services, one migrated database per worker, the app, demo users."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handoffs.app import create_app
from handoffs.config import Settings
from handoffs.db.encryption import use_keys
from handoffs.db.engine import create_engine, create_sessionmaker, migrate
from handoffs.db.tenancy import SYSTEM
from handoffs.domain.accounts.service import DEMO_PASSWORD, DEMO_USERS, seed_demo
from tests.support.fake_chat import FakeChat
from tests.support.infra import TEST_DATA, TestServices, start_test_services

DEMO_EMAILS = tuple(u.email for u in DEMO_USERS)
#: Where the tests' fake vendors listen (``OUTBOUND_ALLOWED_HOSTS``).
TEST_OUTBOUND_ALLOWED_HOSTS = "127.0.0.1,localhost,::1"


#: Loggers whose ERROR records mean something broke that the test did not ask for: the relay,
#: the jobs and their batching, the live-stream hub, the API's unhandled-error handler, arq.
GUARDED_LOGGERS = ("handoffs.outbox", "handoffs.jobs", "handoffs.stream",
                   "handoffs.errors", "arq")  # fmt: skip


class _ErrorLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(GUARDED_LOGGERS):
            self.records.append(record)


@pytest.fixture(autouse=True)
def no_unexpected_error_logs(request: pytest.FixtureRequest) -> Iterator[_ErrorLogs]:
    """Fail a test that passed while the relay, a job, the hub or the API logged an ERROR.

    A passing test once hid a relay traceback (``KeyError: 'account_id'``). Tests that
    provoke an error on purpose say so with ``@pytest.mark.expect_error_logs``.
    """
    errors = _ErrorLogs()
    # On the parents, not the root: Litestar's logging set-up replaces the root's handlers.
    parents = [logging.getLogger("handoffs"), logging.getLogger("arq")]
    for logger in parents:
        logger.addHandler(errors)
    yield errors
    for logger in parents:
        logger.removeHandler(errors)
    if errors.records and request.node.get_closest_marker("expect_error_logs") is None:
        formatter = logging.Formatter("%(name)s: %(message)s")
        shown = "\n".join(formatter.format(record) for record in errors.records)
        pytest.fail(f"unexpected ERROR logs during the test:\n{shown}", pytrace=False)


@pytest.fixture(scope="session")
def test_services() -> Iterator[TestServices]:
    services = start_test_services()
    try:
        yield services
    finally:
        services.stop()


#: Tests keep a user's row this long (production: 5 s, handoffs.security.user_cache).
AUTH_USER_CACHE_SECONDS = 0.5
#: How long a test waits at most for a change of a user's row to apply: the cache plus a margin.
AUTH_USER_CACHE_BOUND = AUTH_USER_CACHE_SECONDS + 5


@pytest.fixture(scope="session")
def settings(test_services: TestServices, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(
        database_url=test_services.database_url,
        redis_url=test_services.redis_url,
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        data_dir=tmp_path_factory.mktemp("data"),
        db_pool_size=5,
        db_max_overflow=15,
        db_pgbouncer=test_services.pgbouncer,
        # The fake PSA and chat servers listen on this machine, over plain http (tests/support):
        # the production default allows neither. tests/api/test_outbound_urls.py runs without it.
        outbound_allowed_hosts=TEST_OUTBOUND_ALLOWED_HOSTS,
        # The user's row is kept as in production, for less time: a test that deactivates someone
        # in the database waits for the bound (AUTH_USER_CACHE_BOUND) rather than 5 s.
        auth_user_cache_seconds=AUTH_USER_CACHE_SECONDS,
    )
    use_keys(settings.data_encryption_keys())  # as every process does when it builds its runtime
    migrate(settings)
    return settings


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The tests' own engine: the login role (the tables' owner, or a superuser), in the system
    scope, so it seeds, truncates and inspects every account's rows; the app's engines run as
    DB_APP_ROLE, held to row-level security (tests/api/test_row_level_security.py)."""
    engine = create_engine(settings, scope=SYSTEM, app_role=False)
    async with create_sessionmaker(engine)() as db:
        await seed_demo(db)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def db(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


@pytest.fixture(scope="session")
async def app(settings: Settings, engine: AsyncEngine) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.required_redis_url)
    yield client
    await client.aclose()


#: SQLSTATE of "deadlock detected"; how often ``clean_tables`` tries again after one.
DEADLOCK_DETECTED = "40P01"
CLEAN_ATTEMPTS = 3


async def clean_rows(engine: AsyncEngine) -> None:
    """Only the demo accounts and users left."""
    for attempt in range(1, CLEAN_ATTEMPTS + 1):
        try:
            await _truncate(engine)
            break
        except DBAPIError as exc:
            # A request of an earlier test still in flight on a long-lived replica (an escalate
            # holding session_handoffs and asking for escalation_policies, which TRUNCATE locked
            # first) deadlocks with the truncation; PostgreSQL aborts one side. Once that request
            # is over, the truncation goes through.
            if getattr(exc.orig, "sqlstate", None) != DEADLOCK_DETECTED or attempt == CLEAN_ATTEMPTS:
                raise


async def _truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "TRUNCATE outbox, email_deliveries, psa_connections, escalation_policies, chat_integrations, notifications, session_handoffs, session_messages, ai_sessions CASCADE"
            )
        )
        await conn.execute(
            text("DELETE FROM users WHERE email <> ALL(:emails)"), {"emails": list(DEMO_EMAILS)}
        )
        # A test that deactivated a demo user must not leave the next one without them.
        await conn.execute(text("UPDATE users SET is_active = true WHERE NOT is_active"))
        await conn.execute(text("DELETE FROM accounts WHERE slug NOT IN ('acme-msp', 'globex-msp')"))


@pytest.fixture(autouse=True)
async def clean_tables(request: pytest.FixtureRequest) -> None:
    """Each test starts with only the demo accounts and users (seeded once per worker)."""
    if "engine" not in request.fixturenames and "client" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    if "client" in request.fixturenames:
        # The previous test's dispatches finish first: truncating under them would make the
        # relay log an error, and this test would be blamed for it.
        await settle(request.getfixturevalue("client"))
    await clean_rows(engine)
    # Nor may one test's failed sign-ins count against the next one's (security/login_limits.py).
    limits = Redis.from_url(request.getfixturevalue("settings").required_redis_url)
    try:
        stale = [key async for key in limits.scan_iter(match="handoffs:login:failures:*")]
        if stale:
            await limits.delete(*stale)
    finally:
        await limits.aclose()


@dataclass
class Actor:
    """A signed-in user as the tests drive them: their token and identity."""

    email: str
    id: UUID
    name: str
    role: str
    account_id: UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """The HTTP API as a given user calls it."""

    def __init__(self, client: AsyncTestClient[Litestar], actors: dict[str, Actor]) -> None:
        self.client = client
        self.actors = actors

    def __getitem__(self, who: str) -> Actor:
        return self.actors[who]

    async def call(self, who: str | Actor | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if who is not None:
            actor = who if isinstance(who, Actor) else self.actors[who]
            headers.update(actor.headers)
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def new_session(self, who: str = "jane", **fields: Any) -> dict[str, Any]:
        body = {"title": "Outlook sync", "problem_summary": "Outlook is failing to sync email", **fields}
        response = await self.call(who, "POST", "/api/v1/ai-sessions", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def hand_off(self, session_id: str, who: str = "jane", **fields: Any) -> dict[str, Any]:
        body = {"intent": "escalate", **fields}
        response = await self.call(who, "POST", f"/api/v1/ai-sessions/{session_id}/handoff", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def act(
        self, who: str, session: dict[str, Any], handoff: dict[str, Any], action: str, body: Any = None
    ) -> Any:
        """``POST .../handoffs/{id}/{action}`` (claim, release, reassign, resolve, withdraw, comments)."""
        path = f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}/{action}"
        return await self.call(who, "POST", path, **({"json": body} if body is not None else {}))

    async def read(self, who: str, session: dict[str, Any], handoff: dict[str, Any], part: str = "") -> Any:
        """``GET .../handoffs/{id}[/part]`` as ``who``: the handoff, its comments or its timeline."""
        path = f"/api/v1/ai-sessions/{session['id']}/handoffs/{handoff['id']}" + (f"/{part}" if part else "")
        return await self.call(who, "GET", path)

    async def claimed(self, by: str = "sam", **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """A fresh escalation of jane's, claimed by ``by``; returns (session, handoff as claimed)."""
        session, handoff = await self.escalated("jane", **fields)
        response = await self.act(by, session, handoff, "claim")
        assert response.status_code == 200, response.text
        return session, dict(response.json())

    async def escalated(self, who: str = "jane", **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """A fresh session of ``who``, escalated; returns (session, handoff)."""
        session = await self.new_session(who, psa_ticket_id=fields.pop("psa_ticket_id", "12345"))
        return session, await self.hand_off(session["id"], who, **fields)


@pytest.fixture(scope="session")
async def actors(client: AsyncTestClient[Litestar]) -> dict[str, Actor]:
    """Every demo user, signed in once per worker through the real login endpoint."""
    out: dict[str, Actor] = {}
    for email in DEMO_EMAILS:
        response = await client.post("/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        user = body["user"]
        out[email.split("@")[0]] = Actor(
            email=email,
            id=UUID(user["id"]),
            name=user["name"],
            role=user["role"],
            account_id=UUID(user["account_id"]),
            token=body["access_token"],
        )
    return out


@pytest.fixture
def api(client: AsyncTestClient[Litestar], actors: dict[str, Actor]) -> Api:
    return Api(client, actors)


__all__ = ["TEST_DATA", "Actor", "Api"]


@pytest.fixture(scope="session")
def replicas(settings: Settings, engine: AsyncEngine) -> Iterator[list[str]]:
    """Two API replicas as separate uvicorn processes (started once per worker)."""
    from tests.support.replicas import run_replicas

    with run_replicas(settings, count=2) as urls:
        yield urls


def mint_token(settings: Settings, user_id: UUID) -> str:
    """A token as the login endpoint would issue it, without the argon2 cost per user."""
    from datetime import UTC, datetime, timedelta

    from litestar.security.jwt import Token

    token = Token(sub=str(user_id), exp=datetime.now(UTC) + timedelta(hours=1))
    return token.encode(secret=settings.secret_key, algorithm="HS256")


async def many_engineers(
    db: AsyncSession, settings: Settings, account_id: UUID, count: int, name: str
) -> list[tuple[str, str]]:
    """``count`` fresh engineers of the account (``name1@…``, one shared password hash, so hashing
    does not dominate), as (user id, token); ``clean_tables`` removes them after the test."""
    from handoffs.db.models import Account
    from handoffs.domain.accounts.service import UserService
    from handoffs.enums import Role
    from handoffs.security.passwords import hash_password

    account = await db.get(Account, account_id)
    assert account is not None
    service = UserService(db)
    shared_hash = hash_password("race")
    users = [
        await service.create_user(
            account=account, email=f"{name.lower()}{i}@acme.test", name=f"{name} {i}",
            role=Role.engineer, password_hash=shared_hash,
        )
        for i in range(count)
    ]  # fmt: skip
    await db.commit()
    return [(str(u.id), mint_token(settings, u.id)) for u in users]


@pytest.fixture
async def clean_redis(redis: Redis) -> None:
    """Empty this worker's Redis database: no arq jobs or event history from earlier tests."""
    await redis.flushdb()


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    """A fake Slack/Teams webhook server (tests/support/fake_chat.py)."""
    from tests.support.fake_chat import fake_chat_server

    with fake_chat_server() as fake:
        yield fake


@pytest.fixture
async def no_chat_integrations(engine: AsyncEngine) -> AsyncIterator[None]:
    """``clean_tables`` keeps account-level rows; a chat integration must not outlive its test."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM chat_integrations"))
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM chat_integrations"))


async def settle(client: AsyncTestClient[Litestar], seconds: float = 10) -> None:
    """Wait until the API has handed its committed outbox rows on (the fast path runs after the response).

    The test client runs the app on its own event loop in a thread, so poll
    rather than await that loop's tasks.
    """
    from handoffs.runtime import runtime_of
    from tests.support.polling import wait_for

    relay = runtime_of(client.app).relay

    async def idle() -> bool:
        return not relay.busy

    await wait_for(idle, seconds=seconds, interval=0.01)


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port where connections are refused, and that no other test worker can take meanwhile."""
    from tests.support.ports import refused_port

    with refused_port() as port:
        yield port


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    """One headless Chromium per test worker (Debian's; the browser tests skip without it)."""
    from tests.support.browser import launch, require_chromium

    require_chromium()
    async with launch() as browser:
        yield browser


@pytest.fixture(scope="session")
def stream_replicas(settings: Settings, engine: AsyncEngine) -> Iterator[list[str]]:
    """Two API replicas (separate uvicorn processes) for the live-stream tests: short keepalive."""
    from tests.support.sse import STREAM_REPLICA_ENV, replicas_with_env

    with replicas_with_env(settings, 2, STREAM_REPLICA_ENV) as urls:
        yield urls
