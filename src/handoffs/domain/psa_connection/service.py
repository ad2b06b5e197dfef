"""An account's PSA connection: read it, and set it (credentials are write-only)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import PsaConnection, User
from handoffs.domain.psa_connection.schemas import LAST_ERROR_KEY, RESERVED_PREFIX, PsaConnectionIn
from handoffs.enums import PsaVendor
from handoffs.errors import BadRequest
from handoffs.integrations.outbound import OutboundPolicy

#: What a PSA address looks like, for the 400 that refuses one.
EXAMPLE_URL = "https://acme.halopsa.com"


class PsaConnectionService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def get(self, user: User) -> PsaConnection | None:
        connection: PsaConnection | None = await self.db.scalar(
            select(PsaConnection).where(PsaConnection.account_id == user.account_id)
        )
        return connection

    async def put(self, user: User, data: PsaConnectionIn, policy: OutboundPolicy) -> PsaConnection:
        """Set vendor, URL, options and, when given, the credentials; one row per account.

        The addresses the worker will post credentials to (``base_url``, Halo's
        ``settings.auth_url``) must pass the outbound ``policy``: a 400 naming the field.
        """
        if data.vendor != PsaVendor.none and not data.base_url:
            raise BadRequest("base_url is required for a PSA vendor")
        reserved = sorted(k for k in data.settings if k.startswith(RESERVED_PREFIX))
        if reserved:
            raise BadRequest(f"settings names may not start with '{RESERVED_PREFIX}' ({', '.join(reserved)})")
        base_url = data.base_url
        settings = dict(data.settings)
        try:
            if base_url:
                base_url = policy.check_url(base_url, "base_url", example=EXAMPLE_URL, max_length=500)
            if "auth_url" in settings:
                settings["auth_url"] = policy.check_url(
                    str(settings["auth_url"]),
                    "settings.auth_url",
                    example=f"{EXAMPLE_URL}/auth",
                    max_length=500,
                )
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        connection = await self.get(user)
        if connection is None:
            connection = PsaConnection(account_id=user.account_id, credentials={})
            self.db.add(connection)
        connection.vendor = data.vendor
        connection.base_url = base_url
        if LAST_ERROR_KEY in (connection.settings or {}):  # the admins may still want to read it
            settings[LAST_ERROR_KEY] = connection.settings[LAST_ERROR_KEY]
        connection.settings = settings
        connection.enabled = data.enabled
        if data.credentials is not None:
            connection.credentials = dict(data.credentials)
        await self.db.commit()
        return connection
