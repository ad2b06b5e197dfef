"""Settings: read once from the environment into one typed object.

Nothing else in the project reads ``os.environ``; code receives a ``Settings``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class ConfigError(ValueError):
    """A setting has a value the service cannot use."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _int_env(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def _float_env(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


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
    """Everything configurable about a handoffs process."""

    database_url: str | None = None
    """Plain ``postgresql://`` URL. None means: start an embedded server."""
    redis_url: str | None = None
    """``redis://host:port/db``. None means: start an embedded server."""
    secret_key: str = ""
    """Signs the JWTs. Every replica of one installation must share it."""
    data_dir: Path = Path(".data")
    """Where embedded PostgreSQL and Redis keep their files; made absolute from the current folder."""
    anthropic_api_key: str | None = None
    anthropic_model: str = "claude-sonnet-5-5"
    smtp_url: str | None = None
    smtp_from: str = "handoffs@localhost"
    public_url: str = "http://127.0.0.1:8000"
    token_ttl_minutes: int = 12 * 60
    db_pool_size: int = 10
    db_max_overflow: int = 20
    debug: bool = False
    # Live stream (SSE): keepalive comment interval, events queued per client
    # before a slow one is dropped to a `resync`, and the browser's reconnect delay.
    sse_keepalive_seconds: float = 25.0
    sse_client_queue: int = 64
    sse_retry_ms: int = 3000
    # Young-generation GC threshold while serving streams (0: leave Python's default); see docs/live-stream.md.
    sse_gc_gen0_threshold: int = 50_000
    # Worker: arq job limits and the retry schedule (attempt n waits base * 2**(n-1), capped).
    job_timeout_seconds: int = 120
    job_max_attempts: int = 5
    job_retry_base_seconds: float = 2.0
    job_retry_cap_seconds: float = 300.0
    worker_max_jobs: int = 500
    worker_batch_wait_ms: float = 10.0
    """How long a busy worker lets concurrent jobs' reads and writes gather into one statement."""
    anthropic_timeout_seconds: float = 60.0
    anthropic_base_url: str | None = None
    """An API gateway or proxy in front of Anthropic; unset means the SDK's default."""
    outbox_fast_path: bool = True
    """Dispatch outbox rows right after commit. Off leaves them all to the worker's sweep."""

    def __post_init__(self) -> None:
        # Resolved once, here: embedded servers change folder before they open
        # their files, so a relative folder would point somewhere else for them.
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(_env("HANDOFFS_DATA_DIR", ".data") or ".data")
        return cls(
            database_url=_env("DATABASE_URL"),
            redis_url=_env("REDIS_URL"),
            secret_key=_env("SECRET_KEY") or "",
            data_dir=data_dir,
            anthropic_api_key=_env("ANTHROPIC_API_KEY"),
            anthropic_model=_env("ANTHROPIC_MODEL", cls.anthropic_model) or cls.anthropic_model,
            smtp_url=_env("SMTP_URL"),
            smtp_from=_env("SMTP_FROM", cls.smtp_from) or cls.smtp_from,
            public_url=(_env("PUBLIC_URL", cls.public_url) or cls.public_url).rstrip("/"),
            token_ttl_minutes=_int_env("TOKEN_TTL_MINUTES", cls.token_ttl_minutes),
            db_pool_size=_int_env("DB_POOL_SIZE", cls.db_pool_size),
            db_max_overflow=_int_env("DB_MAX_OVERFLOW", cls.db_max_overflow),
            debug=(_env("HANDOFFS_DEBUG", "0") or "0").lower() in {"1", "true", "yes"},
            sse_keepalive_seconds=_float_env("SSE_KEEPALIVE_SECONDS", cls.sse_keepalive_seconds),
            sse_client_queue=_int_env("SSE_CLIENT_QUEUE", cls.sse_client_queue),
            sse_retry_ms=_int_env("SSE_RETRY_MS", cls.sse_retry_ms),
            sse_gc_gen0_threshold=_int_env("SSE_GC_GEN0_THRESHOLD", cls.sse_gc_gen0_threshold),
            job_timeout_seconds=_int_env("JOB_TIMEOUT_SECONDS", cls.job_timeout_seconds),
            job_max_attempts=_int_env("JOB_MAX_ATTEMPTS", cls.job_max_attempts),
            job_retry_base_seconds=_float_env("JOB_RETRY_BASE_SECONDS", cls.job_retry_base_seconds),
            job_retry_cap_seconds=_float_env("JOB_RETRY_CAP_SECONDS", cls.job_retry_cap_seconds),
            worker_max_jobs=_int_env("WORKER_MAX_JOBS", cls.worker_max_jobs),
            worker_batch_wait_ms=_float_env("WORKER_BATCH_WAIT_MS", cls.worker_batch_wait_ms),
            anthropic_timeout_seconds=_float_env("ANTHROPIC_TIMEOUT_SECONDS", cls.anthropic_timeout_seconds),
            anthropic_base_url=_env("ANTHROPIC_BASE_URL"),
            outbox_fast_path=(_env("OUTBOX_FAST_PATH", "1") or "1").lower() not in {"0", "false", "no"},
        )

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
    def redis(self) -> str:
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set and no embedded Redis was started")
        return self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
