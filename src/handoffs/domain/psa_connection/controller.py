"""The account's PSA connection: admins and owners configure it."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from handoffs.config import Settings
from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.psa_connection.schemas import PsaConnectionIn, PsaConnectionOut
from handoffs.domain.psa_connection.service import PsaConnectionService
from handoffs.enums import Role
from handoffs.security.auth import requires_role


def provide_psa_connections(db_session: DbSession) -> PsaConnectionService:
    return PsaConnectionService(db_session)


class PsaConnectionController(Controller):
    path = "/api/v1/psa-connection"
    tags = ["psa"]
    guards = [requires_role(Role.admin, "configure the PSA connection")]
    dependencies = {"connections": Provide(provide_psa_connections, sync_to_thread=False)}

    @get("/")
    async def get_connection(
        self, user: CurrentUser, connections: NamedDependency[PsaConnectionService]
    ) -> PsaConnectionOut:
        """The account's PSA connection (credential values are never returned) and its last failed
        vendor call, with what the vendor answered."""
        return PsaConnectionOut.of(await connections.get(user))

    @put("/")
    async def put_connection(
        self,
        data: JSONBody[PsaConnectionIn],
        user: CurrentUser,
        settings: NamedDependency[Settings],
        connections: NamedDependency[PsaConnectionService],
    ) -> PsaConnectionOut:
        """Set the account's PSA vendor, URL, options and (write-only) credentials. The URLs must be
        https and name a public host (OUTBOUND_ALLOWED_HOSTS lists exceptions); 400 otherwise."""
        return PsaConnectionOut.of(await connections.put(user, data, settings.outbound_policy()))
