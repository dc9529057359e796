"""Meters and their monthly readings (抄表), and the METERED bills made from them.

A reading belongs to a month (``period_start`` is its first day). Per meter, readings only go
up: a new reading is at least the meter's latest earlier one (or its initial reading) and at
most its next later one, if a month was back-filled. A replaced meter keeps its readings and
gets a final one; the new meter starts from its own initial reading, so a replacement never
looks like a counter going backwards.

Consumption of a month is (reading − previous reading) × multiplier, summed over the unit's
meters of the fee item (the old and the new one in the month of a replacement). Its bill is
priced by the fee item's rate in force on the first of the month, flat or in tiers (阶梯价).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import (
    Bill,
    BillStatus,
    ChargeMethod,
    FeeItem,
    FeeRate,
    Meter,
    MeterReading,
)
from backend.billing.periods import due_date, parse_month
from backend.property.models import Unit

MAX_READINGS_PER_CALL = 100
_READING = Decimal("0.01")
_TIER_PRICE = Decimal("0.0001")


# -- tiers ---------------------------------------------------------------------------------


def check_tiers(tiers: list[tuple[Decimal | None, Decimal]] | None) -> list[dict[str, str | None]] | None:
    """Validate ``(up to, price)`` tiers: ascending bounds, the last open-ended, prices ≥ 0
    with at most 4 decimals. Returns them as stored (strings, exact)."""
    if not tiers:
        return None
    stored: list[dict[str, str | None]] = []
    previous = Decimal(0)
    for index, (up_to, price) in enumerate(tiers):
        last = index == len(tiers) - 1
        if not price.is_finite() or price < 0 or price != price.quantize(_TIER_PRICE):
            raise BillingError(BillingErrorCode.INVALID_TIERS, "A tier price is ≥ 0 with at most 4 decimals.", "tiers")
        if last != (up_to is None):
            raise BillingError(BillingErrorCode.INVALID_TIERS, "Only the last tier is open-ended.", "tiers")
        if up_to is not None:
            if not up_to.is_finite() or up_to <= previous or up_to != up_to.quantize(_READING):
                raise BillingError(BillingErrorCode.INVALID_TIERS, "Tier bounds go up, in 0.01 steps.", "tiers")
            previous = up_to
        stored.append({"upTo": None if up_to is None else str(up_to), "price": str(price)})
    return stored


def price(consumption: Decimal, rate: Decimal, tiers: list[dict[str, str | None]] | None) -> Decimal:
    """What ``consumption`` costs: flat ``rate`` per unit, or tier by tier; rounded half up
    to the cent once, at the end."""
    if not tiers:
        exact = consumption * rate
    else:
        exact = Decimal(0)
        floor = Decimal(0)
        for tier in tiers:
            ceiling = None if tier["upTo"] is None else Decimal(tier["upTo"])
            part = consumption - floor if ceiling is None else min(consumption, ceiling) - floor
            if part > 0:
                exact += part * Decimal(str(tier["price"]))
            if ceiling is None or consumption <= ceiling:
                break
            floor = ceiling
    return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# -- meters --------------------------------------------------------------------------------


def _reading_value(value: Decimal, field: str) -> Decimal:
    if not value.is_finite() or value < 0 or value != value.quantize(_READING) or value >= Decimal("1e12"):
        raise BillingError(BillingErrorCode.INVALID_READING, "A reading is ≥ 0 with at most 2 decimals.", field)
    return value


async def install_meter(
    *,
    session: AsyncSession,
    unit: Unit,
    fee_item: FeeItem,
    serial: str,
    multiplier: Decimal,
    initial_reading: Decimal,
    installed_on: dt.date,
    actor_id: int | None,
    request_id: str | None,
    replaces: Meter | None = None,
) -> Meter:
    serial = serial.strip()
    if not 1 <= len(serial) <= 64:
        raise BillingError(BillingErrorCode.INVALID_CODE, "A serial number of 1 to 64 characters.", "serial")
    if fee_item.method is not ChargeMethod.METERED or fee_item.estate_id != unit.estate_id:
        raise BillingError(
            BillingErrorCode.NOT_METERED, "Meters belong to a METERED fee item of the unit's estate.", "feeItemId"
        )
    if not multiplier.is_finite() or multiplier <= 0 or multiplier != multiplier.quantize(_TIER_PRICE):
        raise BillingError(
            BillingErrorCode.INVALID_READING, "A multiplier is > 0 with at most 4 decimals.", "multiplier"
        )
    initial_reading = _reading_value(initial_reading, "initialReading")
    if await session.scalar(select(Meter.id).where(Meter.estate_id == unit.estate_id, Meter.serial == serial)):
        raise BillingError(BillingErrorCode.DUPLICATE_CODE, f"Meter {serial} exists in this estate.", "serial")
    in_service = await session.scalar(
        select(Meter.id).where(Meter.unit_id == unit.id, Meter.fee_item_id == fee_item.id, Meter.removed_on.is_(None))
    )
    if in_service is not None and (replaces is None or replaces.id != in_service):
        raise BillingError(
            BillingErrorCode.METER_IN_SERVICE, "The unit has a meter for this fee item; replace it instead.", "unitId"
        )
    meter = Meter(
        estate_id=unit.estate_id,
        unit_id=unit.id,
        fee_item_id=fee_item.id,
        serial=serial,
        multiplier=multiplier,
        initial_reading=initial_reading,
        installed_on=installed_on,
        replaces_id=replaces.id if replaces is not None else None,
    )
    session.add(meter)
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="meter.install",
        target_type="Meter",
        target_id=meter.id,
        request_id=request_id,
        detail={"serial": serial, "unit": unit.id, "replaces": meter.replaces_id, "initial": str(initial_reading)},
    )
    return meter


async def replace_meter(
    *,
    session: AsyncSession,
    meter_id: int,
    final_reading: Decimal,
    replaced_on: dt.date,
    serial: str,
    initial_reading: Decimal,
    multiplier: Decimal | None,
    today: dt.date,
    actor_id: int | None,
    request_id: str | None,
) -> Meter:
    """Take a meter out of service with its final reading (counted in the month it was
    replaced) and install its successor."""
    meter = await session.scalar(select(Meter).where(Meter.id == meter_id).with_for_update())
    if meter is None:
        raise BillingError(BillingErrorCode.NOT_FOUND, "No such meter.", "meterId")
    if meter.removed_on is not None:
        raise BillingError(BillingErrorCode.METER_REMOVED, "This meter was replaced already.", "meterId")
    if replaced_on > today or replaced_on < meter.installed_on:
        raise BillingError(
            BillingErrorCode.READING_IN_FUTURE, "Replaced between its installation and today.", "replacedOn"
        )
    month = replaced_on.replace(day=1)
    results = await record_readings(
        session=session,
        rows=[ReadingRow(meter_id=meter.id, period_start=month, value=final_reading, read_on=replaced_on)],
        today=today,
        actor_id=actor_id,
        final=True,
    )
    if results[0].error is not None:
        code, message, _ = results[0].error
        raise BillingError(code, message, "finalReading")
    meter.removed_on = replaced_on
    await session.flush()
    unit = await session.get(Unit, meter.unit_id)
    item = await session.get(FeeItem, meter.fee_item_id)
    assert unit is not None
    assert item is not None
    return await install_meter(
        session=session,
        unit=unit,
        fee_item=item,
        serial=serial,
        multiplier=multiplier if multiplier is not None else meter.multiplier,
        initial_reading=initial_reading,
        installed_on=replaced_on,
        actor_id=actor_id,
        request_id=request_id,
        replaces=meter,
    )


# -- readings ------------------------------------------------------------------------------


@dataclass(slots=True)
class ReadingRow:
    meter_id: int | None  # None: the caller's id did not decode or is out of scope
    period_start: dt.date | None  # None: the period did not parse
    value: Decimal
    read_on: dt.date


@dataclass(slots=True)
class ReadingResult:
    reading_id: int | None = None
    error: tuple[BillingErrorCode, str, str] | None = None  # code, message, field


def parse_period(value: str) -> dt.date | None:
    try:
        return parse_month(value)
    except BillingError:
        return None


async def record_readings(
    *,
    session: AsyncSession,
    rows: list[ReadingRow],
    today: dt.date,
    actor_id: int | None,
    final: bool = False,
) -> list[ReadingResult]:
    """Check each row and store the valid ones (even when others fail); one result per row,
    in order. The meters are locked first (in id order), so two batches for one meter see
    each other's readings and cannot both break monotonicity."""
    if len(rows) > MAX_READINGS_PER_CALL:
        raise BillingError(
            BillingErrorCode.TOO_MANY_READINGS, f"At most {MAX_READINGS_PER_CALL} readings per call.", "readings"
        )
    results = [ReadingResult() for _ in rows]
    meter_ids = sorted({r.meter_id for r in rows if r.meter_id is not None})
    meters = {
        m.id: m
        for m in (
            await session.scalars(select(Meter).where(Meter.id.in_(meter_ids)).order_by(Meter.id).with_for_update())
        ).all()
    }
    # Every stored reading of these meters, in one query: (meter, month) → value.
    stored: dict[int, dict[dt.date, Decimal]] = {m: {} for m in meter_ids}
    for meter_id, period_start, value in (
        await session.execute(
            select(MeterReading.meter_id, MeterReading.period_start, MeterReading.value).where(
                MeterReading.meter_id.in_(meter_ids)
            )
        )
    ).all():
        stored[meter_id][period_start] = value
    this_month = today.replace(day=1)
    accepted: list[tuple[int, ReadingRow]] = []
    for index, row in enumerate(rows):
        meter = meters.get(row.meter_id) if row.meter_id is not None else None

        def fail(code: BillingErrorCode, message: str, field: str, index: int = index) -> None:
            results[index].error = (code, message, field)

        if meter is None:
            fail(BillingErrorCode.NOT_FOUND, "No such meter.", "meterId")
            continue
        if row.period_start is None:
            fail(BillingErrorCode.INVALID_PERIOD, "A period is a month: YYYY-MM.", "period")
            continue
        try:
            value = _reading_value(row.value, "value")
        except BillingError as exc:
            fail(exc.code, exc.message, "value")
            continue
        if row.period_start > this_month or row.read_on > today:
            fail(BillingErrorCode.READING_IN_FUTURE, "A reading cannot be for a future month or day.", "readOn")
            continue
        if row.read_on < row.period_start:
            fail(BillingErrorCode.INVALID_PERIOD, "A month's reading is taken in or after that month.", "readOn")
            continue
        if row.period_start < meter.installed_on.replace(day=1):
            fail(BillingErrorCode.INVALID_PERIOD, "The meter was not installed in that month.", "period")
            continue
        if meter.removed_on is not None and not final:
            fail(BillingErrorCode.METER_REMOVED, "The meter was replaced; read its successor.", "meterId")
            continue
        readings = stored[meter.id]
        if row.period_start in readings:
            fail(BillingErrorCode.DUPLICATE_READING, "This meter has a reading for that month.", "period")
            continue
        earlier = [v for p, v in readings.items() if p < row.period_start]
        later = [v for p, v in readings.items() if p > row.period_start]
        floor = max(earlier) if earlier else meter.initial_reading
        if value < floor:
            fail(BillingErrorCode.READING_DECREASED, f"Below the previous reading {floor}.", "value")
            continue
        if later and value > min(later):
            fail(BillingErrorCode.READING_DECREASED, f"Above the next month's reading {min(later)}.", "value")
            continue
        readings[row.period_start] = value  # later rows of this batch see it
        accepted.append((index, ReadingRow(meter.id, row.period_start, value, row.read_on)))
    if accepted:
        inserted = await session.execute(
            insert(MeterReading)
            .values(
                [
                    {
                        "meter_id": row.meter_id,
                        "period_start": row.period_start,
                        "value": row.value,
                        "read_on": row.read_on,
                        "recorded_by_id": actor_id,
                    }
                    for _, row in accepted
                ]
            )
            .on_conflict_do_nothing(index_elements=["meter_id", "period_start"])
            .returning(MeterReading.id, MeterReading.meter_id, MeterReading.period_start)
        )
        ids = {(meter_id, period): reading_id for reading_id, meter_id, period in inserted.all()}
        for index, row in accepted:
            reading_id = ids.get((row.meter_id, row.period_start))  # type: ignore[arg-type]
            if reading_id is None:
                results[index].error = (
                    BillingErrorCode.DUPLICATE_READING,
                    "This meter has a reading for that month.",
                    "period",
                )
            else:
                results[index].reading_id = reading_id
    return results


