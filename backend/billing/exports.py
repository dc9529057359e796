"""What the billing exports contain: one estate's bills, and its arrears per unit.

Each export is one SELECT restricted by the caller's row scope (``authz.scopes.scoped``),
read from a server-side cursor in chunks inside one read-only REPEATABLE READ snapshot, so
the row count written to the audit log is exactly the rows handed out. No personal data
beyond a payer's name: phone and ID numbers are never exported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, Row, Select, and_, case, cast, func, literal, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from authz.principal import Permissions
from authz.scopes import occupancy_current, scoped
from backend.billing.models import Bill, BillLine, BillLineKind, BillStatus, FeeItem
from backend.billing.periods import next_month
from backend.billing.reports import AGING_BUCKETS
from backend.db import to_global_id
from backend.people.models import Occupancy, OccupancyRole, Person
from backend.property.models import Building, Estate, Unit
from backend.spreadsheets import Cell

# Rows fetched from the server-side cursor at a time (and written as one piece of the file).
CHUNK_ROWS = 1000
ZERO = Decimal("0.00")

BILL_HEADER: tuple[str, ...] = (
    "Estate", "Building", "Unit", "Fee item code", "Fee item", "Period", "Period start", "Period end",
    "Due date", "Amount", "Adjustments", "Late fees", "Paid", "Waived", "Outstanding", "Status", "Bill ID",
)  # fmt: skip
ARREARS_HEADER: tuple[str, ...] = (
    "Estate", "Building", "Unit", "Payer", "Overdue total", "Oldest due date", "Overdue bills",
    *(f"{label} days" for label, _low, _high in AGING_BUCKETS),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BillFilters:
    """Which of an estate's bills: a month (by period start, like ``billingSummary``), some
    statuses (default: all but VOID), one fee item code."""

    estate_id: int
    month: dt.date | None = None
    statuses: tuple[BillStatus, ...] = ()
    fee_item_code: str | None = None


@dataclass(frozen=True, slots=True)
class Export:
    """One export: its statement, header and how a result row becomes cells."""

    name: str  # "bills" | "arrears"
    header: tuple[str, ...]
    statement: Select[*tuple[Any, ...]]
    cells: Callable[[Row[*tuple[Any, ...]]], list[Cell]]


def _line_totals() -> Any:
    """A bill's lines summed by kind, one index scan per bill (LATERAL)."""

    def total(*kinds: BillLineKind) -> Any:
        summed = func.sum(BillLine.amount).filter(BillLine.kind.in_(kinds))
        return cast(func.coalesce(summed, 0), Numeric(12, 2))

    return (
        select(
            total(BillLineKind.ADJUSTMENT).label("adjustments"),
            total(BillLineKind.LATE_FEE).label("late_fees"),
            (total(BillLineKind.PAYMENT) - total(BillLineKind.REVERSAL)).label("paid"),
            total(BillLineKind.WAIVER).label("waived"),
        )
        .where(BillLine.bill_id == Bill.id)
        .lateral("totals")
    )


