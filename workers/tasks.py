"""arq tasks. Each is idempotent and calls the domain services."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from sqlalchemy import select

from backend.accounts.models import User, UserKind
from backend.billing.online import reconcile_pending
from backend.billing.service import generate_bills
from backend.db import local_today, utcnow
from backend.notifications import service as notifications
from backend.notifications.models import Announcement, AnnouncementEstate, Notification
from backend.people.models import Occupancy
from backend.property.models import Estate, Unit
from workers.runtime import WorkerRuntime

log = structlog.get_logger(__name__)


async def generate_monthly_bills(ctx: dict[str, Any]) -> dict[str, int]:
    """The monthly cron job: this month's bills for every estate, one transaction each.

    Safe to run twice or on two workers at once: each bill is made once (unique key).
    """
    runtime: WorkerRuntime = ctx["runtime"]
    month = local_today().replace(day=1)
    async with runtime.sessionmaker() as session:
        estates = list((await session.scalars(select(Estate).order_by(Estate.id))).all())
    created = skipped = 0
    for estate in estates:
        async with runtime.sessionmaker() as session, session.begin():
            report = await generate_bills(
                session=session, estate=estate, month=month, actor_id=None, request_id=f"cron:bills:{month:%Y-%m}"
            )
        created += report.created
        skipped += report.skipped
        if report.items_without_rate:
            log.warning("billing.items_without_rate", estate=estate.code, items=report.items_without_rate)
    log.info("billing.monthly_bills", month=f"{month:%Y-%m}", created=created, skipped=skipped)
    return {"estates": len(estates), "created": created, "skipped": skipped}


async def reconcile_online_payments(ctx: dict[str, Any]) -> dict[str, int]:
    """Every few minutes: ask the provider about PENDING payments whose callback has not come.

    Safe to run twice or on two workers at once: each payment is decided once, under its row lock.
    """
    runtime: WorkerRuntime = ctx["runtime"]
    report = await reconcile_pending(
        sessionmaker=runtime.sessionmaker,
        providers=runtime.payment_providers,
        older_than=dt.timedelta(seconds=runtime.settings.payment_reconcile_after_seconds),
        request_id=f"cron:reconcile:{utcnow():%Y-%m-%dT%H:%M}",
    )
    return report.as_dict()


async def deliver_notification(ctx: dict[str, Any], *, notification_id: int) -> str:
    """Push a committed notification to the viewer's live subscriptions (and later SMS/push)."""
    runtime: WorkerRuntime = ctx["runtime"]
    async with runtime.sessionmaker() as session:
        notification = await session.get(Notification, notification_id)
    if notification is None:
        return "missing"
    await runtime.bus.publish(f"{notifications.NOTIFICATION_CHANNEL}:{notification.user_id}", {"id": notification.id})
    return "delivered"


async def notify_announcement(ctx: dict[str, Any], *, announcement_id: int) -> int:
    """One in-app notification per resident of the announcement's estates (deduplicated)."""
    runtime: WorkerRuntime = ctx["runtime"]
    async with runtime.sessionmaker() as session, session.begin():
        announcement = await session.get(Announcement, announcement_id)
        if announcement is None:
            return 0
        user_ids = (
            await session.scalars(
                select(User.id)
                .distinct()
                .join(Occupancy, Occupancy.person_id == User.person_id)
                .join(Unit, Unit.id == Occupancy.unit_id)
                .join(AnnouncementEstate, AnnouncementEstate.estate_id == Unit.estate_id)
                .where(
                    AnnouncementEstate.announcement_id == announcement_id,
                    User.kind == UserKind.RESIDENT,
                    Occupancy.end_date.is_(None),
                )
            )
        ).all()
        for user_id in user_ids:
            await notifications.notify(
                session,
                user_id=user_id,
                kind="announcement",
                title=announcement.title,
                body=announcement.body[:500],
                data={"announcementId": announcement.id},
                dedup_key=f"announcement:{announcement.id}:{user_id}",
            )
    return len(user_ids)
