"""Bill generation: one bill per unit × fee item × period, made once however often it runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import ColumnElement, Numeric, and_, cast, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.billing.area import apply_area_changes
from backend.billing.meters import bill_metered
from backend.billing.models import Bill, BillStatus, ChargeMethod, FeeBinding, FeeItem, FeeRate
from backend.billing.periods import billed_period, due_date
from backend.property.models import Estate, Unit

# Methods billed by period. METERED bills come from meter readings (bill_metered), ONE_OFF
# ones on demand.
PERIODIC_METHODS = (ChargeMethod.PER_AREA, ChargeMethod.FIXED)


@dataclass(slots=True)
class GenerationReport:
    created: int = 0
    skipped: int = 0  # already billed for that period
    items_without_rate: list[str] = field(default_factory=list)
    adjustments: int = 0  # area-correction lines put on this run's bills


async def generate_bills(
    *, session: AsyncSession, estate: Estate, month: dt.date, actor_id: int | None, request_id: str | None
) -> GenerationReport:
    """Bill every active binding of the estate's periodic fee items for ``month``.

    One INSERT … SELECT per fee item (never a round trip per bill). The unique key
    (unit, fee item, period start) makes a second run — or a concurrent one on another
    worker — skip what exists, so each bill is made exactly once.
    """
    report = GenerationReport()
    items = (
        await session.scalars(
            select(FeeItem)
            .where(FeeItem.estate_id == estate.id, FeeItem.active, FeeItem.method.in_(PERIODIC_METHODS))
            .order_by(FeeItem.id)
        )
    ).all()
    period_starts: set[dt.date] = set()
    for item in items:
        period = billed_period(month, item.cycle)
        if period is None:
            continue
        rate = await session.scalar(
            select(FeeRate.rate)
            .where(FeeRate.fee_item_id == item.id, FeeRate.effective_from <= period.start)
            .order_by(FeeRate.effective_from.desc())
            .limit(1)
        )
        if rate is None:
            report.items_without_rate.append(item.code)
            continue
        created, candidates = await _bill_item(
            session, item, period.label, period.start, period.end, period.months, rate
        )
        report.created += created
        report.skipped += candidates - created
        if item.method is ChargeMethod.PER_AREA:
            period_starts.add(period.start)
    for start in sorted(period_starts):
        report.adjustments += await apply_area_changes(session, estate_id=estate.id, period_start=start)
    # METERED bills: every month up to this one whose readings are not billed yet.
    created, skipped, without_rate = await bill_metered(session, estate_id=estate.id, through=month)
    report.created += created
    report.skipped += skipped
    report.items_without_rate.extend(code for code in without_rate if code not in report.items_without_rate)
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="bills.generate",
        target_type="Estate",
        target_id=estate.id,
        request_id=request_id,
        detail={
            "month": month.isoformat(),
            "created": report.created,
            "skipped": report.skipped,
            "adjustments": report.adjustments,
        },
    )
    return report


async def _bill_item(
    session: AsyncSession,
    item: FeeItem,
    label: str,
    start: dt.date,
    end: dt.date,
    months: int,
    rate: Decimal,
) -> tuple[int, int]:
    """Insert the item's bills for one period; returns (created, candidates)."""
    quantity: ColumnElement[Decimal]
    if item.method is ChargeMethod.PER_AREA:
        quantity = Unit.building_area.expression
        # Area × monthly rate × months, rounded half away from zero to the cent, in SQL
        # NUMERIC: exact, never through a float.
        amount = func.round(Unit.building_area * cast(rate, Numeric(12, 4)) * months, 2)
    else:
        quantity = cast(literal(1), Numeric(12, 2))
        amount = func.round(cast(rate, Numeric(12, 4)), 2)
    candidates = (
        select(
            Unit.estate_id,
            Unit.id.label("unit_id"),
            literal(item.id).label("fee_item_id"),
            literal(label).label("period"),
            literal(start).label("period_start"),
            literal(end).label("period_end"),
            quantity.label("quantity"),
            cast(rate, Numeric(12, 4)).label("rate"),
            amount.label("amount"),
            literal(due_date(start, item.due_day)).label("due_date"),
            literal(BillStatus.UNPAID.name).label("status"),
        )
        .join(FeeBinding, FeeBinding.unit_id == Unit.id)
        .where(
            FeeBinding.fee_item_id == item.id,
            FeeBinding.start_date <= start,
            or_(FeeBinding.end_date.is_(None), FeeBinding.end_date > start),
            and_(Unit.estate_id == item.estate_id),
        )
        .cte("candidates")
    )
    columns = [
        "estate_id", "unit_id", "fee_item_id", "period", "period_start", "period_end",
        "quantity", "rate", "amount", "due_date", "status",
    ]  # fmt: skip
    inserted = (
        insert(Bill)
        .from_select(columns, select(*(candidates.c[name] for name in columns)))
        .on_conflict_do_nothing(
            index_elements=["unit_id", "fee_item_id", "period_start"], index_where=text("ticket_id IS NULL")
        )
        .returning(Bill.id)
        .cte("inserted")
    )
    row = (
        await session.execute(
            select(
                select(func.count()).select_from(inserted).scalar_subquery(),
                select(func.count()).select_from(candidates).scalar_subquery(),
            )
        )
    ).one()
    return int(row[0]), int(row[1])
