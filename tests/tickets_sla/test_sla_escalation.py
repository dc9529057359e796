"""SLA steps: overdue → assignee, +interval → office manager, +2 intervals → branch manager —
each once, however often and however concurrently the job runs; unrated resolutions close."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sla_support import Dispatch, escalations, events, notifications_about, step, submit, texts_to
from sqlalchemy import select, update

from backend.db import utcnow
from backend.tickets import sla
from backend.tickets.lifecycle import Action
from backend.tickets.models import Ticket, TicketEventType, TicketPriority, TicketStatus
from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings
from workers.tasks import check_ticket_deadlines

INTERVAL = dt.timedelta(minutes=30)
MIN = dt.timedelta(minutes=1)


async def _run(runtime: Any, dispatch: Dispatch, at: dt.datetime) -> sla.EscalationReport:
    async with runtime.sessionmaker() as session, session.begin():
        return await sla.escalate_overdue(session, now=at, interval=INTERVAL, estate_id=dispatch.x.estate.id)


async def test_an_urgent_ticket_not_started_escalates_level_by_level_once(runtime: Any, dispatch: Dispatch) -> None:
    # given an URGENT ticket (respond within 30 min, resolve within 4 h) assigned to t1 at t0
    t0 = utcnow() - dt.timedelta(days=1)
    ticket = await submit(runtime, dispatch.x.estate, priority=TicketPriority.URGENT, now=t0)
    t1, mx, branch = dispatch.users["t1"], dispatch.users["mx"], dispatch.branch_manager_id
    assert ticket.assignee_id == t1
    assert ticket.response_due_at == t0 + dt.timedelta(minutes=30)
    # when the job runs just before the response deadline
    await _run(runtime, dispatch, t0 + 29 * MIN)
    # then nothing happened
    assert await escalations(runtime, ticket.id) == []
    # when it runs past the deadline, twice
    first = await _run(runtime, dispatch, t0 + 31 * MIN)
    again = await _run(runtime, dispatch, t0 + 32 * MIN)
    # then level 1 once: an OVERDUE event, and t1 told in the app and by SMS
    assert (first.overdue, first.escalated, first.notifications, first.sms) == (1, 0, 1, 1)
    assert (again.overdue, again.escalated, again.notifications, again.sms) == (0, 0, 0, 0)
    assert await escalations(runtime, ticket.id) == [("RESPONSE", 1, [t1])]
    (overdue,) = await events(runtime, ticket.id, TicketEventType.OVERDUE)
    assert (overdue.actor_id, overdue.data["deadline"], overdue.data["level"]) == (None, "RESPONSE", 1)
    assert [n.kind for n in await notifications_about(runtime, ticket, t1)] == ["ticket_assigned", "ticket_overdue"]
    assert [m.template for m in await texts_to(runtime, t1) if ticket.number in m.body] == [
        "ticket_assigned", "ticket_overdue"]  # fmt: skip
    assert await notifications_about(runtime, ticket, mx) == []
    # when one interval has passed since the deadline
    await _run(runtime, dispatch, t0 + 61 * MIN)
    # then level 2: the office manager, once
    assert (await escalations(runtime, ticket.id))[1:] == [("RESPONSE", 2, [mx])]
    assert [n.kind for n in await notifications_about(runtime, ticket, mx)] == ["ticket_escalated"]
    assert await notifications_about(runtime, ticket, branch) == []
    # when two intervals have passed, and the job runs again
    await _run(runtime, dispatch, t0 + 91 * MIN)
    await _run(runtime, dispatch, t0 + 95 * MIN)
    # then level 3: the branch manager, once
    assert (await escalations(runtime, ticket.id))[2:] == [("RESPONSE", 3, [branch])]
    assert [n.kind for n in await notifications_about(runtime, ticket, branch)] == ["ticket_escalated"]
    assert [e.data["level"] for e in await events(runtime, ticket.id, TicketEventType.ESCALATED)] == [2, 3]
    # when the work starts late and the job runs on until just before the resolution deadline
    await step(runtime, ticket.id, Action.START, t0 + 100 * MIN)
    await _run(runtime, dispatch, t0 + 239 * MIN)
    # then the response deadline takes no further step, the resolution one none yet
    assert len(await escalations(runtime, ticket.id)) == 3
    # when the resolution deadline passes
    await _run(runtime, dispatch, t0 + 241 * MIN)
    # then its own level 1
    assert (await escalations(runtime, ticket.id))[3:] == [("RESOLUTION", 1, [t1])]


async def test_an_unassigned_overdue_ticket_goes_to_the_service_desk(runtime: Any, dispatch: Dispatch) -> None:
    # given a ticket nobody could be assigned (no elevator technician)
    t0 = utcnow() - dt.timedelta(days=1)
    ticket = await submit(runtime, dispatch.x.estate, category="elevator", priority=TicketPriority.HIGH, now=t0)
    assert ticket.assignee_id is None
    # when its response deadline (2 h) passes
    await _run(runtime, dispatch, t0 + dt.timedelta(hours=2, minutes=1))
    # then the office's customer service hears of it
    cs = dispatch.users["cs"]
    assert await escalations(runtime, ticket.id) == [("RESPONSE", 1, [cs])]
    assert [n.kind for n in await notifications_about(runtime, ticket, cs)] == ["ticket_overdue"]


async def test_a_late_run_takes_every_step_due_once_and_closed_tickets_take_none(
    runtime: Any, dispatch: Dispatch
) -> None:
    # given an URGENT ticket left alone for a day, and one cancelled before its deadlines
    t0 = utcnow() - dt.timedelta(days=1)
    late = await submit(runtime, dispatch.x.estate, priority=TicketPriority.URGENT, now=t0)
    cancelled = await submit(runtime, dispatch.x.estate, priority=TicketPriority.URGENT, now=t0)
    await step(runtime, cancelled.id, Action.CANCEL, t0 + 5 * MIN)
    # when the job first runs a day later
    report = await _run(runtime, dispatch, t0 + dt.timedelta(days=1))
    # then the late ticket took all six steps at once, the cancelled one none
    assert sorted((d, level) for d, level, _ in await escalations(runtime, late.id)) == [
        ("RESOLUTION", 1), ("RESOLUTION", 2), ("RESOLUTION", 3), ("RESPONSE", 1), ("RESPONSE", 2), ("RESPONSE", 3)]  # fmt: skip
    assert (report.overdue, report.escalated) == (2, 4)
    assert await escalations(runtime, cancelled.id) == []
    assert await events(runtime, cancelled.id, TicketEventType.OVERDUE, TicketEventType.ESCALATED) == []


async def test_concurrent_runs_take_each_step_once(runtime: Any, dispatch: Dispatch) -> None:
    # given three overdue tickets
    t0 = utcnow() - dt.timedelta(days=1)
    tickets = [await submit(runtime, dispatch.x.estate, priority=TicketPriority.URGENT, now=t0) for _ in range(3)]
    # when two workers run the job at the same moment
    reports = await asyncio.gather(*(_run(runtime, dispatch, t0 + 31 * MIN) for _ in range(2)))
    # then each ticket took level 1 once, and its assignee was told once
    assert sorted(r.overdue for r in reports) == [0, 3]
    assert sum(r.notifications for r in reports) == 3
    for ticket in tickets:
        assert [level for _, level, _ in await escalations(runtime, ticket.id)] == [1]
        assert len(await events(runtime, ticket.id, TicketEventType.OVERDUE)) == 1
        kinds = [n.kind for n in await notifications_about(runtime, ticket, ticket.assignee_id or 0)]
        assert kinds == ["ticket_assigned", "ticket_overdue"]


async def _resolved(runtime: Any, dispatch: Dispatch, resolved_at: dt.datetime, rating: int | None = None) -> Ticket:
    ticket = await submit(runtime, dispatch.x.estate, now=resolved_at - dt.timedelta(hours=2))
    await step(runtime, ticket.id, Action.START, resolved_at - dt.timedelta(hours=1))
    resolved = await step(runtime, ticket.id, Action.RESOLVE, resolved_at, resolution="更换水管")
    if rating is not None:
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(rating=rating))
    return resolved


async def _status(runtime: Any, ticket_id: int) -> TicketStatus:
    async with runtime.sessionmaker() as session:
        status = await session.scalar(select(Ticket.status).where(Ticket.id == ticket_id))
    assert status is not None
    return status


async def test_resolved_tickets_nobody_rated_close_after_seven_days(runtime: Any, dispatch: Dispatch) -> None:
    # given tickets resolved 8 days ago (unrated, rated) and 6 days ago (unrated)
    now = utcnow()
    old = await _resolved(runtime, dispatch, now - dt.timedelta(days=8))
    rated = await _resolved(runtime, dispatch, now - dt.timedelta(days=8), rating=4)
    recent = await _resolved(runtime, dispatch, now - dt.timedelta(days=6))
    # when the job runs twice (and once more concurrently)
    closed = []
    for _ in range(2):
        async with runtime.sessionmaker() as session, session.begin():
            closed.append(await sla.close_unrated(session, now=now, estate_id=dispatch.x.estate.id))

    async def run() -> int:
        async with runtime.sessionmaker() as session, session.begin():
            return await sla.close_unrated(session, now=now, estate_id=dispatch.x.estate.id)

    closed += await asyncio.gather(run(), run())
    # then only the old unrated one closed, once, by nobody, with the note saying why
    assert closed == [1, 0, 0, 0]
    assert await _status(runtime, old.id) is TicketStatus.CLOSED
    assert await _status(runtime, rated.id) is TicketStatus.RESOLVED
    assert await _status(runtime, recent.id) is TicketStatus.RESOLVED
    (event,) = await events(runtime, old.id, TicketEventType.CLOSED)
    assert (event.actor_id, event.note, event.from_status) == (None, "7天未评价自动关闭", TicketStatus.RESOLVED)


async def test_the_worker_job_escalates_and_closes_and_is_scheduled_once_across_workers(
    settings: Any, runtime: Any, dispatch: Dispatch
) -> None:
    # given a ticket overdue now and one resolved 8 days ago
    overdue = await submit(runtime, dispatch.x.estate, priority=TicketPriority.URGENT,
                           now=utcnow() - dt.timedelta(hours=1))  # fmt: skip
    resolved = await _resolved(runtime, dispatch, utcnow() - dt.timedelta(days=8))
    worker = WorkerRuntime.build(settings)
    try:
        # when the cron job runs twice
        first = await check_ticket_deadlines({"runtime": worker})
        await check_ticket_deadlines({"runtime": worker})
    finally:
        await worker.close()
    # then
    assert first["overdue"] >= 1
    assert first["closed"] >= 1
    assert [(d, level) for d, level, _ in await escalations(runtime, overdue.id)] == [("RESPONSE", 1), ("RESPONSE", 2)]
    assert await _status(runtime, resolved.id) is TicketStatus.CLOSED
    (job,) = [j for j in WorkerSettings.cron_jobs if j.name == "cron:check_ticket_deadlines"]
    assert job.unique
    assert len(job.minute) == 30
