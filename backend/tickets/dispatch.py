"""Dispatch (派单): who gets a ticket, and telling them.

Auto-assignment, when the ticket's estate enables it: among the technicians of the estate's
office (the ``technician`` role held at the office itself) with a skill in the ticket's
category, the one with the fewest open tickets; ties go to the lower user id. Two submits at
once in one office take turns (a transaction-level advisory lock per office), so the second
counts the ticket the first just assigned.

The assignee is told in the app and by text message, both owed through the outbox in the
caller's transaction: once per assignment (the dedup keys carry the ticket's version).
"""

from __future__ import annotations

from sqlalchemy import String, cast, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from authz.models import CasbinRule
from backend.accounts.models import User
from backend.db import local_timezone, memo, to_global_id
from backend.notifications import sms
from backend.notifications.service import notify
from backend.people.models import Person
from backend.property.models import Estate
from backend.tickets.lifecycle import OPEN_STATUSES, Action, transition
from backend.tickets.models import TechnicianSkill, Ticket, TicketCategory, TicketStatus

AUTO_ASSIGN_NOTE = "自动派单"
NOTIFICATION_KIND = "ticket_assigned"
SMS_TEMPLATE = "ticket_assigned"
TECHNICIAN_ROLE = "technician"


async def after_submit(session: AsyncSession, ticket: Ticket, *, actor_id: int | None) -> None:
    """Assign a NEW ticket automatically when its estate says so; no candidate → it stays NEW.

    ``actor_id`` (who submitted) is not the assigner: the system is (no actor on the event)."""
    cache = memo(session)
    estate: Estate | None = cache.get(("estate", ticket.estate_id)) if cache is not None else None
    if estate is None:
        estate = await session.scalar(select(Estate).where(Estate.id == ticket.estate_id))
        if cache is not None and estate is not None:
            cache[("estate", ticket.estate_id)] = estate
    if estate is None or not estate.auto_assign_tickets or ticket.status is not TicketStatus.NEW:
        return
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"dispatch:{estate.org_unit_id}"}
    )
    assignee_id = await least_loaded_technician(session, office_path=estate.org_path, category_id=ticket.category_id)
    if assignee_id is None:
        return
    assigned, _ = await transition(
        session,
        ticket.id,
        Action.ASSIGN,
        actor_id=None,
        note=AUTO_ASSIGN_NOTE,
        data={"auto": True},
        assignee_id=assignee_id,
    )
    await after_assign(session, assigned, actor_id=None)


async def least_loaded_technician(session: AsyncSession, *, office_path: str, category_id: int) -> int | None:
    """The active technician of the office skilled in the category with the fewest open tickets."""
    open_tickets = (
        select(func.count())
        .where(Ticket.assignee_id == User.id, Ticket.status.in_(OPEN_STATUSES))
        .correlate(User)
        .scalar_subquery()
    )
    return await session.scalar(
        select(User.id)
        .join(
            CasbinRule,
            (CasbinRule.ptype == "g")
            & (CasbinRule.v0 == literal("u:") + cast(User.id, String))
            & (CasbinRule.v1 == TECHNICIAN_ROLE)
            & (CasbinRule.v2 == office_path),
        )
        .join(TechnicianSkill, (TechnicianSkill.user_id == User.id) & (TechnicianSkill.category_id == category_id))
        .where(User.is_active)
        .order_by(open_tickets, User.id)
        .limit(1)
    )


async def after_assign(session: AsyncSession, ticket: Ticket, *, actor_id: int | None) -> None:
    """Tell the ticket's assignee, in the app and by SMS (when their person has a phone).

    Once per assignment: a retried call for the same version owes nothing again."""
    if ticket.assignee_id is None:
        return
    row = (
        await session.execute(
            select(User.id, Person.phone, TicketCategory.name, Estate.name)
            .select_from(User)
            .outerjoin(Person, Person.id == User.person_id)
            .join(TicketCategory, TicketCategory.id == ticket.category_id)
            .join(Estate, Estate.id == ticket.estate_id)
            .where(User.id == ticket.assignee_id)
        )
    ).one_or_none()
    if row is None:
        return
    _, phone, category_name, estate_name = row
    params = {
        "number": ticket.number,
        "category": category_name,
        "title": ticket.title,
        "place": estate_name + (f" {ticket.location}" if ticket.location else ""),
        "respond_by": f"{ticket.response_due_at.astimezone(local_timezone()):%m-%d %H:%M}",
    }
    dedup = f"{NOTIFICATION_KIND}:{ticket.id}:{ticket.version}"
    await notify(
        session,
        user_id=ticket.assignee_id,
        kind=NOTIFICATION_KIND,
        title=sms.TEMPLATES[SMS_TEMPLATE].title,
        body=sms.render(SMS_TEMPLATE, params),
        data={"ticketId": to_global_id("Ticket", ticket.id), "number": ticket.number, "assignedBy": actor_id},
        dedup_key=dedup,
    )
    if phone:
        await sms.queue_sms(
            session, phone=phone, template=SMS_TEMPLATE, params=params, dedup_key=dedup, user_id=ticket.assignee_id
        )
