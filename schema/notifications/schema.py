"""Notifications and announcements: queries, mutations and the notificationAdded subscription."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator

import strawberry
from sqlalchemy import select

from authz.scopes import scoped
from backend.notifications import models, service
from backend.property.models import Estate
from schema.accounts.types import NotificationType
from schema.core.errors import Forbidden, Unauthenticated, UserError, user_error
from schema.core.relay import Connection, try_decode_id
from schema.core.resolving import Info, scoped_connection, unit_of_work
from schema.notifications.types import AnnouncementType


@strawberry.input
class MarkNotificationsReadInput:
    ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Omit to mark all read.")


@strawberry.type
class MarkNotificationsReadPayload:
    marked_count: int = 0
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PublishAnnouncementInput:
    estate_ids: list[strawberry.ID]
    title: str
    body: str
    category: str = "general"
    expires_at: dt.datetime | None = None
    notify_residents: bool = False


@strawberry.type
class PublishAnnouncementPayload:
    announcement: AnnouncementType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AnnouncementFilter:
    estate_id: strawberry.ID | None = None
    category: str | None = None


@strawberry.type
class NotificationsQuery:
    @strawberry.field(description="Announcements the caller may see; residents only their estates' current ones.")
    async def announcements(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: AnnouncementFilter | None = None
    ) -> Connection[AnnouncementType]:
        statement = select(models.Announcement)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(
                    models.Announcement.id.in_(
                        select(models.AnnouncementEstate.announcement_id).where(
                            models.AnnouncementEstate.estate_id == try_decode_id(filter.estate_id, "Estate")
                        )
                    )
                )
            if filter.category:
                statement = statement.where(models.Announcement.category == filter.category)
        return await scoped_connection(info, models.Announcement, statement, first=first, after=after)


@strawberry.type
class NotificationsMutation:
    @strawberry.mutation(description="Mark the viewer's own notifications read.")
    async def mark_notifications_read(
        self, info: Info, input: MarkNotificationsReadInput
    ) -> MarkNotificationsReadPayload:
        ctx = info.context
        principal = ctx.require_principal()
        ids = None if input.ids is None else [i for i in (try_decode_id(g, "Notification") for g in input.ids) if i]
        async with unit_of_work(ctx):
            count = await service.mark_read(ctx.session, user_id=principal.user_id, ids=ids)
        return MarkNotificationsReadPayload(marked_count=count)

    @strawberry.mutation(description="Publish an announcement to estates in scope. Needs `Announcement publish`.")
    async def publish_announcement(self, info: Info, input: PublishAnnouncementInput) -> PublishAnnouncementPayload:
        ctx = info.context
        principal = ctx.require_principal()
        if not ctx.permissions.anywhere("Announcement", "publish"):
            raise Forbidden()
        wanted = {try_decode_id(g, "Estate") for g in input.estate_ids}
        if not input.estate_ids or None in wanted:
            return PublishAnnouncementPayload(
                errors=[user_error("INVALID_ESTATES", "Name one or more estates.", "estateIds")]
            )
        visible = (
            await ctx.session.scalars(scoped(select(Estate).where(Estate.id.in_(wanted)), Estate, ctx.permissions))
        ).all()
        if len(visible) != len(wanted):
            return PublishAnnouncementPayload(errors=[user_error("NOT_FOUND", "No such estate.", "estateIds")])
        if not all(ctx.permissions.allows_at("Announcement", "publish", e.org_path) for e in visible):
            raise Forbidden()
        if not input.title.strip() or not input.body.strip():
            return PublishAnnouncementPayload(errors=[user_error("REQUIRED", "Title and body are required.", "title")])
        if input.expires_at is not None and input.expires_at <= dt.datetime.now(dt.UTC):
            return PublishAnnouncementPayload(
                errors=[user_error("INVALID_EXPIRY", "Expiry lies in the past.", "expiresAt")]
            )
        async with unit_of_work(ctx):
            announcement = await service.publish_announcement(
                ctx.session,
                title=input.title.strip(),
                body=input.body,
                category=input.category,
                estate_ids=[e.id for e in visible],
                expires_at=input.expires_at,
                published_by_id=principal.user_id,
                notify_residents=input.notify_residents,
                request_id=ctx.request_id,
            )
        return PublishAnnouncementPayload(announcement=announcement)  # type: ignore[arg-type]


@strawberry.type
class NotificationsSubscription:
    @strawberry.subscription(description="The viewer's new in-app notifications as they are created.")
    async def notification_added(self, info: Info) -> AsyncGenerator[NotificationType, None]:
        ctx = info.context
        principal = ctx.principal
        if principal is None:
            raise Unauthenticated()
        async for event in ctx.runtime.bus.subscribe(f"{service.NOTIFICATION_CHANNEL}:{principal.user_id}"):
            async with ctx.runtime.sessionmaker() as session:
                notification = await session.scalar(
                    select(models.Notification).where(
                        models.Notification.id == event["id"], models.Notification.user_id == principal.user_id
                    )
                )
            if notification is not None:
                yield notification  # type: ignore[misc]
