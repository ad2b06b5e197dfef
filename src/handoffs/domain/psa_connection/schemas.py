"""The account's PSA connection as the API shows and takes it: credentials are write-only."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from handoffs.db.models import PsaConnection
from handoffs.domain.text import CONTROLS, Text
from handoffs.enums import PsaVendor

#: Setting names the service keeps for itself start with this; an admin's may not.
RESERVED_PREFIX = "_"
#: The last failed vendor call, as the worker (handoffs.jobs.psa) keeps it in ``settings``.
LAST_ERROR_KEY = "_last_error"

CREDENTIAL_NAMES: dict[PsaVendor, tuple[str, ...]] = {
    PsaVendor.none: (),
    PsaVendor.connectwise: ("company_id", "public_key", "private_key", "client_id"),
    PsaVendor.autotask: ("integration_code", "username", "secret"),
    PsaVendor.halo: ("client_id", "client_secret"),
}


class PsaConnectionIn(msgspec.Struct, forbid_unknown_fields=True):
    vendor: PsaVendor
    base_url: Annotated[str, msgspec.Meta(max_length=500, pattern=rf"^(https?://[^\s{CONTROLS}]+)?$")] = ""
    settings: dict[Text, Text | int] = {}
    credentials: (
        dict[Annotated[Text, msgspec.Meta(max_length=64)], Annotated[Text, msgspec.Meta(max_length=2000)]]
        | None
    ) = None
    """Omit to keep the stored credentials; send {} to clear them."""
    enabled: bool = True


class PsaFailure(msgspec.Struct):
    """The last PSA call that failed, as the worker recorded it (admins and owners only)."""

    at: str
    handoff_id: str
    step: str
    """``escalation_note``, ``escalation_status``, ``resolution_note`` or ``resolution_status``; ``credentials``
    when the stored credentials could not be decrypted (a wrong DATA_ENCRYPTION_KEY)."""
    reason: str
    """What the handoff shows every engineer: ``Halo refused the credentials (403)``."""
    detail: str
    """With what the vendor answered (at most 500 characters of it, credentials cut out)."""


class PsaConnectionOut(msgspec.Struct):
    vendor: PsaVendor
    base_url: str
    settings: dict[str, Any]
    enabled: bool
    credentials_set: list[str]
    """Which credentials are stored (their names only: values are never returned)."""
    credentials_missing: list[str]
    last_error: PsaFailure | None = None
    """The last failed vendor call (kept until another one fails)."""

    @classmethod
    def of(cls, c: PsaConnection | None) -> PsaConnectionOut:
        if c is None:
            return cls(PsaVendor.none, "", {}, False, [], [])
        settings = {k: v for k, v in (c.settings or {}).items() if not k.startswith(RESERVED_PREFIX)}
        stored = sorted(k for k, v in (c.credentials or {}).items() if v)
        missing = [n for n in CREDENTIAL_NAMES[c.vendor] if n not in stored and n not in settings]
        return cls(c.vendor, c.base_url, settings, c.enabled, stored, missing, _failure(c.settings))


def _failure(settings: dict[str, Any] | None) -> PsaFailure | None:
    try:
        return msgspec.convert((settings or {}).get(LAST_ERROR_KEY), PsaFailure | None)
    except msgspec.ValidationError:  # a shape an older worker wrote: not worth a 500
        return None
