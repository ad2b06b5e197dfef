"""An account's chat integration: read it, set it (one row per account), send a test message."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.config import Settings
from handoffs.db.models import ChatIntegration, User
from handoffs.domain.chat_integration.schemas import ChatIntegrationIn, ChatTestOut
from handoffs.enums import Priority
from handoffs.errors import BadRequest, Conflict
from handoffs.integrations.chat import (
    ChatError,
    ChatKind,
    ChatMessage,
    payload_for,
    post_message,
    validate_webhook_url,
)
from handoffs.integrations.outbound import OutboundPolicy

#: The test message is sent while the admin waits.
TEST_TIMEOUT_SECONDS = 5.0


class ChatIntegrationService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def get(self, user: User) -> ChatIntegration | None:
        integration: ChatIntegration | None = await self.db.scalar(
            select(ChatIntegration).where(ChatIntegration.account_id == user.account_id)
        )
        return integration

    async def put(self, user: User, data: ChatIntegrationIn, policy: OutboundPolicy) -> ChatIntegration:
        """Set kind, minimum priority and, when given, the URL (validated against the outbound
        ``policy``, never echoed back)."""
        current = await self.get(user)
        url: str | None = None
        if data.webhook_url is not None and data.webhook_url.strip():
            try:
                url = validate_webhook_url(data.webhook_url, policy)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        elif data.webhook_url is not None:
            url = ""  # an explicit empty string clears it
        stored = url if url is not None else (current.webhook_url if current else "")
        if data.kind != ChatKind.none and not stored:
            raise BadRequest(f"webhook_url is required to post to {data.kind.value.capitalize()}")
        min_priority = data.min_priority or (current.min_priority if current else Priority.normal)
        now = datetime.now(UTC)
        changes = {"kind": data.kind.value, "min_priority": min_priority, "updated_at": now}
        if url is not None:
            changes["webhook_url"] = url
        # One statement, so two first PUTs racing both land (the later wins) instead of one 409.
        statement = (
            insert(ChatIntegration)
            .values(account_id=user.account_id, created_at=now, **{**changes, "webhook_url": stored})
            .on_conflict_do_update(index_elements=[ChatIntegration.account_id], set_=changes)
            .returning(ChatIntegration)
            .execution_options(populate_existing=True)
        )
        integration = (await self.db.scalars(statement)).one()
        await self.db.commit()
        return integration

    async def send_test(
        self, user: User, settings: Settings, http: httpx.AsyncClient | None = None
    ) -> ChatTestOut:
        """Post a test message to the stored webhook now and say how it went: in full, with what the
        service answered (only admins and owners ask)."""
        integration = await self.get(user)
        if integration is None or integration.kind == ChatKind.none or not integration.webhook_url:
            raise Conflict(
                "No chat integration is set up: PUT /api/v1/integrations/chat with a kind and webhook_url first."
            )
        message = ChatMessage(
            title="Test message from handoffs",
            priority="normal",
            creator=user.name,
            waiting="just raised",
            stage="Chat notifications reach this channel",
            link=f"{settings.public_url}/",
            link_label="Open handoffs",
        )
        payload = payload_for(integration.kind, message)
        try:
            if http is None:
                async with settings.outbound_policy().client(timeout=TEST_TIMEOUT_SECONDS) as client:
                    posted = await post_message(
                        client, integration.webhook_url, payload, timeout_seconds=TEST_TIMEOUT_SECONDS
                    )
            else:
                posted = await post_message(
                    http, integration.webhook_url, payload, timeout_seconds=TEST_TIMEOUT_SECONDS
                )
        except ChatError as exc:
            return ChatTestOut(ok=False, status_code=exc.status_code, error=exc.detail)
        return ChatTestOut(ok=True, status_code=posted.status_code)
