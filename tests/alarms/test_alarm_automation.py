"""Automation: a new CRITICAL or MAJOR alarm opens exactly one ALARM ticket and tells the
estate's supervisors once (in the app and by SMS); a MINOR one does neither; an alarm nobody
acknowledges is escalated to the branch manager after N minutes and reminded every N minutes,
each step once however often and however concurrently the job runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from alarms_support import alarm_events, gid, raise_on, stored, user_id
from sqlalchemy import func, select, update

from backend.accounts.models import User
from backend.alarms.automation import after_alarm_change
from backend.alarms.models import AlarmEscalation, AlarmSeverity
from backend.alarms.service import acknowledge
from backend.db import to_global_id, utcnow
from backend.notifications.models import Notification, SmsMessage
from backend.people.models import Person
from backend.property.models import Estate, OrgUnit
from backend.tickets.models import Ticket, TicketChannel, TicketKind, TicketPriority, TicketStatus
from workers.settings import WorkerSettings
from workers.tasks import escalate_alarms

MIN = dt.timedelta(minutes=1)


async def _tickets(runtime: Any, device_id: str) -> list[Ticket]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(Ticket).where(Ticket.location == device_id))).all())


async def _notified(runtime: Any, username: str, alarm_id: int, kind: str) -> tuple[int, int]:
    """(notifications, text messages) of ``kind`` about the alarm to the user."""
    uid = await user_id(runtime, username)
    async with runtime.sessionmaker() as session:
        notes = (
            await session.scalars(
                select(Notification.id).where(
                    Notification.user_id == uid,
                    Notification.kind == kind,
                    Notification.data["alarmId"].astext == gid(alarm_id),
                )
            )
        ).all()
        texts = (
            await session.scalars(
                select(SmsMessage.id).where(
                    SmsMessage.user_id == uid, SmsMessage.template == kind, SmsMessage.dedup_key.like(f"%:{uid}")
                )
            )
        ).all()
        texts = [t for t in texts if t in await _texts_about(session, alarm_id, kind)]
    return len(notes), len(texts)


async def _texts_about(session: Any, alarm_id: int, kind: str) -> set[int]:
    if kind == "alarm_raised":
        prefix = f"alarm_raised:{alarm_id}:"
        return set((await session.scalars(select(SmsMessage.id).where(SmsMessage.dedup_key.startswith(prefix)))).all())
    steps = select(AlarmEscalation.id).where(AlarmEscalation.alarm_id == alarm_id)
    ids = [f"alarm_escalation:{s}:" for s in (await session.scalars(steps)).all()]
    rows = (await session.execute(select(SmsMessage.id, SmsMessage.dedup_key))).all()
    return {i for i, key in rows if any(key.startswith(p) for p in ids)}


async def _give_phones(runtime: Any, *usernames: str) -> None:
    """Staff accounts get a phone on their person, so texts can be owed to them."""
    async with runtime.sessionmaker() as session, session.begin():
        for username in usernames:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None
            if user.person_id is None:
                root = await session.scalar(select(OrgUnit.path).where(OrgUnit.parent_id.is_(None)).limit(1))
                person = Person(org_path=root, name=username, phone=f"139{uuid.uuid4().int % 10**8:08d}")
                session.add(person)
                await session.flush()
                user.person_id = person.id
            else:
                phone = await session.scalar(select(Person.phone).where(Person.id == user.person_id))
                if not phone:
                    await session.execute(
                        update(Person)
                        .where(Person.id == user.person_id)
                        .values(phone=f"139{uuid.uuid4().int % 10**8:08d}")
                    )


async def test_a_critical_alarm_opens_one_ticket_and_tells_the_supervisor_once(
    runtime: Any, devices: Callable[[], str]
) -> None:
    # given supervisors with phones
    await _give_phones(runtime, "supervisor.north", "supervisor.south")
    device = devices()
    # when a CRITICAL smoke alarm is raised, repeated, and the raise is handled a second time (a retry)
    change = await raise_on(runtime, "DEMO-A", device, severity=AlarmSeverity.CRITICAL, automate=True)
    await raise_on(runtime, "DEMO-A", device, severity=AlarmSeverity.CRITICAL, automate=True)
    async with runtime.sessionmaker() as session, session.begin():
        await after_alarm_change(session, change, bus=runtime.bus)
    # then exactly one ALARM ticket, URGENT, from the system, linked to the alarm
    (ticket,) = await _tickets(runtime, device)
    assert (ticket.kind, ticket.priority, ticket.channel) == (
        TicketKind.ALARM, TicketPriority.URGENT, TicketChannel.SYSTEM)  # fmt: skip
    assert (await stored(runtime, change.alarm.id)).ticket_id == ticket.id
    # and supervisor.north (supervisor of the branch above DEMO-A's office) told once, in the app and by SMS
    assert await _notified(runtime, "supervisor.north", change.alarm.id, "alarm_raised") == (1, 1)
    # and nobody outside the estate's org units
    assert await _notified(runtime, "supervisor.south", change.alarm.id, "alarm_raised") == (0, 0)


async def test_a_major_alarm_opens_a_high_priority_ticket_by_type(runtime: Any, devices: Callable[[], str]) -> None:
    # when
    device = devices()
    await raise_on(runtime, "DEMO-C", device, severity=AlarmSeverity.MAJOR, type_="water_leak", automate=True)
    # then
    (ticket,) = await _tickets(runtime, device)
    assert ticket.priority is TicketPriority.HIGH
    async with runtime.sessionmaker() as session:
        from backend.tickets.models import TicketCategory

        code = await session.scalar(select(TicketCategory.code).where(TicketCategory.id == ticket.category_id))
    assert code == "plumbing"


async def test_a_minor_alarm_opens_no_ticket_and_tells_nobody(runtime: Any, devices: Callable[[], str]) -> None:
    # when
    device = devices()
    change = await raise_on(runtime, "DEMO-A", device, severity=AlarmSeverity.MINOR, automate=True)
    # then
    assert await _tickets(runtime, device) == []
    assert (await stored(runtime, change.alarm.id)).ticket_id is None
    assert await _notified(runtime, "supervisor.north", change.alarm.id, "alarm_raised") == (0, 0)


async def _escalations(runtime: Any, alarm_id: int) -> list[tuple[int, list[int]]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(AlarmEscalation.step, AlarmEscalation.notified_user_ids)
            .where(AlarmEscalation.alarm_id == alarm_id)
            .order_by(AlarmEscalation.step)
        )
        return [(step, list(users)) for step, users in rows]


async def test_an_unacknowledged_alarm_escalates_once_per_step_until_acknowledged(
    runtime: Any, devices: Callable[[], str]
) -> None:
    # given a MAJOR alarm first seen at t0 (a past minute no other test uses), N = 5 minutes
    await _give_phones(runtime, "manager.north", "supervisor.north")
    assert runtime.settings.alarm_escalation_minutes == 5
    t0 = utcnow() - dt.timedelta(days=400, minutes=uuid.uuid4().int % 10_000)
    change = await raise_on(runtime, "DEMO-A", devices(), at=t0)
    alarm_id = change.alarm.id
    ctx = {"runtime": runtime}
    manager, supervisor = await user_id(runtime, "manager.north"), await user_id(runtime, "supervisor.north")
    # when the job runs before N minutes
    await escalate_alarms(ctx, now=t0 + 4 * MIN)
    # then nothing
    assert await _escalations(runtime, alarm_id) == []
    # when it runs after N minutes, twice
    await escalate_alarms(ctx, now=t0 + 5 * MIN)
    await escalate_alarms(ctx, now=t0 + 6 * MIN)
    # then step 1 once: the branch manager told in the app and by SMS, an ESCALATED event
    assert await _escalations(runtime, alarm_id) == [(1, [manager])]
    assert await _notified(runtime, "manager.north", alarm_id, "alarm_escalated") == (1, 1)
    assert await alarm_events(runtime, alarm_id) == ["RAISED", "ESCALATED"]
    # when two runs at once after 2N minutes
    await asyncio.gather(escalate_alarms(ctx, now=t0 + 10 * MIN), escalate_alarms(ctx, now=t0 + 10 * MIN))
    # then step 2 once: a reminder to the manager and the supervisors
    assert await _escalations(runtime, alarm_id) == [(1, [manager]), (2, [manager, supervisor])]
    assert await _notified(runtime, "manager.north", alarm_id, "alarm_reminder") == (1, 1)
    assert await _notified(runtime, "supervisor.north", alarm_id, "alarm_reminder") == (1, 1)
    assert await alarm_events(runtime, alarm_id) == ["RAISED", "ESCALATED", "REMINDED"]
    # when acknowledged, and the job runs after 3N minutes
    async with runtime.sessionmaker() as session, session.begin():
        await acknowledge(session, alarm_id, actor_id=supervisor)
    await escalate_alarms(ctx, now=t0 + 16 * MIN)
    # then no further step
    assert [s for s, _ in await _escalations(runtime, alarm_id)] == [1, 2]
    assert await alarm_events(runtime, alarm_id) == ["RAISED", "ESCALATED", "REMINDED", "ACKNOWLEDGED"]


async def test_a_late_run_takes_step_one_and_the_step_due_now(runtime: Any, devices: Callable[[], str]) -> None:
    # given an alarm nobody saw for 23 minutes and no run in between
    t0 = utcnow() - dt.timedelta(days=800, minutes=uuid.uuid4().int % 10_000)
    change = await raise_on(runtime, "DEMO-B", devices(), at=t0)
    # when
    await escalate_alarms({"runtime": runtime}, now=t0 + 23 * MIN)
    # then step 1 (escalation) and step 4 (the reminder due now), not every step missed
    assert [s for s, _ in await _escalations(runtime, change.alarm.id)] == [1, 4]


def test_the_escalation_job_runs_every_minute_once() -> None:
    (job,) = [j for j in WorkerSettings.cron_jobs if j.name.endswith("escalate_alarms")]
    assert job.unique
    assert job.minute is None


async def test_the_supervisor_sees_the_work_order_of_the_alarm(
    runtime: Any, devices: Callable[[], str], as_user: Any
) -> None:
    # given a CRITICAL alarm in DEMO-A that opened its work order
    device = devices()
    change = await raise_on(runtime, "DEMO-A", device, severity=AlarmSeverity.CRITICAL, automate=True)
    (ticket,) = await _tickets(runtime, device)
    query = "query($id: ID!) { node(id: $id) { ... on Alarm { ticket { number kind status } } } }"
    # when the estate's supervisor looks at the alarm
    north = await as_user("supervisor.north")
    seen = (await north.data(query, {"id": gid(change.alarm.id)}))["node"]
    # then the work order is there (read only: the matrix in tests/tickets says what they may do)
    assert seen["ticket"] == {"number": ticket.number, "kind": "ALARM", "status": ticket.status.name}
    # and a supervisor of other estates sees neither the alarm nor its work order
    south = await as_user("supervisor.south")
    assert (await south.data(query, {"id": gid(change.alarm.id)}))["node"] is None
    ticket_query = "query($id: ID!) { node(id: $id) { ... on Ticket { number } } }"
    assert (await south.data(ticket_query, {"id": to_global_id("Ticket", ticket.id)}))["node"] is None


async def test_the_work_order_is_dispatched_where_the_estate_auto_assigns(
    runtime: Any, devices: Callable[[], str]
) -> None:
    # given DEMO-A auto-assigns tickets (the demo's setting; tech.a is skilled in every category)
    async with runtime.sessionmaker() as session, session.begin():
        before = await session.scalar(select(Estate.auto_assign_tickets).where(Estate.code == "DEMO-A"))
        await session.execute(update(Estate).where(Estate.code == "DEMO-A").values(auto_assign_tickets=True))
    try:
        # when a CRITICAL alarm is raised there
        dispatched = devices()
        await raise_on(runtime, "DEMO-A", dispatched, severity=AlarmSeverity.CRITICAL, automate=True)
        # and another once the estate stops auto-assigning
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(update(Estate).where(Estate.code == "DEMO-A").values(auto_assign_tickets=False))
        waiting = devices()
        await raise_on(runtime, "DEMO-A", waiting, severity=AlarmSeverity.CRITICAL, automate=True)
    finally:
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(update(Estate).where(Estate.code == "DEMO-A").values(auto_assign_tickets=before))
    # then the first work order went to tech.a at once, who was told; the second waits, NEW
    (first,) = await _tickets(runtime, dispatched)
    (second,) = await _tickets(runtime, waiting)
    tech = await user_id(runtime, "tech.a")
    assert (first.status, first.assignee_id) == (TicketStatus.ASSIGNED, tech)
    assert (second.status, second.assignee_id) == (TicketStatus.NEW, None)
    async with runtime.sessionmaker() as session:
        told = await session.scalar(
            select(func.count()).select_from(Notification).where(
                Notification.user_id == tech, Notification.kind == "ticket_assigned",
                Notification.data["ticketId"].astext == to_global_id("Ticket", first.id))
        )  # fmt: skip
    assert told == 1
