"""The steps of a ticket's life after it is opened, with what each step owes besides the
status change: the repair bill, the maintenance record, the reporter's notifications.

Who may take a step is decided by the caller (the GraphQL layer, from policy rows); these
functions keep the ticket and its side effects consistent. Each takes the version the caller
read, so two concurrent steps on one ticket cannot both succeed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.billing.models import Bill
from backend.billing.repairs import Charge, InvalidCharge, bill_repair, check_charges
from backend.db import to_global_id, utcnow
from backend.notifications.service import notify
from backend.settings import get_settings
from backend.tickets import dispatch
from backend.tickets.errors import TicketError, TicketErrorCode
from backend.tickets.lifecycle import Action, lock, record_event, transition
from backend.tickets.models import (
    ReturnVisitOutcome,
    Ticket,
    TicketEvent,
    TicketEventType,
    TicketKind,
    TicketStatus,
)
from backend.tickets.service import NewTicket, open_ticket

MAX_PHOTOS = 9
MAX_URL = 500
MAX_NOTE = 2000


def check_photo_urls(urls: list[str]) -> list[str]:
    """At most nine https URLs of at most 500 characters, each with a host."""
    if len(urls) > MAX_PHOTOS:
        raise TicketError(TicketErrorCode.INVALID_PHOTO_URL, f"At most {MAX_PHOTOS} photos.", "photoUrls")
    cleaned = []
    for url in urls:
        url = url.strip()
        parts = urlsplit(url)
        if (
            len(url) > MAX_URL
            or parts.scheme != "https"
            or not parts.hostname
            or any(ch.isspace() or ord(ch) < 32 for ch in url)
        ):
            raise TicketError(TicketErrorCode.INVALID_PHOTO_URL, f"Not an https URL: {url[:60]!r}.", "photoUrls")
        cleaned.append(url)
    return cleaned


def _note(note: str, *, required: bool, field_name: str = "note") -> str:
    note = note.strip()
    if required and not note:
        raise TicketError(TicketErrorCode.NOTE_REQUIRED, "Say why.", field_name)
    if len(note) > MAX_NOTE:
        raise TicketError(TicketErrorCode.INVALID_INPUT, f"At most {MAX_NOTE} characters.", field_name)
    return note


async def submit(
    session: AsyncSession, new: NewTicket, *, actor_id: int | None, now: dt.datetime | None = None
) -> Ticket:
    new.photo_urls = check_photo_urls(new.photo_urls)
    if new.appointment_end is not None and (
        new.appointment_start is None or new.appointment_end <= new.appointment_start
    ):
        raise TicketError(
            TicketErrorCode.INVALID_APPOINTMENT, "The appointment ends after it starts.", "appointmentEnd"
        )
    ticket = await open_ticket(session, new, actor_id=actor_id, now=now)
    await dispatch.after_submit(session, ticket, actor_id=actor_id)
    return ticket


async def _tell_reporter(session: AsyncSession, ticket: Ticket, event: TicketEvent, title: str, body: str) -> None:
    if ticket.reporter_user_id is None or ticket.reporter_user_id == event.actor_id:
        return
    await notify(
        session,
        user_id=ticket.reporter_user_id,
        kind=f"ticket_{event.type.value}",
        title=title,
        body=body,
        data={"ticketId": to_global_id("Ticket", ticket.id), "number": ticket.number},
        dedup_key=f"ticket-event:{event.id}",
    )


async def assign(
    session: AsyncSession,
    ticket_id: int,
    *,
    assignee_id: int,
    actor_id: int | None,
    expected_version: int | None,
    note: str = "",
    now: dt.datetime | None = None,
) -> tuple[Ticket, TicketEvent]:
    ticket, event = await transition(
        session,
        ticket_id,
        Action.ASSIGN,
        actor_id=actor_id,
        note=_note(note, required=False),
        expected_version=expected_version,
        data={"assigneeId": assignee_id},
        now=now,
        assignee_id=assignee_id,
    )
    await dispatch.after_assign(session, ticket, actor_id=actor_id)
    await _tell_reporter(session, ticket, event, f"工单 {ticket.number} 已派单", ticket.title)
    return ticket, event


async def start(
    session: AsyncSession,
    ticket_id: int,
    *,
    actor_id: int | None,
    expected_version: int | None,
    note: str = "",
    now: dt.datetime | None = None,
) -> tuple[Ticket, TicketEvent]:
    return await transition(
        session,
        ticket_id,
        Action.START,
        actor_id=actor_id,
        note=_note(note, required=False),
        expected_version=expected_version,
        now=now,
    )


async def hold(
    session: AsyncSession,
    ticket_id: int,
    *,
    actor_id: int | None,
    expected_version: int | None,
    note: str,
    now: dt.datetime | None = None,
) -> tuple[Ticket, TicketEvent]:
    return await transition(
        session,
        ticket_id,
        Action.HOLD,
        actor_id=actor_id,
        note=_note(note, required=True),
        expected_version=expected_version,
        now=now,
    )


@dataclass(slots=True)
class Resolution:
    text: str
    charges: list[Charge] = field(default_factory=list)
    checklist: list[dict[str, Any]] | None = None  # maintenance tickets: [{item, ok, note}]
    notes: str = ""


async def resolve(
    session: AsyncSession,
    ticket_id: int,
    resolution: Resolution,
    *,
    actor_id: int | None,
    expected_version: int | None,
    request_id: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Ticket, TicketEvent]:
    """RESOLVED, with the charges billed to the ticket's unit (one REPAIR bill) and, for a
    maintenance plan's ticket, the maintenance record."""
    now = now or utcnow()
    text = _note(resolution.text, required=True, field_name="resolution")
    if resolution.charges:
        try:
            total = check_charges(resolution.charges)
        except InvalidCharge as exc:
            raise TicketError(TicketErrorCode.INVALID_CHARGE, str(exc), "charges") from exc
    ticket, event = await transition(
        session,
        ticket_id,
        Action.RESOLVE,
        actor_id=actor_id,
        note=text,
        expected_version=expected_version,
        data={"charges": [{"description": c.description.strip(), "amount": str(c.amount)} for c in resolution.charges]}
        if resolution.charges
        else None,
        now=now,
        resolution=text,
    )
    body = ticket.title
    if resolution.charges:
        if ticket.unit_id is None:
            raise TicketError(TicketErrorCode.INVALID_CHARGE, "A public-area ticket has no unit to bill.", "charges")
        if await session.scalar(select(Bill.id).where(Bill.ticket_id == ticket.id)) is not None:
            raise TicketError(TicketErrorCode.INVALID_CHARGE, "This ticket was billed already.", "charges")
        await bill_repair(
            session,
            ticket_id=ticket.id,
            ticket_number=ticket.number,
            estate_id=ticket.estate_id,
            unit_id=ticket.unit_id,
            charges=resolution.charges,
            on=now.astimezone(ZoneInfo(get_settings().timezone)).date(),
            actor_id=actor_id,
            request_id=request_id,
        )
        body = f"{ticket.title}；维修费 ¥{total}，请在账单中支付"
    if ticket.maintenance_plan_id is not None:
        # The assets side records the maintenance and schedules the next occurrence.
        from backend.assets import plans
        from backend.assets.errors import AssetError

        try:
            await plans.complete_occurrence(
                session, ticket, checklist=resolution.checklist or [], notes=resolution.notes, actor_id=actor_id
            )
        except AssetError as exc:  # a checklist that does not answer the plan's: nothing is resolved
            raise TicketError(TicketErrorCode.INVALID_INPUT, exc.message, exc.field or "checklist") from exc
    await _tell_reporter(session, ticket, event, f"工单 {ticket.number} 已处理完成", body)
    return ticket, event


