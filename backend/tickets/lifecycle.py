"""The ticket state machine. Every status change goes through ``transition``:

    NEW → ASSIGNED → IN_PROGRESS ⇄ ON_HOLD → RESOLVED → CLOSED
    NEW | ASSIGNED → CANCELLED;  RESOLVED → ASSIGNED (reopened by the reporter within 7 days)

It locks the ticket row, checks the step is legal from the current status (and, when the
caller says which version it read, that nobody changed the ticket since: of two concurrent
transitions one wins, the other gets CONCURRENT_UPDATE or ILLEGAL_TRANSITION — never a lost
update), applies it, bumps ``version`` and writes the event. Illegal steps change nothing.
Who may take a step is the GraphQL layer's business (policy rows); this module keeps the
ticket consistent.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db import utcnow
from backend.tickets.errors import TicketError, TicketErrorCode
from backend.tickets.models import Ticket, TicketEvent, TicketEventType, TicketStatus

REOPEN_WINDOW = dt.timedelta(days=7)
OPEN_STATUSES = (TicketStatus.NEW, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.ON_HOLD)


class Action(enum.Enum):
    ASSIGN = "assign"
    START = "start"  # also resumes a ticket on hold
    HOLD = "hold"
    RESOLVE = "resolve"
    CLOSE = "close"
    CANCEL = "cancel"
    REOPEN = "reopen"


S = TicketStatus
# action → (statuses it may start from, status it leads to, event type)
TRANSITIONS: dict[Action, tuple[frozenset[TicketStatus], TicketStatus]] = {
    Action.ASSIGN: (frozenset({S.NEW, S.ASSIGNED}), S.ASSIGNED),
    Action.START: (frozenset({S.ASSIGNED, S.ON_HOLD}), S.IN_PROGRESS),
    Action.HOLD: (frozenset({S.IN_PROGRESS}), S.ON_HOLD),
    Action.RESOLVE: (frozenset({S.IN_PROGRESS}), S.RESOLVED),
    Action.CLOSE: (frozenset({S.RESOLVED}), S.CLOSED),
    Action.CANCEL: (frozenset({S.NEW, S.ASSIGNED}), S.CANCELLED),
    Action.REOPEN: (frozenset({S.RESOLVED}), S.ASSIGNED),
}


def event_type(action: Action, from_status: TicketStatus) -> TicketEventType:
    if action is Action.START and from_status is S.ON_HOLD:
        return TicketEventType.RESUMED
    return {
        Action.ASSIGN: TicketEventType.ASSIGNED,
        Action.START: TicketEventType.STARTED,
        Action.HOLD: TicketEventType.HELD,
        Action.RESOLVE: TicketEventType.RESOLVED,
        Action.CLOSE: TicketEventType.CLOSED,
        Action.CANCEL: TicketEventType.CANCELLED,
        Action.REOPEN: TicketEventType.REOPENED,
    }[action]


def allowed(action: Action, status: TicketStatus) -> bool:
    return status in TRANSITIONS[action][0]


async def lock(session: AsyncSession, ticket_id: int, expected_version: int | None = None) -> Ticket:
    """The ticket, locked for this transaction and read afresh; CONCURRENT_UPDATE if it is no
    longer at ``expected_version``."""
    await session.execute(select(Ticket.id).where(Ticket.id == ticket_id).with_for_update())
    ticket = await session.scalar(
        select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True)
    )
    if ticket is None:
        raise TicketError(TicketErrorCode.NOT_FOUND, "No such ticket.", "ticketId")
    if expected_version is not None and ticket.version != expected_version:
        raise TicketError(
            TicketErrorCode.CONCURRENT_UPDATE, "The ticket was changed meanwhile; reload it and try again.", "ticketId"
        )
    return ticket


def record_event(
    session: AsyncSession,
    ticket: Ticket,
    type_: TicketEventType,
    *,
    actor_id: int | None,
    note: str = "",
    from_status: TicketStatus | None = None,
    to_status: TicketStatus | None = None,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> TicketEvent:
    """Add an event to the ticket's history; ``at`` defaults to the database's now()."""
    event = TicketEvent(
        ticket_id=ticket.id,
        type=type_,
        from_status=from_status,
        to_status=to_status,
        actor_id=actor_id,
        note=note,
        data=data or {},
    )
    if at is not None:
        event.created_at = at
    session.add(event)
    return event


async def transition(
    session: AsyncSession,
    ticket_id: int,
    action: Action,
    *,
    actor_id: int | None,
    note: str = "",
    expected_version: int | None = None,
    data: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    **changes: Any,
) -> tuple[Ticket, TicketEvent]:
    """Take one step on the ticket (see the module's docstring). ``changes`` are set on the
    ticket with the step (e.g. ``assignee_id`` for ASSIGN, ``resolution`` for RESOLVE)."""
    now = now or utcnow()
    ticket = await lock(session, ticket_id, expected_version)
    sources, target = TRANSITIONS[action]
    if ticket.status not in sources:
        raise TicketError(
            TicketErrorCode.ILLEGAL_TRANSITION,
            f"Not possible for a {ticket.status.name} ticket: {action.name}.",
            "ticketId",
        )
    if action is Action.REOPEN and (ticket.resolved_at is None or now - ticket.resolved_at > REOPEN_WINDOW):
        raise TicketError(
            TicketErrorCode.REOPEN_WINDOW_CLOSED,
            "A ticket may be reopened within 7 days of its resolution.",
            "ticketId",
        )
    before = ticket.status
    for name, value in changes.items():
        setattr(ticket, name, value)
    ticket.status = target
    ticket.version += 1
    ticket.updated_at = now
    if action is Action.ASSIGN:
        ticket.assigned_at = ticket.assigned_at or now
    elif action is Action.START:
        ticket.started_at = ticket.started_at or now
    elif action is Action.RESOLVE:
        ticket.resolved_at = now
    elif action is Action.CLOSE:
        ticket.closed_at = now
    elif action is Action.REOPEN:
        ticket.reopen_count += 1
        ticket.resolved_at = None
    event = record_event(
        session,
        ticket,
        event_type(action, before),
        actor_id=actor_id,
        note=note,
        from_status=before,
        to_status=target,
        data=data,
        at=now,
    )
    await session.flush()
    return ticket, event
