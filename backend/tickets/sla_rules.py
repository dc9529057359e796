"""A company's SLA rules (response and resolution deadlines per priority, optionally per
category), technicians' skills and estates' auto-assignment: the settings of dispatch.

Rules apply to tickets opened afterwards; open tickets keep the deadlines they were given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.property.models import Estate
from backend.tickets.errors import TicketError, TicketErrorCode
from backend.tickets.models import SlaRule, TechnicianSkill, TicketCategory, TicketPriority
from backend.tickets.service import DEFAULT_SLA, category_by_code, ensure_categories

MAX_MINUTES = 365 * 24 * 60


@dataclass(frozen=True, slots=True)
class EffectiveSlaRule:
    priority: TicketPriority
    category: TicketCategory | None  # None: the priority's general rule
    response_minutes: int
    resolve_minutes: int
    is_default: bool  # no rule of the company: the product's default


async def sla_rules(session: AsyncSession, company_id: int) -> list[EffectiveSlaRule]:
    """The general rule of each priority (the company's or the default), then the company's
    category rules, most urgent priority first."""
    rows = (
        await session.execute(
            select(SlaRule, TicketCategory)
            .outerjoin(TicketCategory, TicketCategory.id == SlaRule.category_id)
            .where(SlaRule.company_id == company_id)
            .order_by(TicketCategory.sort_order.nulls_first(), SlaRule.id)
        )
    ).all()
    order = list(reversed(TicketPriority))  # URGENT first
    general = {rule.priority: rule for rule, category in rows if category is None}
    result = [
        EffectiveSlaRule(p, None, general[p].response_minutes, general[p].resolve_minutes, False)
        if p in general
        else EffectiveSlaRule(p, None, *DEFAULT_SLA[p], True)
        for p in order
    ]
    specific = [(rule, category) for rule, category in rows if category is not None]
    specific.sort(key=lambda rc: order.index(rc[0].priority))
    result += [
        EffectiveSlaRule(rule.priority, category, rule.response_minutes, rule.resolve_minutes, False)
        for rule, category in specific
    ]
    return result


async def set_sla_rule(
    session: AsyncSession,
    *,
    company_id: int,
    priority: TicketPriority,
    category_code: str | None,
    response_minutes: int,
    resolve_minutes: int,
    actor_id: int,
    request_id: str | None,
) -> EffectiveSlaRule:
    """Create or replace the company's rule for the priority (and category)."""
    if not 0 < response_minutes <= MAX_MINUTES:
        raise TicketError(TicketErrorCode.INVALID_INPUT, "Minutes from 1 to a year.", "responseMinutes")
    if not response_minutes <= resolve_minutes <= MAX_MINUTES:
        raise TicketError(
            TicketErrorCode.INVALID_INPUT, "The resolution takes at least the response time.", "resolveMinutes"
        )
    category = await category_by_code(session, company_id, category_code) if category_code else None
    category_id = category.id if category else None
    # A general rule's category is NULL, which a unique key does not compare: one writer at a time.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"sla_rules:{company_id}"}
    )
    changed = await session.scalar(
        update(SlaRule)
        .where(
            SlaRule.company_id == company_id,
            SlaRule.priority == priority,
            SlaRule.category_id.is_(None) if category_id is None else SlaRule.category_id == category_id,
        )
        .values(response_minutes=response_minutes, resolve_minutes=resolve_minutes)
        .returning(SlaRule.id)
    )
    if changed is None:
        session.add(
            SlaRule(
                company_id=company_id,
                priority=priority,
                category_id=category_id,
                response_minutes=response_minutes,
                resolve_minutes=resolve_minutes,
            )
        )
        await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="ticket.sla_rule.set",
        target_type="OrgUnit",
        target_id=company_id,
        request_id=request_id,
        detail={
            "priority": priority.name,
            "category": category.code if category else None,
            "responseMinutes": response_minutes,
            "resolveMinutes": resolve_minutes,
        },
    )
    return EffectiveSlaRule(priority, category, response_minutes, resolve_minutes, False)


