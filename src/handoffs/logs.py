"""Logging: one line format for every process, and logs that say what changed, not what polled.

The CLI calls :func:`configure_logging`; the app factory hands the same format
to Litestar's ``LoggingConfig`` (which otherwise installs one of its own).
"""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


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


def configure_logging(*, verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    if not verbose:
        quiet_routine_logs()
