"""Logging: one format for every process (``LOG_FORMAT``), and logs that say what changed, not what polled.

``text`` (the default) is one line per record (:data:`TEXT_FORMAT`). ``json`` is one JSON object
per line: every library's stdlib records (ours, uvicorn's, arq's, SQLAlchemy's) go through
structlog's ``ProcessorFormatter`` (:class:`JsonFormatter`), which adds what contextvars hold for
the request (``handoffs.request_id``) or the job (structlog's, bound by the worker's
``on_job_start`` and the runner) and masks secret-looking values (:func:`redact`). The CLI
calls :func:`configure_logging`; the app factory hands the same set-up to Litestar
(:func:`app_logging`), which otherwise installs one of its own.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
import structlog
from litestar.logging.config import LoggingConfig, StructLoggingConfig, default_handlers
from litestar.plugins.structlog import StructlogConfig, StructlogPlugin
from structlog.contextvars import merge_contextvars
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

from handoffs.request_id import merge_request

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# -- what is never logged ---------------------------------------------------------------------

REDACTED = "[redacted]"

#: A key containing one of these (any case, ``-`` read as ``_``) has its value masked, however
#: deep in a logged mapping: ``password``, ``client_secret``, ``access_token``, ``Set-Cookie``.
SECRET_WORDS = ("password", "passwd", "secret", "token", "authorization", "api_key", "apikey",
                "private_key", "webhook_url", "cookie", "credential")  # fmt: skip
_SECRET_KEY = re.compile("|".join(SECRET_WORDS))
#: The same words in a message's text, followed by ``=`` or ``:`` (``?api_key=…`` in an access
#: line, ``'client_secret': '…'`` in a repr, ``Authorization: Bearer …``), and bare bearer tokens.
_WORDS_IN_TEXT = "|".join(w.replace("_", "[_-]?") for w in SECRET_WORDS)
_SECRET_IN_TEXT = re.compile(
    rf"(?P<key>[\w-]*(?:{_WORDS_IN_TEXT})[\w-]*[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic)\s+)?[^\s\"',;&)}}\]]+"
    r"|(?P<scheme>\bbearer\s+)[\w.~+/=-]+",
    re.IGNORECASE,
)
_HINT = re.compile(rf"{_WORDS_IN_TEXT}|bearer", re.IGNORECASE)
#: What a request (handoffs.request_id) or a job (the worker's on_job_start, the runner) binds.
CONTEXT_FIELDS = ("request_id", "method", "path", "account_id", "user_id", "job_id", "function")
#: Fields the set-up itself writes: never secrets, not walked.
_OWN_FIELDS = frozenset({"timestamp", "level", "logger", *CONTEXT_FIELDS})


@functools.lru_cache(maxsize=1024)
def is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key.lower().replace("-", "_")) is not None


#: PostgreSQL's ``DETAIL`` line of an error carries the row's values ("Key (email)=(ada@…)
#: already exists", "Failing row contains (…)"), and asyncpg puts it into the error's text, so into
#: every traceback of it: the rest of the line goes. The message and the constraint's name stay.
_PG_DETAIL = re.compile(r"(DETAIL:\s*).*$", re.MULTILINE)


def scrub(text: str) -> str:
    """``text`` with the values after secret-looking words (``token=…``, ``password: …``), bearer
    tokens and PostgreSQL's ``DETAIL`` of a failed statement replaced by ``[redacted]``."""
    if "DETAIL:" in text:
        text = _PG_DETAIL.sub(lambda m: m[1] + REDACTED, text)
    if _HINT.search(text) is None:  # nearly every line: one scan, no substitution
        return text
    return _SECRET_IN_TEXT.sub(lambda m: (m["key"] or m["scheme"]) + REDACTED, text)


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT` lines, scrubbed as the JSON ones are (:func:`scrub`), traceback included."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def _masked(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if depth >= 5:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_key(k) else _masked(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(v, depth + 1) for v in value]
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask the values of secret-looking keys, and secrets written into text (the message, the
    traceback, any string value), before a line is rendered."""
    for key, value in event_dict.items():
        if key in _OWN_FIELDS:
            continue
        event_dict[key] = REDACTED if is_secret_key(key) else _masked(value)
    return event_dict


# -- the JSON line ------------------------------------------------------------------------------


def _shape(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """``timestamp`` (the record's, UTC), ``level``, ``logger``, ``message`` and the context first;
    structlog's and uvicorn's internals dropped."""
    record: logging.LogRecord = event_dict.pop("_record")
    event_dict.pop("_from_structlog", None)
    event_dict.pop("color_message", None)  # uvicorn's coloured copy of the message
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    line = {
        "timestamp": stamp.replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": event_dict.pop("event", ""),
    }
    for key in CONTEXT_FIELDS:  # contextvars come in no particular order
        if key in event_dict:
            line[key] = event_dict.pop(key)
    line.update(event_dict)
    return line


_ENCODER = msgspec.json.Encoder(enc_hook=lambda obj: scrub(str(obj)))


def _render(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    try:
        return _ENCODER.encode(event_dict).decode()
    except (TypeError, msgspec.EncodeError):  # a key msgspec cannot write (a tuple): slower, never lost
        return json.dumps(event_dict, default=lambda obj: scrub(str(obj)))


#: Run on stdlib records as they are formatted, which must be in the thread that logged them (the
#: queue handler formats before it enqueues: :func:`app_logging`), where the request's or job's
#: contextvars are.
FOREIGN_PRE_CHAIN: list[Processor] = [merge_request, merge_contextvars, structlog.stdlib.ExtraAdder()]
RENDERING: list[Processor] = [_shape, structlog.processors.format_exc_info, redact, _render]


class JsonFormatter(ProcessorFormatter):
    """One JSON object per record: ``timestamp``, ``level``, ``logger``, ``message``, the bound
    context (``request_id``, ``method``, ``path``, ``account_id``, ``user_id``; ``job_id``,
    ``function``), extras, and ``exception`` (the traceback's text)."""

    def __init__(self) -> None:
        super().__init__(foreign_pre_chain=FOREIGN_PRE_CHAIN, processors=RENDERING)


def _structlog_options() -> dict[str, Any]:
    """structlog's own loggers (``structlog.get_logger()``) end in the same stdlib handlers."""
    return {
        "processors": [
            structlog.stdlib.filter_by_level,
            merge_request,
            merge_contextvars,
            structlog.stdlib.PositionalArgumentsFormatter(),
            ProcessorFormatter.wrap_for_formatter,
        ],
        "logger_factory": structlog.stdlib.LoggerFactory(),
        "wrapper_class": structlog.stdlib.BoundLogger,
        "cache_logger_on_first_use": True,
    }


# -- quiet ---------------------------------------------------------------------------------------


class _DropRoutine(logging.Filter):
    """Drops INFO records that only say a periodic task ran; warnings and errors pass."""

    def __init__(self, *needles: str, keep: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.needles = needles
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        if self.keep:
            return message.startswith(self.keep)
        return not any(needle in message for needle in self.needles)


def quiet_routine_logs() -> None:
    """Silence what repeats on its own: arq's lines for every outbox sweep (every 3 s) and its
    health record (every 10 s); Alembic's plugin set-up. Kept: jobs that ran, migrations applied,
    the sweep's own line when it found rows a crash left behind."""
    logging.getLogger("arq.worker").addFilter(
        _DropRoutine("→ cron:sweep_outbox", "← cron:sweep_outbox", "recording health")
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").addFilter(
        _DropRoutine(keep=("Running upgrade", "Running downgrade"))
    )


# -- set-up ----------------------------------------------------------------------------------------


def configure_logging(log_format: str = "text", *, verbose: bool = False) -> None:
    """The process's logging, for the CLI's commands (the API's is set again by :func:`app_logging`)."""
    level = logging.DEBUG if verbose else logging.INFO
    if log_format == "json":
        structlog.configure(**_structlog_options())
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(TextFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    if not verbose:
        quiet_routine_logs()


def uvicorn_log_config(log_format: str) -> dict[str, Any] | None:
    """What ``handoffs serve`` and ``dev`` give uvicorn: its own handlers and lines for ``text`` (as
    ever); none for ``json``, so its records reach the root's JSON handler."""
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG


class AppLogging(NamedTuple):
    """What the app factory hands Litestar: a ``logging_config``, or the structlog plugin."""

    config: LoggingConfig | None
    plugins: list[StructlogPlugin]


def app_logging(log_format: str) -> AppLogging:
    """The API's logging, at the level the CLI set (``handoffs -v``: DEBUG), through Litestar's queue
    handler. Unhandled errors are logged by handoffs.errors, not by Litestar (``log_exceptions``)."""
    current = logging.getLogger()
    # A process the CLI did not set up (a `serve --workers N` child, spawned afresh) has Python's
    # WARNING default: take INFO there, as the CLI would, or the app's INFO lines vanish.
    level = current.getEffectiveLevel() if current.handlers else logging.INFO
    root: dict[str, Any] = {"handlers": ["queue_listener"], "level": logging.getLevelName(level)}
    if log_format != "json":
        return AppLogging(
            LoggingConfig(formatters={"standard": {"()": TextFormatter}}, root=root, log_exceptions="never"),
            [],
        )
    formatters: dict[str, dict[str, Any]] = {"standard": {"()": JsonFormatter}}
    # uvicorn's lines are written as they are logged, not through the queue, as its own text
    # handlers do: it logs its last lines ("Application shutdown complete.") just before it
    # re-raises SIGTERM, which ends the process before the queue's thread would write them.
    handlers: dict[str, dict[str, Any]] = {
        "direct": {"class": "logging.StreamHandler", "formatter": "standard"}
    }
    if sys.version_info >= (3, 12):
        # Litestar's queue handler for 3.12+ leaves formatting to the listener's thread, where no
        # request's contextvars are (and it folds the traceback into the message first): format
        # before enqueuing, as its 3.11 handler does, and have the listener write the line.
        formatters["line"] = {"format": "%(message)s"}
        handlers["console"] = {**default_handlers["console"], "formatter": "line"}
        handlers["queue_listener"] = {**default_handlers["queue_listener"], "formatter": "standard"}
    stdlib = LoggingConfig(
        formatters=formatters,
        handlers=handlers,
        root=root,
        # The levels stay as uvicorn's --log-level set them.
        loggers={
            name: {"handlers": ["direct"], "propagate": False} for name in ("uvicorn", "uvicorn.access")
        },
        log_exceptions="never",
    )
    # Litestar's plugin, without its request-logging middleware: that one logs bodies, headers
    # and cookies (obfuscated by a short list) on every request; handoffs.request_id binds ids only.
    structured = StructLoggingConfig(
        **_structlog_options(), standard_lib_logging_config=stdlib, log_exceptions="never"
    )
    plugin = StructlogPlugin(
        StructlogConfig(structlog_logging_config=structured, enable_middleware_logging=False)
    )
    return AppLogging(None, [plugin])
