"""Helpers of the ticket tests (a plain module: conftest.py is not importable): the demo
places and people, tickets made straight through the workflow in any status, and reads of
what is stored."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from backend.accounts.models import User
from backend.db import to_global_id, utcnow
from backend.property.models import Estate, Unit
from backend.tickets import workflow
from backend.tickets.models import (
    ReturnVisitOutcome,
    Ticket,
    TicketChannel,
    TicketEvent,
    TicketKind,
    TicketStatus,
)
from backend.tickets.service import NewTicket

TICKET_FIELDS = """
  id number kind status priority title version rating contactPhone
  unit { code } estate { code } reporter { username } assignee { username }
  events { type at note fromStatus toStatus actor { username } }
"""

PAYLOAD = f"ticket {{ {TICKET_FIELDS} }} errors {{ field code message }}"

SUBMIT = f"mutation($input: SubmitTicketInput!) {{ submitTicket(input: $input) {{ {PAYLOAD} }} }}"
ASSIGN = f"mutation($input: AssignTicketInput!) {{ assignTicket(input: $input) {{ {PAYLOAD} }} }}"
START = f"mutation($input: StartTicketInput!) {{ startTicket(input: $input) {{ {PAYLOAD} }} }}"
HOLD = f"mutation($input: HoldTicketInput!) {{ holdTicket(input: $input) {{ {PAYLOAD} }} }}"
RESOLVE = f"mutation($input: ResolveTicketInput!) {{ resolveTicket(input: $input) {{ {PAYLOAD} }} }}"
CLOSE = f"mutation($input: CloseTicketInput!) {{ closeTicket(input: $input) {{ {PAYLOAD} }} }}"
CANCEL = f"mutation($input: CancelTicketInput!) {{ cancelTicket(input: $input) {{ {PAYLOAD} }} }}"
REOPEN = f"mutation($input: ReopenTicketInput!) {{ reopenTicket(input: $input) {{ {PAYLOAD} }} }}"
RATE = f"mutation($input: RateTicketInput!) {{ rateTicket(input: $input) {{ {PAYLOAD} }} }}"
COMMENT = f"mutation($input: CommentTicketInput!) {{ commentTicket(input: $input) {{ {PAYLOAD} }} }}"


@dataclass(frozen=True)
class Demo:
    estate: Estate  # DEMO-A
    other_estate: Estate  # DEMO-C
    home: Unit  # owner.a1's 1-1-101 in DEMO-A
    neighbour: Unit  # owner.a2's 1-1-102 in DEMO-A
    users: dict[str, int]

    def gid(self, username: str) -> str:
        return to_global_id("User", self.users[username])


async def load_demo(runtime: Any) -> Demo:
    async with runtime.sessionmaker() as session:
        estates = {e.code: e for e in await session.scalars(select(Estate).where(Estate.code.like("DEMO-%")))}
        units = {
            u.code: u
            for u in await session.scalars(
                select(Unit).where(Unit.estate_id == estates["DEMO-A"].id, Unit.code.in_(["1-1-101", "1-1-102"]))
            )
        }
        users = {name: pk for name, pk in (await session.execute(select(User.username, User.id))).all()}
    return Demo(estates["DEMO-A"], estates["DEMO-C"], units["1-1-101"], units["1-1-102"], users)


# How each status is reached from NEW (the assignee is tech.a from ASSIGNED on).
PATHS: dict[TicketStatus, tuple[str, ...]] = {
    TicketStatus.NEW: (),
    TicketStatus.ASSIGNED: ("assign",),
    TicketStatus.IN_PROGRESS: ("assign", "start"),
    TicketStatus.ON_HOLD: ("assign", "start", "hold"),
    TicketStatus.RESOLVED: ("assign", "start", "resolve"),
    TicketStatus.CLOSED: ("assign", "start", "resolve", "close"),
    TicketStatus.CANCELLED: ("assign", "cancel"),
}


async def make_ticket(
    runtime: Any,
    demo: Demo,
    status: TicketStatus = TicketStatus.NEW,
    *,
    reporter: str = "owner.a1",
    kind: TicketKind = TicketKind.REPAIR,
    phone: str = "13912345678",
    resolved_at: dt.datetime | None = None,
) -> int:
    """A ticket on owner.a1's flat in ``status``, taken there step by step by the manager."""
    actor = demo.users["manager.north"]
    async with runtime.sessionmaker() as session, session.begin():
        estate = await session.get(Estate, demo.estate.id)
        assert estate is not None
        ticket = await workflow.submit(
            session,
            NewTicket(
                estate=estate,
                kind=kind,
                category_code="plumbing",
                title="厨房水管漏水",
                channel=TicketChannel.APP,
                unit_id=demo.home.id,
                contact_phone=phone,
                reporter_user_id=demo.users[reporter],
            ),
            actor_id=demo.users[reporter],
        )
        for step in PATHS[status]:
            kwargs: dict[str, Any] = {"actor_id": actor, "expected_version": None}
            if step == "assign":
                await workflow.assign(session, ticket.id, assignee_id=demo.users["tech.a"], **kwargs)
            elif step == "start":
                await workflow.start(session, ticket.id, **kwargs)
            elif step == "hold":
                await workflow.hold(session, ticket.id, note="等配件", **kwargs)
            elif step == "resolve":
                await workflow.resolve(
                    session, ticket.id, workflow.Resolution(text="换了阀门"), now=resolved_at, **kwargs
                )
            elif step == "close":
                await workflow.close(session, ticket.id, outcome=ReturnVisitOutcome.SATISFIED, **kwargs)
            elif step == "cancel":
                await workflow.cancel(session, ticket.id, **kwargs)
        return ticket.id


@dataclass(frozen=True)
class Stored:
    status: TicketStatus
    version: int
    assignee_id: int | None
    rating: int | None
    events: list[str]


async def stored(runtime: Any, ticket_id: int) -> Stored:
    async with runtime.sessionmaker() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        events = (
            await session.scalars(
                select(TicketEvent.type).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
            )
        ).all()
    return Stored(ticket.status, ticket.version, ticket.assignee_id, ticket.rating, [e.name for e in events])


async def count(runtime: Any, statement: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(statement.subquery())) or 0)


def tid(ticket_id: int) -> str:
    return to_global_id("Ticket", ticket_id)


def now() -> dt.datetime:
    return utcnow()
