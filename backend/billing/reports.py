"""Billing reports: the month's 收缴率 and the arrears by age (账龄分析)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.billing.models import Bill, BillStatus
from backend.property.models import Building, Unit

ZERO = Decimal("0.00")
# (label, first day overdue, last day overdue or None)
AGING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-180", 91, 180),
    (">180", 181, None),
)


def _cents(value: object) -> Decimal:
    return Decimal(str(value)).quantize(ZERO)


@dataclass(frozen=True, slots=True)
class Summary:
    billed: Decimal
    collected: Decimal
    waived: Decimal
    outstanding: Decimal

    @property
    def collection_rate(self) -> Decimal:
        """Collected over what was due after waivers, to four places (0.9512 = 95.12 %)."""
        due = self.billed - self.waived
        return (self.collected / due).quantize(Decimal("0.0001")) if due > 0 else Decimal("0.0000")


@dataclass(frozen=True, slots=True)
class BuildingSummary:
    building_id: int
    summary: Summary


def _sums(statement: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    bills = statement.subquery()
    owed = bills.c.amount + bills.c.charged_amount
    return select(
        func.coalesce(func.sum(owed), 0),
        func.coalesce(func.sum(bills.c.paid_amount), 0),
        func.coalesce(func.sum(bills.c.waived_amount), 0),
        func.coalesce(func.sum(func.greatest(owed - bills.c.paid_amount - bills.c.waived_amount, 0)), 0),
    )


def _bills_of_month(estate_id: int, month: dt.date) -> Select[*tuple[Any, ...]]:
    next_month = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return select(Bill.id, Bill.unit_id, Bill.amount, Bill.charged_amount, Bill.paid_amount, Bill.waived_amount).where(
        Bill.estate_id == estate_id,
        Bill.period_start >= month,
        Bill.period_start < next_month,
        Bill.status != BillStatus.VOID,
    )


async def billing_summary(
    session: AsyncSession, *, estate_id: int, month: dt.date
) -> tuple[Summary, list[BuildingSummary]]:
    """Bills whose period starts in ``month``: what was billed, collected (by any date),
    waived and is still outstanding — for the estate and per building."""
    base = _bills_of_month(estate_id, month)
    total = Summary(*(_cents(v) for v in (await session.execute(_sums(base))).one()))
    per_building: list[BuildingSummary] = []
    buildings = (
        await session.scalars(select(Building.id).where(Building.estate_id == estate_id).order_by(Building.id))
    ).all()
    if buildings:
        bills = base.add_columns(Unit.building_id).join(Unit, Unit.id == Bill.unit_id).subquery()
        owed = bills.c.amount + bills.c.charged_amount
        rows = await session.execute(
            select(
                bills.c.building_id,
                func.sum(owed),
                func.sum(bills.c.paid_amount),
                func.sum(bills.c.waived_amount),
                func.sum(func.greatest(owed - bills.c.paid_amount - bills.c.waived_amount, 0)),
            )
            .group_by(bills.c.building_id)
            .order_by(bills.c.building_id)
        )
        per_building = [BuildingSummary(row[0], Summary(*(_cents(v) for v in row[1:]))) for row in rows]
    return total, per_building


@dataclass(frozen=True, slots=True)
class AgingBucket:
    label: str
    amount: Decimal
    units: int


async def arrears_aging(session: AsyncSession, *, estate_id: int, today: dt.date) -> list[AgingBucket]:
    """What is overdue today, by days past the due date, with the number of units owing."""
    owed = Bill.amount + Bill.charged_amount - Bill.paid_amount - Bill.waived_amount
    overdue = (
        select(Bill.unit_id, (today - Bill.due_date).label("days"), owed.label("owed"))
        .where(Bill.estate_id == estate_id, Bill.due_date < today, Bill.status != BillStatus.VOID)
        .subquery()
    )
    bucket = case(
        *((and_(overdue.c.days >= low, overdue.c.days <= high) if high else overdue.c.days >= low, label)
          for label, low, high in AGING_BUCKETS)
    )  # fmt: skip
    rows = await session.execute(
        select(bucket, func.sum(overdue.c.owed), func.count(func.distinct(overdue.c.unit_id)))
        .where(overdue.c.owed > 0)
        .group_by(bucket)
    )
    found = {label: (_cents(amount), int(units)) for label, amount, units in rows}
    return [AgingBucket(label, *found.get(label, (ZERO, 0))) for label, _low, _high in AGING_BUCKETS]
