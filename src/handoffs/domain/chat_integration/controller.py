"""The account's chat notifications: admins and owners configure them and send a test message."""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from handoffs.config import Settings
from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.chat_integration.schemas import ChatIntegrationIn, ChatIntegrationOut, ChatTestOut
from handoffs.domain.chat_integration.service import ChatIntegrationService
from handoffs.enums import Role
from handoffs.errors import Detail
from handoffs.security.auth import requires_role


def provide_chat_integrations(db_session: DbSession) -> ChatIntegrationService:
    return ChatIntegrationService(db_session)


class ChatIntegrationController(Controller):
    path = "/api/v1/integrations/chat"
    tags = ["integrations"]
    guards = [requires_role(Role.admin, "configure chat notifications")]
    dependencies = {"integrations": Provide(provide_chat_integrations, sync_to_thread=False)}

    @get("/")
    async def get_chat(
        self, user: CurrentUser, integrations: NamedDependency[ChatIntegrationService]
    ) -> ChatIntegrationOut:
        """The account's chat integration (the webhook URL is never returned, only its host)."""
        return ChatIntegrationOut.of(await integrations.get(user))

    @put("/")
    async def put_chat(
        self,
        data: JSONBody[ChatIntegrationIn],
        user: CurrentUser,
        settings: NamedDependency[Settings],
        integrations: NamedDependency[ChatIntegrationService],
    ) -> ChatIntegrationOut:
        """Set where escalations are posted (Slack, Teams or none), the minimum priority and the
        (write-only) webhook URL: https, naming a public host (OUTBOUND_ALLOWED_HOSTS lists exceptions)."""
        return ChatIntegrationOut.of(await integrations.put(user, data, settings.outbound_policy()))

    @post(
        "/test",
        status_code=200,
        responses={
            409: ResponseSpec(
                data_container=Detail, generate_examples=False, description="No chat integration set up"
            )
        },
    )
    async def test_chat(
        self,
        user: CurrentUser,
        settings: NamedDependency[Settings],
        integrations: NamedDependency[ChatIntegrationService],
    ) -> ChatTestOut:
        """Send a test message to the stored webhook now (5 s timeout) and say how it went."""
        return await integrations.send_test(user, settings)
