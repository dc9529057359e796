"""In-app notifications and announcements.

A notification row is written in the business transaction; the ``notificationAdded``
event is published after commit, and delivery to other channels (SMS, push) goes through
the outbox to the worker.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.db import utcnow
from backend.notifications.models import Announcement, AnnouncementEstate, Notification
from backend.outbox import enqueue

NOTIFICATION_CHANNEL = "notifications"


_NEW_NOTIFICATION = insert(Notification).values(
    user_id=bindparam("user_id"),
    kind=bindparam("kind"),
    title=bindparam("title"),
    body=bindparam("body"),
    data=bindparam("data"),
    dedup_key=bindparam("dedup_key"),
)
# Built once (a statement built per call costs more than its round trip).
_NOTIFY = _NEW_NOTIFICATION.returning(Notification.id)
_NOTIFY_ONCE = _NEW_NOTIFICATION.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(Notification.id)


async def notify(
    session: AsyncSession,
    *,
    user_id: int,
    kind: str,
    title: str,
    body: str = "",
    data: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> int | None:
    """Write an in-app notification (once per ``dedup_key``) and owe its delivery via the outbox."""
    statement = _NOTIFY_ONCE if dedup_key is not None else _NOTIFY
    notification_id = await session.scalar(
        statement,
        {"user_id": user_id, "kind": kind, "title": title, "body": body, "data": data or {}, "dedup_key": dedup_key},
    )
    if notification_id is not None:
        await enqueue(
            session,
            task="deliver_notification",
            job_id=f"notification:{notification_id}",
            notification_id=notification_id,
        )
    return notification_id


async def mark_read(session: AsyncSession, *, user_id: int, ids: list[int] | None) -> int:
    """Mark the user's notifications read (all when ``ids`` is None); returns how many changed."""
    statement = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    if ids is not None:
        statement = statement.where(Notification.id.in_(ids))
    result = await session.execute(statement.values(read_at=utcnow()).returning(Notification.id))
    return len(result.all())


async def unread_count(session: AsyncSession, user_id: int) -> int:
    from sqlalchemy import func

    return int(
        await session.scalar(
            select(func.count()).where(Notification.user_id == user_id, Notification.read_at.is_(None))
        )
        or 0
    )


async def publish_announcement(
    session: AsyncSession,
    *,
    title: str,
    body: str,
    category: str,
    estate_ids: list[int],
    expires_at: dt.datetime | None,
    published_by_id: int,
    notify_residents: bool,
    request_id: str | None = None,
) -> Announcement:
    announcement = Announcement(
        title=title, body=body, category=category, expires_at=expires_at, published_by_id=published_by_id
    )
    session.add(announcement)
    await session.flush()
    await session.execute(
        insert(AnnouncementEstate), [{"announcement_id": announcement.id, "estate_id": e} for e in estate_ids]
    )
    await audit.record(
        session,
        actor_user_id=published_by_id,
        action="announcement.publish",
        target_type="Announcement",
        target_id=announcement.id,
        request_id=request_id,
        detail={"estates": estate_ids, "notify": notify_residents},
    )
    if notify_residents:
        # Fan-out to thousands of residents is the worker's job, not the request's.
        await enqueue(
            session,
            task="notify_announcement",
            job_id=f"announcement:{announcement.id}",
            announcement_id=announcement.id,
        )
    return announcement
