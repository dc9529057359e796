"""The demo tickets: every status and kind in each demo estate, real histories, ratings,
overdue ones and owner.a1's paid repair; a second run adds nothing. (Run in a transaction
that is rolled back, so the other tests see the demo as seeded.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, text

from backend.accounts.models import User
from backend.billing.models import Bill, BillStatus
from backend.db import utcnow
from backend.property.models import Estate
from backend.seed_tickets import ensure_demo_tickets
from backend.tickets.models import Ticket, TicketEvent, TicketKind, TicketStatus


async def test_demo_tickets_cover_every_status_and_kind_once(runtime: Any) -> None:
    async with runtime.sessionmaker() as session:
        await session.begin()
        try:
            # given no tickets in the demo estates: other tests' ones are removed in this
            # transaction only (the append-only triggers stand aside for it)
            estates = {e.id: e.code for e in await session.scalars(select(Estate).where(Estate.code.like("DEMO-%")))}
            await session.execute(text("SET LOCAL session_replication_role = replica"))
            theirs = select(Ticket.id).where(Ticket.estate_id.in_(estates))
            await session.execute(delete(TicketEvent).where(TicketEvent.ticket_id.in_(theirs)))
            await session.execute(delete(Bill).where(Bill.ticket_id.in_(theirs)))
            await session.execute(delete(Ticket).where(Ticket.id.in_(theirs)))
            await session.execute(text("SET LOCAL session_replication_role = origin"))
            # when
            created = await ensure_demo_tickets(session)
            again = await ensure_demo_tickets(session)
            # then
            assert created >= 120
            assert again == 0
            rows = (
                await session.execute(
                    select(Ticket.estate_id, Ticket.status, Ticket.kind, func.count())
                    .where(Ticket.estate_id.in_(estates))
                    .group_by(Ticket.estate_id, Ticket.status, Ticket.kind)
                )
            ).all()
            for estate_id in estates:
                assert {r[1] for r in rows if r[0] == estate_id} == set(TicketStatus)
                assert {r[2] for r in rows if r[0] == estate_id} == set(TicketKind)
            # histories match the statuses; some are rated, some overdue
            closed = await session.scalar(
                select(Ticket).where(Ticket.estate_id.in_(estates), Ticket.status == TicketStatus.CLOSED).limit(1)
            )
            assert closed is not None
            history = (
                await session.scalars(
                    select(TicketEvent.type).where(TicketEvent.ticket_id == closed.id).order_by(TicketEvent.id)
                )
            ).all()
            assert [t.name for t in history][:7] == [
                "SUBMITTED", "ASSIGNED", "STARTED", "HELD", "RESUMED", "RESOLVED", "CLOSED",
            ]  # fmt: skip
            assert await session.scalar(
                select(func.count()).where(Ticket.estate_id.in_(estates), Ticket.rating.is_not(None))
            )
            overdue = await session.scalar(
                select(func.count()).where(
                    Ticket.estate_id.in_(estates),
                    Ticket.status.in_([TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS]),
                    Ticket.resolve_due_at < utcnow(),
                )
            )
            assert overdue
            owner = await session.scalar(select(User.id).where(User.username == "owner.a1"))
            paid_repair = (
                await session.execute(
                    select(Bill.amount, Bill.status)
                    .join(Ticket, Ticket.id == Bill.ticket_id)
                    .where(Ticket.reporter_user_id == owner)
                )
            ).all()
            assert [(str(a), s) for a, s in paid_repair] == [("120.00", BillStatus.UNPAID)]
        finally:
            await session.rollback()
