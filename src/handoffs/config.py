"""Settings: read once from the environment into one typed object.

Nothing else in the project reads ``os.environ``; code receives a ``Settings``.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, get_args, get_type_hints
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from handoffs.integrations.outbound import OutboundPolicy
from handoffs.pricing import ModelPrice, parse_prices

#: ``LOG_FORMAT``'s values (handoffs.logs renders them).
LOG_FORMATS = ("text", "json")


class ConfigError(ValueError):
    """A setting has a value the service cannot use."""


def _from_env(name: str, kind: Any) -> Any:
    """The variable ``name`` parsed as ``kind``; ``_UNSET`` when it is unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return _UNSET
    if kind is bool:
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be 1/true/yes or 0/false/no, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc
    if kind is float:
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if kind is Path:
        return Path(raw)
    return raw


_UNSET = object()


def env(name: str, default: Any) -> Any:
    """A setting read from the environment variable ``name``: each name is declared here, once."""
    return field(default=default, metadata={"env": name})


def sqlalchemy_url(database_url: str) -> str:
    """Turn a plain ``postgresql://`` URL (unix-socket forms included) into an asyncpg one.

    ``postgresql://postgres:@/postgres?host=/some/dir`` keeps its ``host`` query
    parameter, which asyncpg reads as the socket directory.
    """
    parts = urlsplit(database_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in {"postgres", "postgresql"}:
        raise ConfigError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    # libpq options asyncpg does not understand would be passed on as server
    # settings and rejected; keep the ones asyncpg knows.
    query = [(k, v) for k, v in parse_qsl(parts.query) if k in {"host", "port", "sslmode", "ssl"}]
    query = [("ssl" if k == "sslmode" else k, v) for k, v in query]
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), parts.fragment))


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a handoffs process, grouped by concern.

    Each field names its environment variable once (``env("NAME", default)``);
    :meth:`from_env` reads them all, parsed by the field's type.
    """

    # -- services ----------------------------------------------------------------------
    database_url: str | None = env("DATABASE_URL", None)
    """Plain ``postgresql://`` URL. None means: start an embedded server."""
    redis_url: str | None = env("REDIS_URL", None)
    """``redis://host:port/db``. None means: start an embedded server (unless REDIS_SENTINELS is set:
    then only its database number, user, password and ``rediss`` are used, never its host)."""
    redis_sentinels: str = env("REDIS_SENTINELS", "")
    """``host:port,host:port``: find the Redis master through these Sentinels, and follow it when
    they fail over (docs/deployment.md, "Behind Redis Sentinel"). Empty: REDIS_URL's server."""
    redis_sentinel_master: str = env("REDIS_SENTINEL_MASTER", "mymaster")
    """The Sentinels' name of the master (``sentinel monitor <name> ...``)."""
    redis_sentinel_password: str = env("REDIS_SENTINEL_PASSWORD", "")
    """The Sentinels' own password (``requirepass`` in sentinel.conf), if they have one."""
    redis_retry_seconds: float = env("REDIS_RETRY_SECONDS", 10.0)
    """How long a Redis command keeps trying again on a lost connection before it fails: long
    enough to ride out a restart or a Sentinel failover, so the worker does not exit during one."""
    data_dir: Path = env("HANDOFFS_DATA_DIR", Path(".data"))  # noqa: RUF009 - env() makes a field
    """Where embedded PostgreSQL and Redis keep their files; made absolute from the current folder."""
    db_pool_size: int = env("DB_POOL_SIZE", 20)
    """Connections a process opens as it needs them and keeps (SQLAlchemy's pool)."""
    db_max_overflow: int = env("DB_MAX_OVERFLOW", 0)
    """Connections above the pool for a burst, each closed when it is handed back while the pool
    is full. Under a steady load near the pool's size that is a new PostgreSQL backend every few
    requests (hundreds a second, a cold backend each: bench/README.md, "escalate"), so the default
    is none: a request beyond the pool waits up to ``DB_POOL_TIMEOUT`` for one instead."""
    db_pool_timeout: float = env("DB_POOL_TIMEOUT", 30.0)
    """How long a request waits for a pooled connection before it answers 503 (try again)."""
    db_application_name: str = env("DB_APPLICATION_NAME", "handoffs")
    """How this process's connections are named in ``pg_stat_activity`` (and PgBouncer's
    ``SHOW CLIENTS``), so an operator tells an API replica's from a worker's."""
    db_pgbouncer: bool = env("DB_PGBOUNCER", False)
    """DATABASE_URL leads to PgBouncer in transaction pooling mode: no statement cache, so no
    prepared statement is left on a shared server connection (docs/deployment.md)."""
    db_app_role: str = env("DB_APP_ROLE", "handoffs_app")
    """The role every transaction runs as (``SET LOCAL ROLE``): not the tables' owner, so their
    row-level security applies (migration 0009 creates it and grants it to the migrating user).
    Empty: no switch, for a login role that is already such a role (docs/security.md)."""

    # -- the API -------------------------------------------------------------------------
    secret_key: str = env("SECRET_KEY", "")
    """Signs the JWTs. Every replica of one installation must share it."""
    token_ttl_minutes: int = env("TOKEN_TTL_MINUTES", 12 * 60)
    auth_user_cache_seconds: float = env("AUTH_USER_CACHE_SECONDS", 5.0)
    """How long a process keeps a signed-in user's row instead of reading it per request: a
    deactivation or role change made in the database applies within this (0: every request reads
    it), and so does a sign-out on another replica: each asks Redis's deny-list about a token at
    most this often (handoffs.security.user_cache, handoffs.security.revocation)."""
    login_max_failures_per_email: int = env("LOGIN_MAX_FAILURES_PER_EMAIL", 10)
    """Failed sign-ins per email per window before sign-in answers 429 (docs/security.md)."""
    login_max_failures_per_address: int = env("LOGIN_MAX_FAILURES_PER_ADDRESS", 50)
    login_window_seconds: int = env("LOGIN_WINDOW_SECONDS", 900)
    public_url: str = env("PUBLIC_URL", "http://127.0.0.1:8000")
    """The base of links in emails and chat messages (no trailing slash)."""
    debug: bool = env("HANDOFFS_DEBUG", False)
    outbox_fast_path: bool = env("OUTBOX_FAST_PATH", True)
    """Dispatch outbox rows right after commit. Off leaves them all to the worker's sweep."""

    # -- the live stream (SSE) -----------------------------------------------------------
    sse_keepalive_seconds: float = env("SSE_KEEPALIVE_SECONDS", 25.0)
    sse_client_queue: int = env("SSE_CLIENT_QUEUE", 64)
    """Events queued per client before a slow one is dropped to a ``resync``."""
    sse_retry_ms: int = env("SSE_RETRY_MS", 3000)
    """The browser's reconnect delay (the stream's ``retry:`` hint)."""
    sse_gc_gen0_threshold: int = env("SSE_GC_GEN0_THRESHOLD", 50_000)
    """Young-generation GC threshold while serving streams (0: Python's); see docs/live-stream.md."""
    sse_max_streams_per_user: int = env("SSE_MAX_STREAMS_PER_USER", 20)
    """Open streams per user across all replicas; the next one answers 429 (0: no cap)."""

    # -- the worker ------------------------------------------------------------------------
    job_timeout_seconds: int = env("JOB_TIMEOUT_SECONDS", 120)
    job_max_attempts: int = env("JOB_MAX_ATTEMPTS", 5)
    job_retry_base_seconds: float = env("JOB_RETRY_BASE_SECONDS", 2.0)
    """Attempt n waits base * 2**(n-1), with jitter, capped at the cap."""
    job_retry_cap_seconds: float = env("JOB_RETRY_CAP_SECONDS", 300.0)
    worker_max_jobs: int = env("WORKER_MAX_JOBS", 500)
    worker_poll_seconds: float = env("WORKER_POLL_SECONDS", 0.05)
    """How often a worker looks for new jobs (arq's ``poll_delay``; its default 0.5 s adds 0.25 s to
    every job on average). One ZRANGEBYSCORE per poll."""
    worker_batch_wait_ms: float = env("WORKER_BATCH_WAIT_MS", 10.0)
    """How long a busy worker lets concurrent jobs' reads and writes gather into one statement."""
    ladder_sweep_seconds: float = env("LADDER_SWEEP_SECONDS", 1.0)
    """How often each worker sweeps the escalation ladder for due levels (0: this worker does not)."""

    # -- operating it ---------------------------------------------------------------------
    metrics_token: str | None = env("METRICS_TOKEN", None)
    """The bearer token of ``GET /metrics``; unset, the endpoint answers 404."""
    worker_metrics_port: int = env("WORKER_METRICS_PORT", 0)
    """A worker serves its Prometheus metrics on this port (0: it does not)."""
    worker_metrics_host: str = env("WORKER_METRICS_HOST", "127.0.0.1")
    """Where the worker's metrics listen; ``0.0.0.0`` in a container on a private network."""

    # -- logs and shutdown ----------------------------------------------------------------
    log_format: str = env("LOG_FORMAT", "text")
    """``text``: one line per record; ``json``: one JSON object per line, with the request's or
    job's ids and secret-looking values masked (handoffs.logs, docs/deployment.md)."""
    shutdown_grace_seconds: int = env("SHUTDOWN_GRACE_SECONDS", 20)
    """How long a stopping API process lets requests in flight finish before it cancels them
    (uvicorn's graceful-shutdown timeout); live streams end at once."""

    # -- the AI assessment -------------------------------------------------------------------
    anthropic_api_key: str | None = env("ANTHROPIC_API_KEY", None)
    anthropic_model: str = env("ANTHROPIC_MODEL", "claude-sonnet-5-5")
    anthropic_timeout_seconds: float = env("ANTHROPIC_TIMEOUT_SECONDS", 60.0)
    anthropic_base_url: str | None = env("ANTHROPIC_BASE_URL", None)
    """An API gateway or proxy in front of Anthropic; unset means the SDK's default."""
    anthropic_streaming: bool = env("ANTHROPIC_STREAMING", True)
    """Stream the model's answer (live deltas). Off for a gateway that buffers event streams:
    one plain request per attempt, and the assessment appears when it is done."""
    ai_prices: str = env("AI_PRICES", "")
    """Model prices over the built-in list prices (JSON; handoffs.pricing)."""

    # -- email -------------------------------------------------------------------------------
    smtp_url: str | None = env("SMTP_URL", None)
    smtp_from: str = env("SMTP_FROM", "handoffs@localhost")

    # -- calls to addresses an account's admin configures (PSA, chat webhooks) ----------------
    outbound_allowed_hosts: str = env("OUTBOUND_ALLOWED_HOSTS", "")
    """Host names, addresses and networks (``127.0.0.1, cw.internal.example, 10.20.0.0/16``) that PSA
    and chat calls may reach although private, and over plain http. Empty (the default): public
    https hosts only. Installation-wide; docs/security.md."""

    # -- secrets at rest: PSA credentials, chat webhook URLs (handoffs.db.encryption) ----------
    data_encryption_key: str = env("DATA_ENCRYPTION_KEY", "")
    """Fernet keys, comma-separated: the first encrypts, every one decrypts (rotation:
    docs/deployment.md). Empty: one key derived from SECRET_KEY (HKDF-SHA256), which is what
    `handoffs dev` and the tests use; an installation sets its own, on every process alike."""

    def data_encryption_keys(self) -> tuple[str, ...]:
        """``DATA_ENCRYPTION_KEY`` as a list of Fernet keys, the encrypting one first; without it,
        the one key derived from the secret key. A malformed entry is a ConfigError naming its
        position, never its value."""
        entries = [entry.strip() for entry in self.data_encryption_key.split(",") if entry.strip()]
        if not entries:
            return (self.derived_data_key(self.resolved_secret_key()),)
        for position, entry in enumerate(entries, 1):
            try:
                Fernet(entry)
            except (ValueError, TypeError):
                raise ConfigError(
                    f"DATA_ENCRYPTION_KEY: key {position} of {len(entries)} is not a Fernet key "
                    "(32 bytes, url-safe base64); `handoffs data-key` prints a new one"
                ) from None
        return tuple(dict.fromkeys(entries))

    #: HKDF's ``info`` for the key derived from the secret key: fixed, so every process derives
    #: the same key; versioned, so another derivation is never mistaken for this one.
    DERIVED_DATA_KEY_INFO: ClassVar[bytes] = b"handoffs data encryption key v1"

    @classmethod
    def derived_data_key(cls, secret_key: str) -> str:
        """The Fernet key used when DATA_ENCRYPTION_KEY is unset: HKDF-SHA256 of the secret key
        (no salt, ``info`` = ``DERIVED_DATA_KEY_INFO``, 32 bytes), url-safe base64."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=cls.DERIVED_DATA_KEY_INFO)
        return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())).decode("ascii")

    def __post_init__(self) -> None:
        # Resolved once, here: embedded servers change folder before they open
        # their files, so a relative folder would point somewhere else for them.
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        object.__setattr__(self, "log_format", self.log_format.lower())
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.shutdown_grace_seconds < 0:
            raise ConfigError(f"SHUTDOWN_GRACE_SECONDS must be 0 or more, got {self.shutdown_grace_seconds}")
        self.price_table()  # a malformed AI_PRICES stops the start, not the first assessment
        self.outbound_policy()  # and a malformed OUTBOUND_ALLOWED_HOSTS too

    def outbound_policy(self) -> OutboundPolicy:
        """What PSA and chat calls may reach (handoffs.integrations.outbound)."""
        try:
            return OutboundPolicy.parse(self.outbound_allowed_hosts)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def price_table(self) -> dict[str, ModelPrice]:
        """USD per million tokens by model prefix: the built-in list prices with ``AI_PRICES`` over them."""
        try:
            return parse_prices(self.ai_prices)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    @classmethod
    def from_env(cls) -> Settings:
        hints = get_type_hints(cls)
        values = {}
        for f in fields(cls):
            kind = hints[f.name]
            kind = next((a for a in get_args(kind) if a is not type(None)), kind)  # X | None -> X
            value = _from_env(f.metadata["env"], kind)
            if value is not _UNSET:
                values[f.name] = value
        return cls(**values)

    def with_services(self, database_url: str, redis_url: str) -> Settings:
        return replace(self, database_url=database_url, redis_url=redis_url)

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept in the data folder.

        A kept key lets `handoffs dev` restart without logging everyone out; a
        real installation sets SECRET_KEY so all replicas agree.
        """
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key

    @property
    def sqlalchemy_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set and no embedded PostgreSQL was started")
        return sqlalchemy_url(self.database_url)

    @property
    def redis_configured(self) -> bool:
        """A Redis to use was named (a URL or Sentinels); otherwise one is embedded or refused."""
        return bool(self.redis_url or self.redis_sentinels)

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """REDIS_SENTINELS as ``(host, port)`` pairs (no port: Sentinel's 26379); empty when unset."""
        addresses = []
        for item in self.redis_sentinels.split(","):
            item = item.strip()
            if not item:
                continue
            host, sep, port = item.rpartition(":")
            if not sep:
                host, port = item, "26379"
            host = host.strip("[]")  # [::1]:26379
            if not host or not port.isdigit():
                raise ConfigError(f"REDIS_SENTINELS must be host:port,host:port,..., got {item!r}")
            addresses.append((host, int(port)))
        return addresses

    @property
    def required_redis_url(self) -> str:
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set and no embedded Redis was started")
        return self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
