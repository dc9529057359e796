"""Unit-area corrections (面积变更自动计算差额).

Correcting a unit's building area from a date never edits a bill. The bills of PER_AREA fee
items issued before the correction for periods starting on or after that date were charged
on the old area; the difference, (new area − billed area) × rate × months per bill, is added
as one ADJUSTMENT line (positive or negative) to the unit's next bill of that item — the first
one generated after the correction. Each correction adjusts each bill at most once (a unique
key on the line), so re-running generation never adjusts twice.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Numeric, and_, cast, extract, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import Bill, BillLine, BillLineKind, BillStatus, ChargeMethod, FeeItem, UnitAreaChange
from backend.property.models import Unit

_AREA = Decimal("0.01")


async def correct_area(
    *,
    session: AsyncSession,
    unit_id: int,
    building_area: Decimal,
    inner_area: Decimal | None,
    effective_from: dt.date,
    reason: str,
    today: dt.date,
    actor_id: int | None,
    request_id: str | None,
) -> tuple[Unit, UnitAreaChange]:
    """Record the corrected area (and set it on the unit); the money follows on the next bills."""
    reason = reason.strip()
    if not 2 <= len(reason) <= 255:
        raise BillingError(BillingErrorCode.REASON_REQUIRED, "Say why, in 2 to 255 characters.", "reason")
    for value, field in ((building_area, "buildingArea"), (inner_area, "innerArea")):
        if value is not None and (
            not value.is_finite() or value <= 0 or value != value.quantize(_AREA) or value >= Decimal("1e8")
        ):
            raise BillingError(BillingErrorCode.INVALID_AREA, "An area in m², > 0, with at most 2 decimals.", field)
    if effective_from > today:
        raise BillingError(
            BillingErrorCode.INVALID_PERIOD, "A correction applies from today or earlier.", "effectiveFrom"
        )
    unit = await session.scalar(select(Unit).where(Unit.id == unit_id).with_for_update())
    if unit is None:
        raise BillingError(BillingErrorCode.NOT_FOUND, "No such unit.", "unitId")
    inner = inner_area if inner_area is not None else min(unit.inner_area, building_area)
    if inner > building_area:
        raise BillingError(BillingErrorCode.INVALID_AREA, "The inner area is at most the building area.", "innerArea")
    if building_area == unit.building_area and inner == unit.inner_area:
        raise BillingError(BillingErrorCode.INVALID_AREA, "The unit has these areas already.", "buildingArea")
    change = UnitAreaChange(
        unit_id=unit.id,
        old_area=unit.building_area,
        new_area=building_area,
        effective_from=effective_from,
        reason=reason,
        created_by_id=actor_id,
    )
    session.add(change)
    unit.building_area = building_area
    unit.inner_area = inner
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="unit.correct_area",
        target_type="Unit",
        target_id=unit.id,
        request_id=request_id,
        detail={
            "old": str(change.old_area),
            "new": str(building_area),
            "inner": str(inner),
            "from": effective_from.isoformat(),
            "reason": reason,
        },
    )
    return unit, change


async def apply_area_changes(session: AsyncSession, *, estate_id: int, period_start: dt.date) -> int:
    """Put each pending correction's difference on the unit's bill of ``period_start`` for
    every PER_AREA item, in one INSERT … SELECT. Returns the number of lines written."""
    earlier = Bill.__table__.alias("earlier")
    target = Bill.__table__.alias("target")
    months = (
        (extract("year", earlier.c.period_end) - extract("year", earlier.c.period_start)) * 12
        + extract("month", earlier.c.period_end)
        - extract("month", earlier.c.period_start)
        + 1
    )
    difference = (UnitAreaChange.new_area - earlier.c.quantity) * earlier.c.rate * cast(months, Numeric(4, 0))
    owed = (
        select(
            target.c.id.label("bill_id"),
            UnitAreaChange.id.label("area_change_id"),
            cast(func.round(func.sum(difference), 2), Numeric(12, 2)).label("amount"),
        )
        .select_from(UnitAreaChange)
        .join(target, target.c.unit_id == UnitAreaChange.unit_id)
        .join(FeeItem, and_(FeeItem.id == target.c.fee_item_id, FeeItem.method == ChargeMethod.PER_AREA))
        .join(
            earlier,
            and_(
                earlier.c.unit_id == target.c.unit_id,
                earlier.c.fee_item_id == target.c.fee_item_id,
                earlier.c.period_start >= UnitAreaChange.effective_from,
                earlier.c.period_start < target.c.period_start,
                earlier.c.created_at < UnitAreaChange.created_at,
                earlier.c.status != BillStatus.VOID.name,
            ),
        )
        .where(
            target.c.estate_id == estate_id,
            target.c.period_start == period_start,
            target.c.status != BillStatus.VOID.name,
            target.c.created_at >= UnitAreaChange.created_at,
            # Not yet settled on any bill of this item.
            ~select(BillLine.id)
            .join(Bill, Bill.id == BillLine.bill_id)
            .where(BillLine.area_change_id == UnitAreaChange.id, Bill.fee_item_id == target.c.fee_item_id)
            .exists(),
        )
        .group_by(target.c.id, UnitAreaChange.id)
        .having(func.round(func.sum(difference), 2) != 0)
        .cte("owed")
    )
    inserted = await session.execute(
        insert(BillLine)
        .from_select(
            ["bill_id", "area_change_id", "amount", "kind", "note"],
            select(
                owed.c.bill_id,
                owed.c.area_change_id,
                owed.c.amount,
                literal(BillLineKind.ADJUSTMENT.name),
                literal("面积变更差额 area correction"),
            ),
        )
        .on_conflict_do_nothing()
        .returning(BillLine.id)
    )
    return len(inserted.all())
