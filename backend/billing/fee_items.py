"""Managing fee items: create, dated rate changes, binding units in bulk."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from sqlalchemy import and_, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.meters import check_tiers
from backend.billing.models import BillingCycle, ChargeMethod, FeeBinding, FeeItem, FeeKind, FeeRate
from backend.property.models import Estate, Unit, UnitUsage

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{0,31}$")


def _tiers(
    method: ChargeMethod, tiers: list[tuple[Decimal | None, Decimal]] | None
) -> list[dict[str, str | None]] | None:
    """Tiered prices (阶梯价) are for METERED items only."""
    if tiers and method is not ChargeMethod.METERED:
        raise BillingError(BillingErrorCode.INVALID_TIERS, "Only METERED fee items price in tiers.", "tiers")
    return check_tiers(tiers)


def check_rate(rate: Decimal) -> Decimal:
    if not rate.is_finite() or rate < 0 or rate != rate.quantize(Decimal("0.0001")) or rate > Decimal("99999999"):
        raise BillingError(BillingErrorCode.INVALID_RATE, "A rate is ≥ 0 with at most 4 decimals.", "rate")
    return rate


async def create_fee_item(
    *,
    session: AsyncSession,
    estate: Estate,
    code: str,
    name: str,
    kind: FeeKind,
    method: ChargeMethod,
    cycle: BillingCycle,
    rate: Decimal,
    effective_from: dt.date,
    due_day: int,
    late_fee_daily_rate: Decimal,
    grace_days: int,
    actor_id: int,
    request_id: str | None,
    tiers: list[tuple[Decimal | None, Decimal]] | None = None,
) -> FeeItem:
    code = code.strip().upper()
    if not _CODE.fullmatch(code):
        raise BillingError(BillingErrorCode.INVALID_CODE, "Upper-case letters, digits, - and _ (max 32).", "code")
    if not 1 <= due_day <= 28:
        raise BillingError(BillingErrorCode.INVALID_DUE_DAY, "A due day between 1 and 28.", "dueDay")
    if late_fee_daily_rate < 0 or late_fee_daily_rate > Decimal("0.01") or grace_days < 0:
        raise BillingError(BillingErrorCode.INVALID_RATE, "Late fee 0–1 % a day, grace days ≥ 0.", "lateFeeDailyRate")
    check_rate(rate)
    stored_tiers = _tiers(method, tiers)
    if method is ChargeMethod.METERED and cycle is not BillingCycle.MONTHLY:
        raise BillingError(BillingErrorCode.INVALID_CYCLE, "Meters are read and billed monthly.", "cycle")
    if await session.scalar(select(FeeItem.id).where(FeeItem.estate_id == estate.id, FeeItem.code == code)):
        raise BillingError(BillingErrorCode.DUPLICATE_CODE, f"{estate.code} has a fee item {code} already.", "code")
    item = FeeItem(
        estate_id=estate.id,
        code=code,
        name=name.strip(),
        kind=kind,
        method=method,
        cycle=cycle,
        due_day=due_day,
        late_fee_daily_rate=late_fee_daily_rate,
        grace_days=grace_days,
    )
    session.add(item)
    await session.flush()
    session.add(FeeRate(fee_item_id=item.id, rate=rate, tiers=stored_tiers, effective_from=effective_from))
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="fee_item.create",
        target_type="FeeItem",
        target_id=item.id,
        request_id=request_id,
        detail={"code": code, "rate": str(rate), "from": effective_from.isoformat()},
    )
    return item


async def set_rate(
    *,
    session: AsyncSession,
    item: FeeItem,
    rate: Decimal,
    effective_from: dt.date,
    actor_id: int,
    request_id: str | None,
    tiers: list[tuple[Decimal | None, Decimal]] | None = None,
) -> None:
    """A new rate from a date on. Bills issued before keep the rate they were issued with."""
    check_rate(rate)
    stored_tiers = _tiers(item.method, tiers)
    added = await session.scalar(
        insert(FeeRate)
        .values(fee_item_id=item.id, rate=rate, tiers=stored_tiers, effective_from=effective_from)
        .on_conflict_do_nothing(index_elements=["fee_item_id", "effective_from"])
        .returning(FeeRate.id)
    )
    if added is None:
        raise BillingError(
            BillingErrorCode.RATE_EXISTS, "A rate from that date exists; pick another date.", "effectiveFrom"
        )
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="fee_item.rate",
        target_type="FeeItem",
        target_id=item.id,
        request_id=request_id,
        detail={"rate": str(rate), "from": effective_from.isoformat()},
    )


async def _matching_units(
    session: AsyncSession, item: FeeItem, unit_ids: list[int] | None, building_id: int | None, usage: UnitUsage | None
) -> list[int]:
    """The item's estate's units that match every filter given (all of them without one)."""
    matching = select(Unit.id).where(Unit.estate_id == item.estate_id)
    if unit_ids is not None:
        matching = matching.where(Unit.id.in_(unit_ids))
    if building_id is not None:
        matching = matching.where(Unit.building_id == building_id)
    if usage is not None:
        matching = matching.where(Unit.usage == usage)
    candidates = list((await session.scalars(matching)).all())
    if not candidates:
        raise BillingError(BillingErrorCode.NO_UNITS, "No unit of the estate matches.", "unitIds")
    return candidates


async def bind_units(
    *,
    session: AsyncSession,
    item: FeeItem,
    start_date: dt.date,
    unit_ids: list[int] | None,
    building_id: int | None,
    usage: UnitUsage | None,
    actor_id: int,
    request_id: str | None,
) -> tuple[int, int]:
    """Bind the item to the estate's units matching the filters (or the listed ones), in one
    statement. Units with a binding still open on ``start_date`` are skipped.
    Returns (bound, skipped)."""
    candidates = await _matching_units(session, item, unit_ids, building_id, usage)
    open_binding = select(FeeBinding.unit_id).where(
        FeeBinding.fee_item_id == item.id,
        FeeBinding.unit_id.in_(candidates),
        or_(FeeBinding.end_date.is_(None), FeeBinding.end_date > start_date),
    )
    inserted = (
        await session.scalars(
            insert(FeeBinding)
            .from_select(
                ["unit_id", "fee_item_id", "start_date"],
                select(Unit.id, literal(item.id), literal(start_date)).where(
                    and_(Unit.id.in_(candidates), Unit.id.not_in(open_binding))
                ),
            )
            .on_conflict_do_nothing()
            .returning(FeeBinding.id)
        )
    ).all()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="fee_item.bind",
        target_type="FeeItem",
        target_id=item.id,
        request_id=request_id,
        detail={"bound": len(inserted), "from": start_date.isoformat()},
    )
    return len(inserted), len(candidates) - len(inserted)


async def unbind_units(
    *,
    session: AsyncSession,
    item: FeeItem,
    end_date: dt.date,
    unit_ids: list[int] | None,
    building_id: int | None,
    usage: UnitUsage | None,
    actor_id: int,
    request_id: str | None,
) -> tuple[int, int]:
    """Stop charging the item to the matching units from ``end_date`` (exclusive end): the
    binding open on that day ends then. Bills already issued stay. Returns (ended, skipped:
    matching units without a binding open on that day)."""
    candidates = await _matching_units(session, item, unit_ids, building_id, usage)
    ended = (
        await session.scalars(
            update(FeeBinding)
            .where(
                FeeBinding.fee_item_id == item.id,
                FeeBinding.unit_id.in_(candidates),
                FeeBinding.start_date < end_date,
                or_(FeeBinding.end_date.is_(None), FeeBinding.end_date > end_date),
            )
            .values(end_date=end_date)
            .returning(FeeBinding.id)
        )
    ).all()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="fee_item.unbind",
        target_type="FeeItem",
        target_id=item.id,
        request_id=request_id,
        detail={"ended": len(ended), "from": end_date.isoformat()},
    )
    return len(ended), len(candidates) - len(ended)
