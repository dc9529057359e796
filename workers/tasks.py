"""arq tasks. Each is idempotent and calls the domain services."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from arq import Retry
from sqlalchemy import select

from backend.accounts.models import User, UserKind
from backend.alarms import automation as alarm_automation
from backend.billing import dunning, late_fees
from backend.billing.online import reconcile_pending
from backend.billing.service import generate_bills
from backend.db import local_today, utcnow
from backend.devices.offline import mark_silent_devices
from backend.notifications import service as notifications
from backend.notifications import sms
from backend.notifications.models import Announcement, AnnouncementEstate, Notification, SmsMessage
from backend.people.models import Occupancy
from backend.property.models import Estate, Unit
from backend.tickets import sla
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


async def accrue_late_fees(ctx: dict[str, Any]) -> dict[str, int]:
    """The daily late-fee job: today's (and any missed day's) late fees, one transaction per
    estate. Once per bill per day, however often it runs (unique key)."""
    runtime: WorkerRuntime = ctx["runtime"]
    today = local_today()
    async with runtime.sessionmaker() as session:
        estate_ids = list((await session.scalars(select(Estate.id).order_by(Estate.id))).all())
    lines = bills = 0
    for estate_id in estate_ids:
        async with runtime.sessionmaker() as session, session.begin():
            added, late = await late_fees.accrue_late_fees(
                session, today=today, estate_id=estate_id, catch_up_days=runtime.settings.late_fee_catch_up_days
            )
        lines += added
        bills += late
    log.info("billing.late_fees", day=today.isoformat(), lines=lines, bills=bills)
    return {"lines": lines, "bills": bills}


async def run_dunning(ctx: dict[str, Any], *, today: dt.date | None = None) -> dict[str, int]:
    """The daily dunning job (催缴): today's reminder steps for every estate, one transaction each.

    Safe to run twice or on two workers at once: a step is taken once per bill (unique key)
    and only the run that took it reminds. An estate that fails is logged and the whole run
    is retried later; the estates done already have nothing left to do then.
    """
    runtime: WorkerRuntime = ctx["runtime"]
    day = today or local_today()
    async with runtime.sessionmaker() as session:
        estate_ids = list((await session.scalars(select(Estate.id).order_by(Estate.id))).all())
    total = dunning.DunningReport()
    failed = 0
    for estate_id in estate_ids:
        try:
            async with runtime.sessionmaker() as session, session.begin():
                report = await dunning.remind_payers(
                    session=session,
                    estate_id=estate_id,
                    today=day,
                    days_before_due=runtime.settings.dunning_days_before_due,
                )
        except Exception:
            log.exception("dunning.estate_failed", estate_id=estate_id, day=day.isoformat())
            failed += 1
            continue
        total.notices += report.notices
        total.groups += report.groups
        total.notifications += report.notifications
        total.sms += report.sms
    result = {
        "estates": len(estate_ids),
        "failed": failed,
        "notices": total.notices,
        "reminders": total.groups,
        "notifications": total.notifications,
        "sms": total.sms,
    }
    log.info("dunning.run", day=day.isoformat(), **result)
    if failed:
        raise Retry(defer=dt.timedelta(minutes=10))
    return result


async def check_ticket_deadlines(ctx: dict[str, Any], *, now: dt.datetime | None = None) -> dict[str, int]:
    """Every two minutes: overdue tickets take their SLA steps (overdue → office manager →
    branch manager), then resolved tickets nobody rated for 7 days close.

    Safe to run twice or on two workers at once: each step is a unique row and only the run
    that inserted it notifies; a ticket is closed once (row lock, state machine)."""
    runtime: WorkerRuntime = ctx["runtime"]
    now = now or utcnow()
    interval = dt.timedelta(minutes=runtime.settings.ticket_escalation_interval_minutes)
    async with runtime.sessionmaker() as session, session.begin():
        report = await sla.escalate_overdue(session, now=now, interval=interval)
    async with runtime.sessionmaker() as session, session.begin():
        closed = await sla.close_unrated(session, now=now)
    result = {**report.as_dict(), "closed": closed}
    if any(result.values()):
        log.info("tickets.deadlines", **result)
    return result


async def check_device_presence(ctx: dict[str, Any], *, now: dt.datetime | None = None) -> dict[str, int]:
    """Every minute: devices silent longer than their offline time are marked offline and
    raise a MINOR device_offline alarm (once: a device already offline is skipped; its next
    message clears it). Two runs at once skip each other's devices (row locks)."""
    runtime: WorkerRuntime = ctx["runtime"]
    now = now or utcnow()
    offline = 0
    while True:
        async with runtime.sessionmaker() as session, session.begin():
            marked = await mark_silent_devices(
                session, now=now, default_after_seconds=runtime.settings.device_offline_after_seconds, bus=runtime.bus
            )
        offline += marked
        if marked < 500:
            break
    if offline:
        log.info("devices.offline", devices=offline)
    return {"offline": offline}


