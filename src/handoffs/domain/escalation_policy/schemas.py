"""The escalation policy as the API shows and takes it."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Audience = Literal["seniors", "admins", "owners"]


class Level(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    after_seconds: Annotated[int, msgspec.Meta(ge=1, le=30 * 24 * 3600)]
    notify: Audience


class EscalationPolicyIn(msgspec.Struct, forbid_unknown_fields=True):
    levels: Annotated[list[Level], msgspec.Meta(min_length=1, max_length=5)]


class EscalationPolicyOut(msgspec.Struct):
    levels: list[Level]
    is_default: bool
    """True while the account has not set its own (the documented default applies)."""