def bills_export(permissions: Permissions, filters: BillFilters) -> Export:
    totals = _line_totals()
    owed = Bill.amount + totals.c.adjustments + totals.c.late_fees - totals.c.paid - totals.c.waived
    outstanding = case((Bill.status == BillStatus.VOID, ZERO), else_=func.greatest(owed, ZERO))
    statement: Select[*tuple[Any, ...]] = (
        select(
            Estate.code,
            Building.name,
            Unit.code,
            FeeItem.code,
            FeeItem.name,
            Bill.period,
            Bill.period_start,
            Bill.period_end,
            Bill.due_date,
            Bill.amount,
            totals.c.adjustments,
            totals.c.late_fees,
            totals.c.paid,
            totals.c.waived,
            outstanding,
            Bill.status,
            Bill.id,
        )
        .select_from(Bill)
        .join(Estate, Estate.id == Bill.estate_id)
        .join(Unit, Unit.id == Bill.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .join(FeeItem, FeeItem.id == Bill.fee_item_id)
        .join(totals, true())
        .where(Bill.estate_id == filters.estate_id)
    )
    if filters.month is not None:
        statement = statement.where(Bill.period_start >= filters.month, Bill.period_start < next_month(filters.month))
    if filters.statuses:
        statement = statement.where(Bill.status.in_(filters.statuses))
    else:
        statement = statement.where(Bill.status != BillStatus.VOID)
    if filters.fee_item_code:
        statement = statement.where(FeeItem.code == filters.fee_item_code)
    statement = scoped(statement, Bill, permissions).order_by(
        Building.id, Unit.code, FeeItem.code, Bill.period_start, Bill.id
    )

    def cells(row: Row[*tuple[Any, ...]]) -> list[Cell]:
        *values, status, bill_id = row
        return [*values, status.name, to_global_id("Bill", bill_id)]

    return Export("bills", BILL_HEADER, statement, cells)


def _payers(permissions: Permissions, estate_id: int) -> Any:
    """The owners in force today of the estate's units, names joined, as far as the caller
    may read those occupancies and persons."""
    names = func.string_agg(Person.name, aggregate_order_by(literal("、"), Occupancy.id))
    statement = (
        select(Occupancy.unit_id, names.label("names"))
        .join(Person, Person.id == Occupancy.person_id)
        .where(
            Occupancy.role == OccupancyRole.OWNER,
            occupancy_current(),
            Occupancy.unit_id.in_(select(Unit.id).where(Unit.estate_id == estate_id)),
        )
        .group_by(Occupancy.unit_id)
    )
    return scoped(scoped(statement, Occupancy, permissions), Person, permissions).subquery("payers")


def arrears_export(permissions: Permissions, *, estate_id: int, today: dt.date) -> Export:
    """Per unit owing anything overdue on ``today``: the total, the oldest due date and the
    amounts by days past due — the rows of ``arrearsAging``, unit by unit."""
    totals = _line_totals()
    owed = Bill.amount + totals.c.adjustments + totals.c.late_fees - totals.c.paid - totals.c.waived
    overdue = scoped(
        select(Bill.unit_id, Bill.due_date, (literal(today) - Bill.due_date).label("days"), owed.label("owed"))
        .join(totals, true())
        .where(Bill.estate_id == estate_id, Bill.due_date < today, Bill.status != BillStatus.VOID),
        Bill,
        permissions,
    ).subquery("overdue")

    def summed(condition: Any) -> Any:
        return cast(func.coalesce(func.sum(overdue.c.owed).filter(condition), 0), Numeric(12, 2))

    buckets = [
        summed(and_(overdue.c.days >= low, overdue.c.days <= high) if high else overdue.c.days >= low).label(label)
        for label, low, high in AGING_BUCKETS
    ]
    per_unit = (
        select(
            overdue.c.unit_id,
            cast(func.sum(overdue.c.owed), Numeric(12, 2)).label("total"),
            func.min(overdue.c.due_date).label("oldest_due"),
            func.count().label("bills"),
            *buckets,
        )
        .where(overdue.c.owed > 0)
        .group_by(overdue.c.unit_id)
        .subquery("arrears")
    )
    payers = _payers(permissions, estate_id)
    statement: Select[*tuple[Any, ...]] = (
        select(
            Estate.code,
            Building.name,
            Unit.code,
            payers.c.names,
            per_unit.c.total,
            per_unit.c.oldest_due,
            per_unit.c.bills,
            *(per_unit.c[label] for label, _low, _high in AGING_BUCKETS),
        )
        .select_from(per_unit)
        .join(Unit, Unit.id == per_unit.c.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .join(Estate, Estate.id == Unit.estate_id)
        .outerjoin(payers, payers.c.unit_id == per_unit.c.unit_id)
        .order_by(Building.id, Unit.code)
    )
    return Export("arrears", ARREARS_HEADER, statement, list)


async def begin_snapshot(session: AsyncSession) -> None:
    """Make ``session`` read-only on one REPEATABLE READ snapshot: every statement of an
    export (the estate, the count, the rows) then sees the same data."""
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})


async def count_rows(session: AsyncSession, export: Export) -> int:
    counted = select(func.count()).select_from(export.statement.order_by(None).subquery())
    return int(await session.scalar(counted) or 0)


async def row_chunks(session: AsyncSession, export: Export) -> AsyncIterator[list[list[Cell]]]:
    """The export's rows as cells, ``CHUNK_ROWS`` at a time from a server-side cursor."""
    result = await session.stream(export.statement.execution_options(yield_per=CHUNK_ROWS))
    async for partition in result.partitions(CHUNK_ROWS):
        yield [export.cells(row) for row in partition]