async def escalate_alarms(ctx: dict[str, Any], *, now: dt.datetime | None = None) -> dict[str, int]:
    """Every minute: alarms nobody acknowledged for N minutes are escalated to the branch
    manager, then a reminder every N minutes until acknowledged
    (``WUYE_ALARM_ESCALATION_MINUTES``). Each step is a unique row announced only by the run
    that inserted it, so repeated or concurrent runs announce it once."""
    runtime: WorkerRuntime = ctx["runtime"]
    now = now or utcnow()
    interval = dt.timedelta(minutes=runtime.settings.alarm_escalation_minutes)
    async with runtime.sessionmaker() as session, session.begin():
        report = await alarm_automation.escalate_unacknowledged(session, now=now, interval=interval)
    result = report.as_dict()
    if any(result.values()):
        log.info("alarms.escalation", **result)
    return result


# A text the gateway keeps refusing is given up (status FAILED) on this try.
SMS_MAX_TRIES = 6


def sms_retry_delay(job_try: int) -> dt.timedelta:
    """10 s, 20 s, 40 s, … up to 10 minutes between tries."""
    return dt.timedelta(seconds=min(600, 10 * 2 ** (job_try - 1)))


async def send_sms(ctx: dict[str, Any], *, sms_id: int) -> str:
    """Hand a queued text message to the SMS channel. Idempotent: a SENT message is not sent
    again. A failure is counted on the row and retried by arq, until the last try gives up."""
    runtime: WorkerRuntime = ctx["runtime"]
    job_try = int(ctx.get("job_try", 1))
    async with runtime.sessionmaker() as session, session.begin():
        outcome = await sms.send_queued(session, sms_id=sms_id, channel=runtime.sms, give_up=job_try >= SMS_MAX_TRIES)
    if outcome.status == "ERROR":
        raise Retry(defer=sms_retry_delay(job_try))
    return outcome.status


async def resend_stuck_sms(ctx: dict[str, Any]) -> dict[str, int]:
    """Every 10 minutes: messages still QUEUED a quarter of an hour after they were written —
    their job was lost or failed outside the gateway (a database outage) — are sent here, one
    transaction each. Rows being sent elsewhere are skipped (row lock); a SENT row never again."""
    runtime: WorkerRuntime = ctx["runtime"]
    cutoff = utcnow() - dt.timedelta(minutes=15)
    async with runtime.sessionmaker() as session:
        stuck = (
            await session.scalars(
                select(SmsMessage.id)
                .where(SmsMessage.status == sms.SmsStatus.QUEUED, SmsMessage.created_at < cutoff)
                .order_by(SmsMessage.id)
                .limit(500)
            )
        ).all()
    outcomes: dict[str, int] = {}
    for sms_id in stuck:
        async with runtime.sessionmaker() as session, session.begin():
            attempts = await session.scalar(select(SmsMessage.attempts).where(SmsMessage.id == sms_id)) or 0
            outcome = await sms.send_queued(
                session, sms_id=sms_id, channel=runtime.sms, give_up=attempts + 1 >= SMS_MAX_TRIES
            )
        outcomes[outcome.status] = outcomes.get(outcome.status, 0) + 1
    if stuck:
        log.info("sms.resent_stuck", **outcomes)
    return outcomes


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
