"""Opening and moving tickets the way submitTicket and the lifecycle mutations do, at chosen times."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from backend.notifications.models import Notification, SmsMessage
from backend.property.models import Estate, OrgUnit
from backend.tickets import dispatch
from backend.tickets.lifecycle import Action, transition
from backend.tickets.models import (
    Ticket,
    TicketChannel,
    TicketEscalation,
    TicketEvent,
    TicketEventType,
    TicketKind,
    TicketPriority,
)
from backend.tickets.service import NewTicket, open_ticket


@dataclass
class Office:
    unit: OrgUnit
    estate: Estate


@dataclass
class Dispatch:
    """Office X (estate auto-assigning) and office Y (not), both under North.

    X: technicians t1 (plumbing, electrical), t2 (plumbing), t3 (no skill), desk cs, manager mx.
    Y: technician ty (plumbing)."""

    x: Office
    y: Office
    users: dict[str, int]  # t1, t2, t3, ty, cs, mx → user id
    phones: dict[str, str]
    branch_manager_id: int  # manager.north

    def name_of(self, user_id: int | None) -> str | None:
        return next((name for name, uid in self.users.items() if uid == user_id), None)


async def submit(
    runtime: Any,
    estate: Estate,
    *,
    category: str = "plumbing",
    priority: TicketPriority = TicketPriority.NORMAL,
    kind: TicketKind = TicketKind.REPAIR,
    now: dt.datetime | None = None,
) -> Ticket:
    """Open a ticket and run the dispatch hook, in one transaction (as submitTicket does)."""
    async with runtime.sessionmaker() as session, session.begin():
        ticket = await open_ticket(
            session,
            NewTicket(estate=estate, kind=kind, category_code=category, title="厨房水管漏水", channel=TicketChannel.APP,
                      priority=priority, location="1号楼"),
            actor_id=None,
            now=now,
        )  # fmt: skip
        await dispatch.after_submit(session, ticket, actor_id=None)
        await session.refresh(ticket)
        return ticket


async def step(runtime: Any, ticket_id: int, action: Action, at: dt.datetime, **changes: Any) -> Ticket:
    async with runtime.sessionmaker() as session, session.begin():
        ticket, _ = await transition(session, ticket_id, action, actor_id=None, now=at, **changes)
        return ticket


async def events(runtime: Any, ticket_id: int, *types: TicketEventType) -> list[TicketEvent]:
    async with runtime.sessionmaker() as session:
        statement = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        if types:
            statement = statement.where(TicketEvent.type.in_(types))
        return list((await session.scalars(statement)).all())


async def escalations(runtime: Any, ticket_id: int) -> list[tuple[str, int, list[int]]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(TicketEscalation.deadline, TicketEscalation.level, TicketEscalation.notified_user_ids)
            .where(TicketEscalation.ticket_id == ticket_id)
            .order_by(TicketEscalation.id)
        )
        return [(d, level, list(users)) for d, level, users in rows]


async def notifications_about(runtime: Any, ticket: Ticket, user_id: int) -> list[Notification]:
    async with runtime.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Notification)
                    .where(Notification.user_id == user_id, Notification.data["number"].astext == ticket.number)
                    .order_by(Notification.id)
                )
            ).all()
        )


async def texts_to(runtime: Any, user_id: int) -> list[SmsMessage]:
    async with runtime.sessionmaker() as session:
        return list(
            await session.scalars(select(SmsMessage).where(SmsMessage.user_id == user_id).order_by(SmsMessage.id))
        )


async def open_count(runtime: Any, user_id: int) -> int:
    from backend.tickets.lifecycle import OPEN_STATUSES

    async with runtime.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count()).where(Ticket.assignee_id == user_id, Ticket.status.in_(OPEN_STATUSES))
            )
            or 0
        )
