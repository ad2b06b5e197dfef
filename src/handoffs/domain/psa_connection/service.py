"""An account's PSA connection: read it, and set it (credentials are write-only)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.db.models import PsaConnection, User
from handoffs.domain.psa_connection.schemas import PsaConnectionIn
from handoffs.enums import PsaVendor
from handoffs.errors import BadRequest


class PsaConnectionService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def get(self, user: User) -> PsaConnection | None:
        connection: PsaConnection | None = await self.db.scalar(
            select(PsaConnection).where(PsaConnection.account_id == user.account_id)
        )
        return connection

    async def put(self, user: User, data: PsaConnectionIn) -> PsaConnection:
        """Set vendor, URL, options and, when given, the credentials; one row per account."""
        if data.vendor != PsaVendor.none and not data.base_url:
            raise BadRequest("base_url is required for a PSA vendor")
        connection = await self.get(user)
        if connection is None:
            connection = PsaConnection(account_id=user.account_id, credentials={})
            self.db.add(connection)
        connection.vendor = data.vendor
        connection.base_url = data.base_url
        connection.settings = dict(data.settings)
        connection.enabled = data.enabled
        if data.credentials is not None:
            connection.credentials = dict(data.credentials)
        await self.db.commit()
        return connection
