"""What follows an alarm change: work orders, notifications, the live event, escalation.

``after_alarm_change`` runs in the transaction that made the change (the MQTT ingest after
every raise and clear, the API after acknowledge, clear and comment):

- every change is published on ``ALARM_CHANNEL`` once the transaction commits;
- a RAISED alarm of severity CRITICAL or MAJOR opens one ALARM ticket (priority URGENT for
  CRITICAL, HIGH for MAJOR; channel SYSTEM; the category by the alarm type) linked through
  ``alarms.ticket_id`` — dispatched at once where the estate auto-assigns tickets — and tells
  the estate's supervisors (the users holding ``supervisor``
  at the estate's office or any org unit above it) in the app and by SMS — once per alarm and
  user (dedup keys), so a retried message notifies nobody twice.

``escalate_unacknowledged`` (the ``escalate_alarms`` job, every minute): an alarm still ACTIVE
N minutes after it was first seen (``WUYE_ALARM_ESCALATION_MINUTES``) takes step 1 — the branch
manager(s) are told (ESCALATED event) — and then a step every further N minutes (REMINDED
events, to the branch managers and the estate's supervisors) until it is acknowledged. A step
is an ``alarm_escalations`` row, unique per (alarm, step), inserted ON CONFLICT DO NOTHING …
RETURNING: only the run that inserted a row announces it, so retried, duplicated and
concurrent runs announce each step once. A run that finds an alarm late takes step 1 (if not
yet taken) and the step due now, not every step missed in between.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from authz.models import CasbinRule
from backend.accounts.models import User
from backend.alarms.models import Alarm, AlarmEscalation, AlarmEvent, AlarmEventKind, AlarmSeverity, AlarmStatus
from backend.alarms.service import ALARM_CHANNEL, AlarmChange
from backend.db import memo, to_global_id
from backend.events import EventBus, publish_after_commit
from backend.notifications import sms
from backend.notifications.service import notify
from backend.people.models import Person
from backend.property.models import Estate, OrgUnit
from backend.tickets import dispatch
from backend.tickets.models import TicketChannel, TicketKind, TicketPriority
from backend.tickets.service import NewTicket, open_ticket

TICKET_SEVERITIES = {AlarmSeverity.CRITICAL: TicketPriority.URGENT, AlarmSeverity.MAJOR: TicketPriority.HIGH}

# Alarm type → ticket category code (DEFAULT_CATEGORIES); anything else is "security".
CATEGORY_BY_TYPE = {
    "water_leak": "plumbing",
    "over_temperature": "electrical",
    "elevator_trapped": "elevator",
    "door_forced": "doors_locks",
    "device_offline": "electrical",
}
DEFAULT_CATEGORY = "security"

TYPE_WORDS = {
    "smoke": "烟感报警",
    "fire": "火警",
    "water_leak": "漏水",
    "over_temperature": "温度过高",
    "elevator_trapped": "电梯困人",
    "door_forced": "门被强行打开",
    "device_offline": "设备离线",
    "access_denied_burst": "门禁多次拒绝",
}
SEVERITY_WORDS = {
    AlarmSeverity.CRITICAL: "紧急",
    AlarmSeverity.MAJOR: "重要",
    AlarmSeverity.MINOR: "次要",
    AlarmSeverity.WARNING: "提示",
}
STEPS_PER_RUN = 1000


def type_words(alarm_type: str) -> str:
    return TYPE_WORDS.get(alarm_type, alarm_type)


async def after_alarm_change(session: AsyncSession, change: AlarmChange, *, bus: EventBus) -> None:
    """Publish the change after commit; a new CRITICAL or MAJOR alarm opens its work order and
    tells the estate's supervisors. In the caller's transaction."""
    publish_after_commit(session, bus, ALARM_CHANNEL, change.message())
    alarm = change.alarm
    if change.kind is not AlarmEventKind.RAISED or alarm.severity not in TICKET_SEVERITIES:
        return
    cache = memo(session)
    estate: Estate | None = cache.get(("estate", alarm.estate_id)) if cache is not None else None
    if estate is None:
        estate = await session.get_one(Estate, alarm.estate_id)
        if cache is not None:
            cache[("estate", alarm.estate_id)] = estate
    if alarm.ticket_id is None:
        ticket = await open_ticket(
            session,
            NewTicket(
                estate=estate,
                kind=TicketKind.ALARM,
                category_code=CATEGORY_BY_TYPE.get(alarm.type, DEFAULT_CATEGORY),
                title=f"{SEVERITY_WORDS[alarm.severity]}告警：{type_words(alarm.type)}"[:120],
                description="\n".join(x for x in (alarm.message, f"设备 {alarm.device_id}") if x),
                channel=TicketChannel.SYSTEM,
                priority=TICKET_SEVERITIES[alarm.severity],
                location=alarm.device_id,
                asset_id=alarm.asset_id,
            ),
            actor_id=None,
        )
        await session.execute(update(Alarm).where(Alarm.id == alarm.id).values(ticket_id=ticket.id))
        alarm.ticket_id = ticket.id
        # Dispatched like any reported ticket: where the estate auto-assigns, a technician has
        # it (and is told) before the supervisor's phone buzzes.
        await dispatch.after_submit(session, ticket, actor_id=None)
    supervisors, phones = await _supervisors_to_tell(session, estate.org_path)
    params = _params(alarm, estate)
    data = {"alarmId": to_global_id("Alarm", alarm.id), "type": alarm.type, "severity": alarm.severity.name}
    template = sms.TEMPLATES["alarm_raised"]
    for user_id in supervisors:
        dedup = f"alarm_raised:{alarm.id}:{user_id}"
        body = template.render(params)
        await notify(session, user_id=user_id, kind="alarm_raised", title=template.title, body=body, data=data,
                     dedup_key=dedup)  # fmt: skip
        phone = phones.get(user_id)
        if phone:
            await sms.queue_sms(session, phone=phone, template="alarm_raised", params=params, dedup_key=dedup,
                                user_id=user_id)  # fmt: skip


async def _supervisors_to_tell(session: AsyncSession, estate_path: str) -> tuple[list[int], dict[int, str]]:
    """The estate's supervisors and their phones (read once per ingest batch: ``memo``)."""
    cache = memo(session)
    key = ("alarm_supervisors", estate_path)
    known: tuple[list[int], dict[int, str]] | None = cache.get(key) if cache is not None else None
    if known is None:
        supervisors = await supervisors_of(session, estate_path)
        known = (supervisors, await _phones(session, set(supervisors)))
        if cache is not None:
            cache[key] = known
    return known


