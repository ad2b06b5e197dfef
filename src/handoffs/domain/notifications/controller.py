"""HTTP surface of the bell."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery

from handoffs.deps import CurrentUser, DbSession
from handoffs.domain.notifications.schemas import NotificationOut, UnreadCount
from handoffs.domain.notifications.service import NotificationService


def provide_notification_service(db_session: DbSession) -> NotificationService:
    return NotificationService(db_session)


class NotificationController(Controller):
    path = "/api/v1/notifications"
    tags = ["notifications"]
    dependencies = {
        "notifications": Provide(provide_notification_service, sync_to_thread=False),
    }

    @get("/")
    async def list_notifications(
        self,
        user: CurrentUser,
        notifications: NamedDependency[NotificationService],
        unread: FromQuery[bool] = False,
    ) -> list[NotificationOut]:
        """The caller's notifications, newest first (``?unread=true`` for unread only)."""
        rows = await notifications.list_for(user, unread_only=unread)
        return [NotificationOut.with_state(note, state, claimer) for note, state, claimer in rows]

    @get("/unread-count")
    async def unread_count(
        self, user: CurrentUser, notifications: NamedDependency[NotificationService]
    ) -> UnreadCount:
        """How many are unread: the number on the bell."""
        return UnreadCount(unread=await notifications.unread_count(user))

    @post("/{notification_id:uuid}/read", status_code=200)
    async def mark_read(
        self,
        notification_id: FromPath[UUID],
        user: CurrentUser,
        notifications: NamedDependency[NotificationService],
    ) -> NotificationOut:
        """Mark one notification as read."""
        return NotificationOut.with_state(*await notifications.mark_read(user, notification_id))

    @post("/read-all", status_code=200)
    async def mark_all_read(
        self, user: CurrentUser, notifications: NamedDependency[NotificationService]
    ) -> UnreadCount:
        """Mark every notification as read."""
        await notifications.mark_all_read(user)
        return UnreadCount(unread=0)
