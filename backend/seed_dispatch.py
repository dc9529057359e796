"""Demo dispatch: tech.a is skilled in every default category and DEMO-A assigns its tickets
automatically. Idempotent, like the rest of the demo seed."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.property.models import Estate
from backend.tickets.models import TechnicianSkill, TicketCategory
from backend.tickets.service import DEFAULT_CATEGORIES, company_id_of, ensure_categories

DEMO_TECHNICIAN = "tech.a"
AUTO_ASSIGN_ESTATE = "DEMO-A"


async def ensure_demo_dispatch(session: AsyncSession) -> None:
    estate = await session.scalar(select(Estate).where(Estate.code == AUTO_ASSIGN_ESTATE))
    technician_id = await session.scalar(select(User.id).where(User.username == DEMO_TECHNICIAN))
    if estate is None or technician_id is None:
        return
    company_id = company_id_of(estate)
    await ensure_categories(session, company_id)
    category_ids = (
        await session.scalars(
            select(TicketCategory.id).where(
                TicketCategory.company_id == company_id, TicketCategory.code.in_([c for c, _ in DEFAULT_CATEGORIES])
            )
        )
    ).all()
    await session.execute(
        insert(TechnicianSkill)
        .values([{"user_id": technician_id, "category_id": category_id} for category_id in category_ids])
        .on_conflict_do_nothing()
    )
    await session.execute(update(Estate).where(Estate.id == estate.id).values(auto_assign_tickets=True))
