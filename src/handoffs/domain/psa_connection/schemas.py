"""The account's PSA connection as the API shows and takes it: credentials are write-only."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from handoffs.db.models import PsaConnection
from handoffs.domain.text import CONTROLS, Text
from handoffs.enums import PsaVendor

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


class PsaConnectionOut(msgspec.Struct):
    vendor: PsaVendor
    base_url: str
    settings: dict[str, Any]
    enabled: bool
    credentials_set: list[str]
    """Which credentials are stored (their names only: values are never returned)."""
    credentials_missing: list[str]

    @classmethod
    def of(cls, c: PsaConnection | None) -> PsaConnectionOut:
        if c is None:
            return cls(PsaVendor.none, "", {}, False, [], [])
        stored = sorted(k for k, v in (c.credentials or {}).items() if v)
        missing = [n for n in CREDENTIAL_NAMES[c.vendor] if n not in stored and n not in (c.settings or {})]
        return cls(c.vendor, c.base_url, dict(c.settings or {}), c.enabled, stored, missing)