# REPAIR and COMPLAINT tickets with a reporter are closed after a return visit (回访).
RETURN_VISIT_KINDS = (TicketKind.REPAIR, TicketKind.COMPLAINT)


async def close(
    session: AsyncSession,
    ticket_id: int,
    *,
    outcome: ReturnVisitOutcome | None,
    note: str = "",
    actor_id: int | None,
    expected_version: int | None,
    now: dt.datetime | None = None,
) -> tuple[Ticket, TicketEvent]:
    current = await session.get(Ticket, ticket_id)
    if current is None:
        raise TicketError(TicketErrorCode.NOT_FOUND, "No such ticket.", "ticketId")
    has_reporter = current.reporter_user_id is not None or current.reporter_person_id is not None
    if outcome is None and current.kind in RETURN_VISIT_KINDS and has_reporter:
        raise TicketError(
            TicketErrorCode.RETURN_VISIT_REQUIRED, "Record the return visit (回访) first.", "returnVisitOutcome"
        )
    note = _note(note, required=False)
    changes: dict[str, Any] = {}
    if outcome is not None:
        changes = {"return_visit_outcome": outcome, "return_visit_note": note[:500]}
    ticket, event = await transition(
        session,
        ticket_id,
        Action.CLOSE,
        actor_id=actor_id,
        note=note,
        expected_version=expected_version,
        data={"returnVisitOutcome": outcome.name} if outcome is not None else None,
        now=now,
        **changes,
    )
    await _tell_reporter(session, ticket, event, f"工单 {ticket.number} 已关闭", ticket.title)
    return ticket, event