def _params(alarm: Alarm, estate: Estate, minutes: int | None = None) -> dict[str, str]:
    params = {
        "place": estate.name,
        "device": alarm.device_id,
        "severity": SEVERITY_WORDS[alarm.severity],
        "type": type_words(alarm.type),
        "message": alarm.message or type_words(alarm.type),
    }
    if minutes is not None:
        params["minutes"] = str(minutes)
    return params


def ancestor_paths(org_path: str) -> list[str]:
    """``/1/4/9/`` → ``['/1/', '/1/4/', '/1/4/9/']``: the org unit and every unit above it."""
    parts = [p for p in org_path.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


async def _role_holders(session: AsyncSession, role: str, paths: list[str]) -> list[int]:
    if not paths:
        return []
    rows = await session.scalars(
        select(User.id)
        .join(CasbinRule, CasbinRule.v0 == "u:" + User.id.cast(String))
        .where(CasbinRule.ptype == "g", CasbinRule.v1 == role, CasbinRule.v2.in_(paths), User.is_active)
        .distinct()
        .order_by(User.id)
    )
    return list(rows)


async def supervisors_of(session: AsyncSession, estate_path: str) -> list[int]:
    """Active users holding ``supervisor`` at the estate's office or any org unit above it."""
    return await _role_holders(session, "supervisor", ancestor_paths(estate_path))


async def _phones(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(User.id, Person.phone).join(Person, Person.id == User.person_id).where(User.id.in_(user_ids))
    )
    return {user_id: phone for user_id, phone in rows if phone}


# escalation


@dataclass(slots=True)
class AlarmEscalationReport:
    escalated: int = 0  # step 1 taken
    reminded: int = 0  # later steps taken
    notifications: int = 0
    sms: int = 0
    steps: list[tuple[int, int]] = field(default_factory=list)  # (alarm id, step) taken by this run

    def as_dict(self) -> dict[str, int]:
        return {"escalated": self.escalated, "reminded": self.reminded, "notifications": self.notifications,
                "sms": self.sms}  # fmt: skip


async def escalate_unacknowledged(
    session: AsyncSession, *, now: dt.datetime, interval: dt.timedelta
) -> AlarmEscalationReport:
    """Take the escalation steps due at ``now`` and tell whom each concerns, in the caller's transaction."""
    report = AlarmEscalationReport()
    due = (
        await session.execute(
            select(Alarm.id, Alarm.first_seen_at)
            .where(Alarm.status == AlarmStatus.ACTIVE, Alarm.first_seen_at <= now - interval)
            .order_by(Alarm.id)
            .limit(STEPS_PER_RUN)
        )
    ).all()
    wanted = sorted({(alarm_id, s) for alarm_id, first_seen in due for s in (1, int((now - first_seen) / interval))})
    if not wanted:
        return report
    taken = (
        await session.execute(
            insert(AlarmEscalation)
            .values([{"alarm_id": alarm_id, "step": step, "notified_user_ids": []} for alarm_id, step in wanted])
            .on_conflict_do_nothing(index_elements=["alarm_id", "step"])
            .returning(AlarmEscalation.id, AlarmEscalation.alarm_id, AlarmEscalation.step)
        )
    ).all()
    if not taken:
        return report
    office = aliased(OrgUnit, name="office")
    alarms = {
        alarm.id: (alarm, estate, branch_path)
        for alarm, estate, branch_path in (
            await session.execute(
                select(Alarm, Estate, OrgUnit.path)
                .join(Estate, Estate.id == Alarm.estate_id)
                .join(office, office.id == Estate.org_unit_id)
                .outerjoin(OrgUnit, OrgUnit.id == office.parent_id)
                .where(Alarm.id.in_({row.alarm_id for row in taken}))
            )
        ).all()
    }
    managers: dict[str, list[int]] = {}
    supervisors: dict[str, list[int]] = {}
    for _alarm, estate, branch_path in alarms.values():
        if branch_path and branch_path not in managers:
            managers[branch_path] = await _role_holders(session, "manager", [branch_path])
        if estate.org_path not in supervisors:
            supervisors[estate.org_path] = await supervisors_of(session, estate.org_path)
    recipients: dict[int, list[int]] = {}
    for row in taken:
        alarm, estate, branch_path = alarms[row.alarm_id]
        users = list(managers.get(branch_path or "", []))
        if row.step > 1:
            users += [u for u in supervisors[estate.org_path] if u not in users]
        recipients[row.id] = users
    phones = await _phones(session, {u for users in recipients.values() for u in users})
    minutes = int(interval.total_seconds() // 60)
    notified: list[dict[str, Any]] = []
    for row in sorted(taken, key=lambda r: (r.alarm_id, r.step)):
        alarm, estate, _branch = alarms[row.alarm_id]
        users = recipients[row.id]
        kind = AlarmEventKind.ESCALATED if row.step == 1 else AlarmEventKind.REMINDED
        template = "alarm_escalated" if row.step == 1 else "alarm_reminder"
        session.add(
            AlarmEvent(
                alarm_id=alarm.id,
                kind=kind,
                actor_id=None,
                note="未确认，升级至分公司经理" if row.step == 1 else f"未确认提醒（第{row.step - 1}次）",
                data={"step": row.step, "notifiedUserIds": users},
            )
        )
        if row.step == 1:
            report.escalated += 1
        else:
            report.reminded += 1
        report.steps.append((alarm.id, row.step))
        params = _params(alarm, estate, minutes * row.step)
        data = {"alarmId": to_global_id("Alarm", alarm.id), "step": row.step}
        for user_id in users:
            dedup = f"alarm_escalation:{row.id}:{user_id}"
            title, body = sms.TEMPLATES[template].title, sms.render(template, params)
            if await notify(session, user_id=user_id, kind=template, title=title, body=body, data=data,
                            dedup_key=dedup):  # fmt: skip
                report.notifications += 1
            phone = phones.get(user_id)
            if phone and await sms.queue_sms(session, phone=phone, template=template, params=params,
                                             dedup_key=dedup, user_id=user_id):  # fmt: skip
                report.sms += 1
        notified.append({"id": row.id, "notified_user_ids": users})
    await session.execute(update(AlarmEscalation), notified)
    await session.flush()
    return report
