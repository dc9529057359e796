"""Opening tickets: numbering, categories, SLA deadlines. Used by submitTicket and by the
jobs that open tickets by themselves (maintenance plans, alarms)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db import memo, utcnow
from backend.property.models import Estate, OrgUnit
from backend.tickets.errors import TicketError, TicketErrorCode
from backend.tickets.lifecycle import record_event
from backend.tickets.models import (
    SlaRule,
    Ticket,
    TicketCategory,
    TicketChannel,
    TicketCounter,
    TicketEventType,
    TicketKind,
    TicketPriority,
    TicketStatus,
)

# The categories every company starts with (configurable per company afterwards).
DEFAULT_CATEGORIES = (
    ("plumbing", "水路管道"),
    ("electrical", "电路电器"),
    ("elevator", "电梯"),
    ("doors_locks", "门窗门锁"),
    ("cleaning", "保洁"),
    ("greening", "绿化"),
    ("security", "安全秩序"),
    ("noise", "噪音"),
    ("other", "其他"),
)

# Response and resolution deadlines (minutes) by priority, when the company has no rule.
DEFAULT_SLA = {
    TicketPriority.URGENT: (30, 4 * 60),
    TicketPriority.HIGH: (2 * 60, 24 * 60),
    TicketPriority.NORMAL: (4 * 60, 72 * 60),
    TicketPriority.LOW: (24 * 60, 7 * 24 * 60),
}


def company_id_of(estate: Estate) -> int:
    """The company an estate belongs to: the first segment of its org path."""
    return int(estate.org_path.split("/")[1])


async def ensure_categories(session: AsyncSession, company_id: int) -> None:
    """The default categories of a company, once."""
    await session.execute(
        text(
            "INSERT INTO ticket_categories (company_id, code, name, active, sort_order) "
            "SELECT :company, code, name, true, ord FROM unnest(CAST(:codes AS text[]), CAST(:names AS text[])) "
            "WITH ORDINALITY AS c(code, name, ord) ON CONFLICT (company_id, code) DO NOTHING"
        ),
        {
            "company": company_id,
            "codes": [c for c, _ in DEFAULT_CATEGORIES],
            "names": [n for _, n in DEFAULT_CATEGORIES],
        },
    )


async def category_by_code(session: AsyncSession, company_id: int, code: str) -> TicketCategory:
    await ensure_categories(session, company_id)
    category = await session.scalar(
        select(TicketCategory).where(
            TicketCategory.company_id == company_id, TicketCategory.code == code.strip().lower(), TicketCategory.active
        )
    )
    if category is None:
        raise TicketError(TicketErrorCode.INVALID_CATEGORY, f"No ticket category {code!r}.", "category")
    return category


async def deadlines(
    session: AsyncSession, company_id: int, priority: TicketPriority, category_id: int, opened_at: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """(respond by, resolve by): the company's rule for the category and priority, else its
    rule for the priority, else the defaults."""
    response, resolve = await sla_minutes(session, company_id, priority, category_id)
    return opened_at + dt.timedelta(minutes=response), opened_at + dt.timedelta(minutes=resolve)


async def sla_minutes(
    session: AsyncSession, company_id: int, priority: TicketPriority, category_id: int
) -> tuple[int, int]:
    """(minutes to respond, minutes to resolve) by :func:`deadlines`' rules."""
    rules = (
        await session.scalars(
            select(SlaRule).where(
                SlaRule.company_id == company_id,
                SlaRule.priority == priority,
                (SlaRule.category_id == category_id) | SlaRule.category_id.is_(None),
            )
        )
    ).all()
    specific = [r for r in rules if r.category_id == category_id]
    general = [r for r in rules if r.category_id is None]
    chosen = specific or general
    if chosen:
        return chosen[0].response_minutes, chosen[0].resolve_minutes
    return DEFAULT_SLA[priority]


async def next_number(session: AsyncSession, company_id: int, opened_at: dt.datetime) -> str:
    """``{company code}-{yymmdd}-{n:06d}``: unique per company, taken under a row lock."""
    cache = memo(session)
    code = cache.get(("company_code", company_id)) if cache is not None else None
    if code is None:
        await session.execute(
            text("INSERT INTO ticket_counters (company_id, next_number) VALUES (:id, 1) ON CONFLICT DO NOTHING"),
            {"id": company_id},
        )
    number = await session.scalar(
        update(TicketCounter)
        .where(TicketCounter.company_id == company_id)
        .values(next_number=TicketCounter.next_number + 1)
        .returning(TicketCounter.next_number - 1)
    )
    if code is None:
        code = await session.scalar(select(OrgUnit.code).where(OrgUnit.id == company_id))
        if cache is not None:
            cache[("company_code", company_id)] = code
    return f"{code}-{opened_at:%y%m%d}-{int(number or 0):06d}"


@dataclass(slots=True)
class NewTicket:
    estate: Estate
    kind: TicketKind
    category_code: str
    title: str
    channel: TicketChannel
    priority: TicketPriority = TicketPriority.NORMAL
    description: str = ""
    unit_id: int | None = None
    location: str = ""
    contact_phone: str | None = None
    appointment_start: dt.datetime | None = None
    appointment_end: dt.datetime | None = None
    photo_urls: list[str] = field(default_factory=list)
    asset_id: int | None = None
    reporter_user_id: int | None = None
    reporter_person_id: int | None = None
    maintenance_plan_id: int | None = None
    plan_due_date: dt.date | None = None


async def open_ticket(
    session: AsyncSession, new: NewTicket, *, actor_id: int | None, now: dt.datetime | None = None
) -> Ticket:
    """Write a NEW ticket with its number, deadlines and SUBMITTED event. Input is checked by
    the callers (they know who is asking); this keeps the row whole."""
    now = now or utcnow()
    title = new.title.strip()
    if not 2 <= len(title) <= 120:
        raise TicketError(TicketErrorCode.INVALID_INPUT, "A title of 2 to 120 characters.", "title")
    company_id = company_id_of(new.estate)
    cache = memo(session)
    key = ("open_ticket", company_id, new.category_code, new.priority)
    known = cache.get(key) if cache is not None else None
    if known is None:
        category = await category_by_code(session, company_id, new.category_code)
        known = (category, await sla_minutes(session, company_id, new.priority, category.id))
        if cache is not None:
            cache[key] = known
    category, (response, resolve) = known
    respond_by, resolve_by = now + dt.timedelta(minutes=response), now + dt.timedelta(minutes=resolve)
    ticket = Ticket(
        company_id=company_id,
        number=await next_number(session, company_id, now),
        kind=new.kind,
        status=TicketStatus.NEW,
        priority=new.priority,
        category_id=category.id,
        estate_id=new.estate.id,
        unit_id=new.unit_id,
        location=new.location.strip(),
        title=title,
        description=new.description.strip(),
        contact_phone=new.contact_phone,
        appointment_start=new.appointment_start,
        appointment_end=new.appointment_end,
        photo_urls=new.photo_urls,
        asset_id=new.asset_id,
        channel=new.channel,
        reporter_user_id=new.reporter_user_id,
        reporter_person_id=new.reporter_person_id,
        created_by_id=actor_id,
        response_due_at=respond_by,
        resolve_due_at=resolve_by,
        maintenance_plan_id=new.maintenance_plan_id,
        plan_due_date=new.plan_due_date,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    await session.flush()
    record_event(
        session,
        ticket,
        TicketEventType.SUBMITTED,
        actor_id=actor_id,
        to_status=TicketStatus.NEW,
        data={"channel": new.channel.name, "priority": new.priority.name, "category": category.code},
        at=now,
    )
    await session.flush()
    return ticket
