"""Request and response bodies of sign-in and the current user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from handoffs.domain.rows import FromRow
from handoffs.domain.text import CONTROLS, Text
from handoffs.enums import Role

#: One msgspec pattern per type, so this one refuses control characters itself (handoffs.domain.text);
#: blanks around it (a pasted address) are stripped by the service.
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=320,
        pattern=rf"^[^\S{CONTROLS}]*[^@\s{CONTROLS}]+@[^@\s{CONTROLS}]+[^\S{CONTROLS}]*$",
    ),
]


class UserOut(FromRow):
    id: UUID
    email: str
    name: str
    role: Role
    account_id: UUID
    team_id: UUID | None


class Colleague(FromRow):
    """A user of the caller's account, as a picker lists them (no email: pickers need no more)."""

    id: UUID
    name: str
    role: Role


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Annotated[Text, msgspec.Meta(min_length=1, max_length=1024)]


class LoginOut(msgspec.Struct):
    access_token: str
    user: UserOut
    expires_at: datetime
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


class SessionOut(msgspec.Struct):
    """The console's sign-in: the token itself stays in an HttpOnly cookie."""

    user: UserOut
    csrf_token: str
    expires_at: datetime


class LoggedOut(msgspec.Struct):
    detail: str = "Signed out"