# -- METERED bills -------------------------------------------------------------------------


async def bill_metered(session: AsyncSession, *, estate_id: int, through: dt.date) -> tuple[int, int, list[str]]:
    """Bill every month up to ``through`` whose readings have no bill yet (a reading entered
    late is billed by the next run). One query for the consumption, one INSERT for the bills;
    the unique key (unit, fee item, period start) makes re-runs and concurrent runs skip.

    Returns (created, skipped, codes of items without a rate)."""
    previous = (
        func.lag(MeterReading.value)
        .over(partition_by=MeterReading.meter_id, order_by=MeterReading.period_start)
        .label("previous")
    )
    deltas = (
        select(
            Meter.unit_id,
            Meter.fee_item_id,
            MeterReading.period_start,
            MeterReading.value,
            func.coalesce(previous, Meter.initial_reading).label("previous"),
            Meter.multiplier,
        )
        .join(Meter, Meter.id == MeterReading.meter_id)
        .join(FeeItem, FeeItem.id == Meter.fee_item_id)
        .where(Meter.estate_id == estate_id, FeeItem.active, FeeItem.method == ChargeMethod.METERED)
        .subquery()
    )
    consumption = func.sum((deltas.c.value - deltas.c.previous) * deltas.c.multiplier)
    unbilled = (
        select(deltas.c.unit_id, deltas.c.fee_item_id, deltas.c.period_start, consumption.label("consumption"))
        .where(deltas.c.period_start <= through)
        .group_by(deltas.c.unit_id, deltas.c.fee_item_id, deltas.c.period_start)
        .having(
            ~select(Bill.id)
            .where(
                Bill.unit_id == deltas.c.unit_id,
                Bill.fee_item_id == deltas.c.fee_item_id,
                Bill.period_start == deltas.c.period_start,
            )
            .exists()
        )
    )
    rows = (await session.execute(unbilled)).all()
    if not rows:
        return 0, 0, []
    item_ids = sorted({r.fee_item_id for r in rows})
    items = {i.id: i for i in (await session.scalars(select(FeeItem).where(FeeItem.id.in_(item_ids)))).all()}
    rates: dict[int, list[FeeRate]] = {i: [] for i in item_ids}
    for rate in (
        await session.scalars(select(FeeRate).where(FeeRate.fee_item_id.in_(item_ids)).order_by(FeeRate.effective_from))
    ).all():
        rates[rate.fee_item_id].append(rate)
    without_rate: set[str] = set()
    values: list[dict[str, Any]] = []
    for row in rows:
        item = items[row.fee_item_id]
        in_force = [r for r in rates[item.id] if r.effective_from <= row.period_start]
        if not in_force:
            without_rate.add(item.code)
            continue
        rate = in_force[-1]
        quantity = Decimal(row.consumption).quantize(_READING, rounding=ROUND_HALF_UP)
        start: dt.date = row.period_start
        end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        values.append(
            {
                "estate_id": estate_id,
                "unit_id": row.unit_id,
                "fee_item_id": item.id,
                "period": f"{start.year}-{start.month:02d}",
                "period_start": start,
                "period_end": end,
                "quantity": quantity,
                "rate": rate.rate,
                "amount": price(quantity, rate.rate, rate.tiers),
                # Read at the end of the month, billed after it: due in the following month.
                "due_date": due_date(end + dt.timedelta(days=1), item.due_day),
                "status": BillStatus.UNPAID,
            }
        )
    created = 0
    if values:
        # executemany with RETURNING: SQLAlchemy sends it in batches of multi-row VALUES
        # ("insertmanyvalues"), within PostgreSQL's bind-parameter limit for any estate size.
        inserted = await session.execute(
            insert(Bill)
            .on_conflict_do_nothing(
                index_elements=["unit_id", "fee_item_id", "period_start"], index_where=text("ticket_id IS NULL")
            )
            .returning(Bill.id),
            values,
        )
        created = len(inserted.all())
    return created, len(values) - created, sorted(without_rate)


__all__ = [
    "MAX_READINGS_PER_CALL",
    "ReadingResult",
    "ReadingRow",
    "bill_metered",
    "check_tiers",
    "install_meter",
    "parse_period",
    "price",
    "record_readings",
    "replace_meter",
]
