"""Secrets at rest: columns encrypted with the installation's keys (``DATA_ENCRYPTION_KEY``).

PSA credentials and chat webhook URLs are stored as Fernet tokens (AES-128-CBC with an
HMAC-SHA256, cryptography's ``Fernet``), encrypted and decrypted in this process: the key never
reaches PostgreSQL, so a database dump, a replica or a backup holds no usable secret. The
column types are advanced-alchemy's ``EncryptedText`` over a backend that takes several keys
(cryptography's ``MultiFernet``): the first encrypts, every one decrypts, which is what
rotation needs (``handoffs rotate-secrets``, docs/deployment.md).

Column types are built when the models are imported and the keys are known only once settings
are read, so each process installs its keys with :func:`use_keys` when it builds its runtime
(``open_runtime``; the CLI and the tests likewise). One key list per process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from advanced_alchemy.types import EncryptedText
from advanced_alchemy.types.encrypted_string import EncryptionBackend
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Dialect, TableClause, Text, TypeDecorator, column, select, table, update
from sqlalchemy.ext.asyncio import AsyncEngine


class UnreadableSecret(Exception):
    """A stored secret that none of the configured keys decrypts (a wrong or missing key).

    The message names what could not be read, never the value nor a key.
    """

    def __init__(self, what: str) -> None:
        super().__init__(f"the stored {what} cannot be read with the configured DATA_ENCRYPTION_KEY")
        self.what = what


_installed: str | None = None


def use_keys(keys: Sequence[str]) -> None:
    """Encrypt with ``keys[0]`` and decrypt with any of ``keys`` (Fernet keys) from now on."""
    global _installed  # the process's one key list (see the module docstring)
    if not keys:
        raise ValueError("at least one data encryption key is needed")
    _installed = ",".join(keys)


def installed_keys() -> tuple[str, ...]:
    """The keys :func:`use_keys` installed (empty before)."""
    return tuple(_installed.split(",")) if _installed else ()


def keyring(keys: Sequence[str]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current_keys() -> str:
    """The column types' key: read at every use, so keys installed later (or rotated) apply."""
    if _installed is None:
        raise RuntimeError(
            "no data encryption keys installed: the process must call "
            "handoffs.db.encryption.use_keys(settings.data_encryption_keys()) first"
        )
    return _installed


class MultiFernetBackend(EncryptionBackend):
    """advanced-alchemy's encryption backend over several Fernet keys, comma-joined: the first
    encrypts, any decrypts. The keys are used as they are (``FernetBackend`` would hash a
    passphrase into one key); the ``MultiFernet`` is rebuilt only when the keys change."""

    def __init__(self) -> None:
        self._keys: str | None = None
        self._fernet: MultiFernet | None = None

    def mount_vault(self, key: str | bytes) -> None:
        self.init_engine(key)

    def init_engine(self, key: bytes | str) -> None:
        keys = key.decode() if isinstance(key, bytes) else key
        if keys != self._keys:
            self._fernet, self._keys = keyring(keys.split(",")), keys

    @property
    def fernet(self) -> MultiFernet:
        if self._fernet is None:
            raise RuntimeError("the vault is not mounted")
        return self._fernet

    def encrypt(self, value: Any) -> str:
        return self.fernet.encrypt(str(value).encode()).decode("ascii")

    def decrypt(self, value: Any) -> str:
        """The plain text; ``InvalidToken`` when no key opens it (or it is no Fernet token)."""
        return self.fernet.decrypt(str(value).encode()).decode()


class SecretText(EncryptedText):
    """Text stored encrypted with the installed keys. A value no key decrypts raises
    :class:`UnreadableSecret` naming ``what`` (``"PSA credentials"``)."""

    cache_ok = True

    def __init__(self, what: str) -> None:
        super().__init__(key=_current_keys, backend=MultiFernetBackend)
        self.what = what

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        # EncryptedText adapts Text to the dialect, and asyncpg's adaptation of any String is its
        # VARCHAR: the DDL (and so alembic's comparison) would say varchar for a text column.
        return Text()

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        try:
            return super().process_result_value(value, dialect)
        except InvalidToken:
            raise UnreadableSecret(self.what) from None


class SecretJSON(TypeDecorator[dict[str, Any]]):
    """A JSON object stored as :class:`SecretText`: serialised, then encrypted."""

    impl = Text
    cache_ok = True

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self._text = SecretText(what)

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self._text.process_bind_param(json.dumps(value), dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        plain = None if value is None else self._text.process_result_value(value, dialect)
        return None if plain is None else dict(json.loads(plain))


# -- rotation -----------------------------------------------------------------------------------

#: The encrypted columns, by table: what ``rotate-secrets`` rewrites (and migration 0008 encrypted).
ENCRYPTED_COLUMNS: dict[str, str] = {"psa_connections": "credentials", "chat_integrations": "webhook_url"}
#: What a column holds once ``--clear-unreadable`` resets it, as plain text before encryption.
CLEARED: dict[str, str] = {"psa_connections": "{}", "chat_integrations": ""}


@dataclass
class Rotation:
    """What ``rotate-secrets`` did: rows rewritten with the first key, rows already under it, and
    rows no key reads (``(table, account_id)``; reset to empty when asked to clear them)."""

    rewritten: int = 0
    current: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    cleared: int = 0


def _raw(name: str) -> TableClause:
    """The table with its secret column as plain text: rotation handles tokens, not values."""
    return table(name, column("id"), column("account_id"), column(ENCRYPTED_COLUMNS[name], Text))


async def rotate(
    engine: AsyncEngine, keys: Sequence[str], *, batch_size: int = 100, clear_unreadable: bool = False
) -> Rotation:
    """Re-encrypt every secret with ``keys[0]``, ``batch_size`` rows per transaction.

    ``engine`` must be in row-level security's system scope (the CLI's is): every account's rows.

    Idempotent: a token the first key already opens is left as it is, so a second run (or one
    after an interrupted run) rewrites nothing it did before. Each row is written only if it still
    holds the token that was read (compare-and-set): an admin's save meanwhile, already under the
    first key, wins. Rows no key opens are reported, and with ``clear_unreadable`` reset to an
    empty value (no credentials, no webhook URL) for their admins to set again.
    """
    newest, every = keyring(keys[:1]), keyring(keys)
    report = Rotation()
    for name, secret in ENCRYPTED_COLUMNS.items():
        raw = _raw(name)
        value = raw.c[secret]
        last: Any = None
        while True:
            async with engine.begin() as conn:
                query = select(raw.c.id, raw.c.account_id, value).order_by(raw.c.id).limit(batch_size)
                if last is not None:
                    query = query.where(raw.c.id > last)
                rows = (await conn.execute(query)).all()
                for row_id, account_id, token in rows:
                    try:
                        newest.decrypt(token.encode())
                        report.current += 1
                        continue
                    except InvalidToken:
                        pass
                    try:
                        rewritten, cleared = every.rotate(token.encode()).decode("ascii"), False
                    except InvalidToken:
                        report.unreadable.append((name, str(account_id)))
                        if not clear_unreadable:
                            continue
                        rewritten, cleared = newest.encrypt(CLEARED[name].encode()).decode("ascii"), True
                    written = await conn.execute(
                        update(raw).where(raw.c.id == row_id, value == token).values({secret: rewritten})
                    )
                    if written.rowcount:  # else saved meanwhile, under the first key
                        report.cleared += cleared
                        report.rewritten += not cleared
            if len(rows) < batch_size:
                break
            last = rows[-1][0]
    return report