async def set_technician_skills(
    session: AsyncSession,
    *,
    user_id: int,
    company_id: int,
    category_codes: list[str],
    actor_id: int,
    request_id: str | None,
) -> list[TicketCategory]:
    """Replace the technician's skills in the company's categories by ``category_codes``."""
    await ensure_categories(session, company_id)
    codes = sorted({code.strip().lower() for code in category_codes})
    categories = list(
        (
            await session.scalars(
                select(TicketCategory)
                .where(TicketCategory.company_id == company_id, TicketCategory.code.in_(codes), TicketCategory.active)
                .order_by(TicketCategory.sort_order, TicketCategory.id)
            )
        ).all()
    )
    unknown = set(codes) - {c.code for c in categories}
    if unknown:
        raise TicketError(
            TicketErrorCode.INVALID_CATEGORY, f"No ticket category {', '.join(sorted(unknown))}.", "categoryCodes"
        )
    await session.execute(
        delete(TechnicianSkill).where(
            TechnicianSkill.user_id == user_id,
            TechnicianSkill.category_id.in_(select(TicketCategory.id).where(TicketCategory.company_id == company_id)),
            TechnicianSkill.category_id.not_in([c.id for c in categories]),
        )
    )
    if categories:
        await session.execute(
            insert(TechnicianSkill)
            .values([{"user_id": user_id, "category_id": c.id} for c in categories])
            .on_conflict_do_nothing()
        )
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="ticket.technician_skills.set",
        target_type="User",
        target_id=user_id,
        request_id=request_id,
        detail={"categories": [c.code for c in categories]},
    )
    return categories


async def technician_skills(session: AsyncSession, user_id: int) -> list[TicketCategory]:
    return list(
        (
            await session.scalars(
                select(TicketCategory)
                .join(TechnicianSkill, TechnicianSkill.category_id == TicketCategory.id)
                .where(TechnicianSkill.user_id == user_id)
                .order_by(TicketCategory.sort_order, TicketCategory.id)
            )
        ).all()
    )


async def set_auto_assign(
    session: AsyncSession, *, estate: Estate, enabled: bool, actor_id: int, request_id: str | None
) -> None:
    estate.auto_assign_tickets = enabled
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="ticket.auto_assign.set",
        target_type="Estate",
        target_id=estate.id,
        request_id=request_id,
        detail={"enabled": enabled},
    )
    await session.flush()


_CATEGORY_CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


async def set_category(
    session: AsyncSession,
    *,
    company_id: int,
    code: str,
    name: str,
    active: bool,
    sort_order: int | None,
    actor_id: int,
    request_id: str | None,
) -> TicketCategory:
    """Add a category to the company's list, or rename, reorder, retire (``active`` false) or
    bring back one. Tickets keep their category; a retired one is no longer offered."""
    code = code.strip().lower()
    name = name.strip()
    if not _CATEGORY_CODE.fullmatch(code):
        raise TicketError(TicketErrorCode.INVALID_INPUT, "A code of 2-32 lower-case letters, digits, _.", "code")
    if not 1 <= len(name) <= 64:
        raise TicketError(TicketErrorCode.INVALID_INPUT, "A name of 1 to 64 characters.", "name")
    await ensure_categories(session, company_id)
    values: dict[str, object] = {"name": name, "active": active}
    if sort_order is not None:
        values["sort_order"] = sort_order
    statement = (
        insert(TicketCategory)
        .values(company_id=company_id, code=code, sort_order=sort_order if sort_order is not None else 100, **{
            "name": name, "active": active})
        .on_conflict_do_update(index_elements=["company_id", "code"], set_=values)
        .returning(TicketCategory.id)
    )  # fmt: skip
    category_id = await session.scalar(statement)
    category = await session.get(TicketCategory, category_id, populate_existing=True)
    assert category is not None
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="ticket.category.set",
        target_type="OrgUnit",
        target_id=company_id,
        request_id=request_id,
        detail={"code": code, "name": name, "active": active, "sortOrder": sort_order},
    )
    return category
