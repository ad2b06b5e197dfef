"""The account's PSA connection: admins and owners configure it."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.di import Provide
from litestar.params import JSONBody
from sqlalchemy import select

from handoffs.db.models import PsaConnection
from handoffs.deps import CurrentUser, DbSession, provide_user
from handoffs.domain.psa_connection.schemas import PsaConnectionIn, PsaConnectionOut
from handoffs.enums import PsaVendor, Role
from handoffs.errors import BadRequest
from handoffs.security.auth import requires_role


class PsaConnectionController(Controller):
    path = "/api/v1/psa-connection"
    tags = ["psa"]
    dependencies = {"user": Provide(provide_user)}
    guards = [requires_role(Role.admin, "configure the PSA connection")]

    @get("/")
    async def get_connection(self, user: CurrentUser, db_session: DbSession) -> PsaConnectionOut:
        """The account's PSA connection (credential values are never returned)."""
        connection = await db_session.scalar(
            select(PsaConnection).where(PsaConnection.account_id == user.account_id)
        )
        return PsaConnectionOut.of(connection)

    @put("/")
    async def put_connection(
        self, data: JSONBody[PsaConnectionIn], user: CurrentUser, db_session: DbSession
    ) -> PsaConnectionOut:
        """Set the account's PSA vendor, URL, options and (write-only) credentials."""
        if data.vendor != PsaVendor.none and not data.base_url:
            raise BadRequest("base_url is required for a PSA vendor")
        connection = await db_session.scalar(
            select(PsaConnection).where(PsaConnection.account_id == user.account_id)
        )
        if connection is None:
            connection = PsaConnection(account_id=user.account_id, credentials={})
            db_session.add(connection)
        connection.vendor = data.vendor
        connection.base_url = data.base_url
        connection.settings = dict(data.settings)
        connection.enabled = data.enabled
        if data.credentials is not None:
            connection.credentials = dict(data.credentials)
        await db_session.commit()
        return PsaConnectionOut.of(connection)