async def cancel(
    session: AsyncSession,
    ticket_id: int,
    *,
    note: str = "",
    actor_id: int | None,
    expected_version: int | None,
    now: dt.datetime | None = None,
) -> tuple[Ticket, TicketEvent]:
    return await transition(
        session,
        ticket_id,
        Action.CANCEL,
        actor_id=actor_id,
        note=_note(note, required=False),
        expected_version=expected_version,
        now=now,
    )


async def reopen(
    session: AsyncSession,
    ticket_id: int,
    *,
    reason: str,
    actor_id: int | None,
    expected_version: int | None,
    now: dt.datetime | None = None,
) -> tuple[Ticket, TicketEvent]:
    ticket, event = await transition(
        session,
        ticket_id,
        Action.REOPEN,
        actor_id=actor_id,
        note=_note(reason, required=True, field_name="reason"),
        expected_version=expected_version,
        now=now,
    )
    await dispatch.after_assign(session, ticket, actor_id=actor_id)
    return ticket, event


RATEABLE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


async def rate(
    session: AsyncSession,
    ticket_id: int,
    *,
    rating: int,
    comment: str = "",
    actor_id: int | None,
    expected_version: int | None,
    now: dt.datetime | None = None,
) -> tuple[Ticket, TicketEvent]:
    """The reporter's rating (1–5), once, on a RESOLVED or CLOSED ticket."""
    if not 1 <= rating <= 5:
        raise TicketError(TicketErrorCode.INVALID_RATING, "A rating from 1 to 5.", "rating")
    comment = comment.strip()
    if len(comment) > 500:
        raise TicketError(TicketErrorCode.INVALID_INPUT, "At most 500 characters.", "comment")
    ticket = await lock(session, ticket_id, expected_version)
    if ticket.status not in RATEABLE:
        raise TicketError(
            TicketErrorCode.ILLEGAL_TRANSITION, f"A {ticket.status.name} ticket cannot be rated.", "ticketId"
        )
    if ticket.rating is not None:
        raise TicketError(TicketErrorCode.ALREADY_RATED, "This ticket was rated already.", "ticketId")
    now = now or utcnow()
    ticket.rating = rating
    ticket.rating_comment = comment
    ticket.rated_at = now
    ticket.version += 1
    ticket.updated_at = now
    event = record_event(
        session, ticket, TicketEventType.RATED, actor_id=actor_id, note=comment, data={"rating": rating}, at=now
    )
    await session.flush()
    return ticket, event


async def comment(
    session: AsyncSession, ticket_id: int, *, text: str, actor_id: int | None, now: dt.datetime | None = None
) -> tuple[Ticket, TicketEvent]:
    """A COMMENTED event; comments change nothing else and never conflict with a step."""
    text = _note(text, required=True, field_name="text")
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketError(TicketErrorCode.NOT_FOUND, "No such ticket.", "ticketId")
    event = record_event(session, ticket, TicketEventType.COMMENTED, actor_id=actor_id, note=text, at=now)
    await session.flush()
    return ticket, event
