"""Auto-assignment (派单): the least loaded skilled technician of the estate's own office, told once."""

from __future__ import annotations

import asyncio
from typing import Any

from sla_support import Dispatch, events, notifications_about, open_count, submit, texts_to
from sqlalchemy import select

from backend.accounts.models import User
from backend.notifications.models import Notification
from backend.property.models import Estate
from backend.seed_dispatch import ensure_demo_dispatch
from backend.tickets import dispatch as dispatching
from backend.tickets.models import TechnicianSkill, TicketEventType, TicketStatus


async def test_tickets_go_to_the_least_loaded_skilled_technician_of_the_office(
    runtime: Any, dispatch: Dispatch
) -> None:
    # given office X: t1 and t2 skilled in plumbing (t3 is not; ty, skilled, works in office Y)
    # when four plumbing tickets are submitted one after the other
    tickets = [await submit(runtime, dispatch.x.estate) for _ in range(4)]
    # then they alternate, ties going to the lower user id, and nobody else gets one
    assert [dispatch.name_of(t.assignee_id) for t in tickets] == ["t1", "t2", "t1", "t2"]
    assert all(t.status is TicketStatus.ASSIGNED for t in tickets)
    assert await open_count(runtime, dispatch.users["t3"]) == 0
    assert await open_count(runtime, dispatch.users["ty"]) == 0
    (assigned,) = await events(runtime, tickets[0].id, TicketEventType.ASSIGNED)
    assert (assigned.actor_id, assigned.note, assigned.from_status, assigned.to_status) == (
        None, "自动派单", TicketStatus.NEW, TicketStatus.ASSIGNED)  # fmt: skip


async def test_a_category_only_one_technician_knows_goes_to_them_however_loaded(
    runtime: Any, dispatch: Dispatch
) -> None:
    # given t1 is busier than t2
    await submit(runtime, dispatch.x.estate)
    await submit(runtime, dispatch.x.estate)
    await submit(runtime, dispatch.x.estate)
    assert await open_count(runtime, dispatch.users["t1"]) == 2
    # when an electrical ticket comes in
    ticket = await submit(runtime, dispatch.x.estate, category="electrical")
    # then only t1 has the skill
    assert dispatch.name_of(ticket.assignee_id) == "t1"


async def test_without_a_skilled_technician_the_ticket_stays_new_and_nobody_is_told(
    runtime: Any, dispatch: Dispatch
) -> None:
    # given nobody in office X knows elevators
    # when an elevator ticket is submitted
    ticket = await submit(runtime, dispatch.x.estate, category="elevator")
    # then it waits for the service desk
    assert ticket.status is TicketStatus.NEW
    assert ticket.assignee_id is None
    assert await events(runtime, ticket.id, TicketEventType.ASSIGNED) == []
    for user_id in dispatch.users.values():
        assert await notifications_about(runtime, ticket, user_id) == []


async def test_an_estate_without_auto_assignment_leaves_tickets_new(runtime: Any, dispatch: Dispatch) -> None:
    # given office Y's estate does not auto-assign, though ty knows plumbing
    # when a plumbing ticket is submitted there
    ticket = await submit(runtime, dispatch.y.estate)
    # then
    assert ticket.status is TicketStatus.NEW
    assert ticket.assignee_id is None
    assert await notifications_about(runtime, ticket, dispatch.users["ty"]) == []


async def test_the_assignee_is_told_once_in_the_app_and_by_sms(runtime: Any, dispatch: Dispatch) -> None:
    # given
    t1 = dispatch.users["t1"]
    # when a ticket is assigned to t1, and the hook runs again for the same assignment
    ticket = await submit(runtime, dispatch.x.estate)
    async with runtime.sessionmaker() as session, session.begin():
        await dispatching.after_assign(session, ticket, actor_id=None)
    # then one notification and one text message, through the outbox
    (notification,) = await notifications_about(runtime, ticket, t1)
    assert notification.kind == "ticket_assigned"
    assert ticket.number in notification.body
    assert "厨房水管漏水" in notification.body
    (text,) = [m for m in await texts_to(runtime, t1) if ticket.number in m.body]
    assert (text.template, text.phone, text.status) == ("ticket_assigned", dispatch.phones["t1"], "QUEUED")
    async with runtime.sessionmaker() as session:
        from backend.outbox import OutboxMessage

        jobs = set(
            (
                await session.scalars(
                    select(OutboxMessage.job_id).where(
                        OutboxMessage.job_id.in_([f"notification:{notification.id}", f"sms:{text.id}"])
                    )
                )
            ).all()
        )
    assert jobs == {f"notification:{notification.id}", f"sms:{text.id}"}
    # and nobody else heard of it
    assert await notifications_about(runtime, ticket, dispatch.users["t2"]) == []


async def test_concurrent_submits_in_one_office_spread_over_the_technicians(runtime: Any, dispatch: Dispatch) -> None:
    # given t1 and t2 equally loaded (none)
    # when two tickets are submitted at the same moment, in two transactions
    first, second = await asyncio.gather(submit(runtime, dispatch.x.estate), submit(runtime, dispatch.x.estate))
    # then each technician got one: the second counted the first's assignment
    assert {dispatch.name_of(first.assignee_id), dispatch.name_of(second.assignee_id)} == {"t1", "t2"}


async def test_the_demo_dispatch_gives_tech_a_every_category_and_turns_on_demo_a(runtime: Any) -> None:
    # given the demo, in a transaction rolled back afterwards
    async with runtime.sessionmaker() as session:
        # when it runs twice
        await ensure_demo_dispatch(session)
        await ensure_demo_dispatch(session)
        # then
        tech_a = await session.scalar(select(User.id).where(User.username == "tech.a"))
        skills = (await session.scalars(select(TechnicianSkill).where(TechnicianSkill.user_id == tech_a))).all()
        demo_a = await session.scalar(select(Estate.auto_assign_tickets).where(Estate.code == "DEMO-A"))
        demo_b = await session.scalar(select(Estate.auto_assign_tickets).where(Estate.code == "DEMO-B"))
        await session.rollback()
    assert len(skills) == 9
    assert (demo_a, demo_b) == (True, False)


async def test_nothing_is_told_for_an_unassigned_ticket(runtime: Any, dispatch: Dispatch) -> None:
    # given a ticket nobody could take
    ticket = await submit(runtime, dispatch.x.estate, category="noise")
    # when the assignment hook is called for it anyway
    async with runtime.sessionmaker() as session, session.begin():
        await dispatching.after_assign(session, ticket, actor_id=None)
        count = len((await session.scalars(select(Notification.id).where(Notification.data["number"].astext == ticket.number))).all())  # fmt: skip
    # then
    assert count == 0
