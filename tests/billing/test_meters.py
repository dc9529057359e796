"""Meters and readings (抄表): per-row checks, monotonic readings, replacements, METERED bills
in tiers, and who may record."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from billing_support import Ledger
from sqlalchemy import delete, func, select

from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.meters import ReadingRow, check_tiers, install_meter, price, record_readings, replace_meter
from backend.billing.models import (
    Bill,
    BillingCycle,
    BillStatus,
    ChargeMethod,
    FeeItem,
    FeeKind,
    FeeRate,
    Meter,
    MeterReading,
)
from backend.billing.service import generate_bills
from backend.db import local_today, to_global_id
from backend.property.models import Estate, Unit

TIERS = [{"upTo": "20.00", "price": "3.00"}, {"upTo": None, "price": "4.50"}]

RECORD = """
mutation($input: RecordMeterReadingsInput!) {
  recordMeterReadings(input: $input) {
    recordedCount rejectedCount
    results { index reading { id period value readOn } errors { field code } }
    errors { code }
  }
}
"""


def _month(today: dt.date, back: int) -> dt.date:
    index = today.year * 12 + today.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


@pytest_asyncio.fixture(loop_scope="session")
async def water(runtime: Any, ledger: Ledger) -> AsyncIterator[FeeItem]:
    """A METERED water item in tiers (≤ 20 m³ at 3.00, above at 4.50) on the ledger's estate."""
    async with runtime.sessionmaker() as session, session.begin():
        item = FeeItem(estate_id=ledger.estate.id, code="WT", name="水费", kind=FeeKind.WATER,
                       method=ChargeMethod.METERED, cycle=BillingCycle.MONTHLY, due_day=20)  # fmt: skip
        session.add(item)
        await session.flush()
        session.add(FeeRate(fee_item_id=item.id, rate=Decimal("3.00"), tiers=TIERS, effective_from=dt.date(2020, 1, 1)))
    ledger.items["WT"] = item  # removed with the ledger
    yield item


async def _meter(
    runtime: Any, unit: Unit, item: FeeItem, serial: str, initial: str = "0", months_ago: int = 6
) -> Meter:
    async with runtime.sessionmaker() as session, session.begin():
        return await install_meter(
            session=session, unit=unit, fee_item=item, serial=serial, multiplier=Decimal(1),
            initial_reading=Decimal(initial), installed_on=_month(local_today(), months_ago), actor_id=None,
            request_id=None,
        )  # fmt: skip


# -- pricing -------------------------------------------------------------------------------


@pytest.mark.parametrize(("consumption", "expected"), [
    ("0", "0.00"), ("12.5", "37.50"), ("20", "60.00"), ("25", "82.50"), ("20.01", "60.05"), ("100", "420.00"),
])  # fmt: skip
def test_tiered_prices_charge_each_tier_at_its_price(consumption: str, expected: str) -> None:
    # when
    amount = price(Decimal(consumption), Decimal("3.00"), TIERS)  # type: ignore[arg-type]
    # then
    assert amount == Decimal(expected)


def test_a_flat_rate_rounds_half_up_once() -> None:
    assert price(Decimal("3.35"), Decimal("0.5150"), None) == Decimal("1.73")  # 1.72525
    assert price(Decimal("1.00"), Decimal("0.0050"), None) == Decimal("0.01")


@pytest.mark.parametrize("tiers", [
    [(Decimal("20"), Decimal("3")), (Decimal("10"), Decimal("4"))],  # bounds go down
    [(Decimal("20"), Decimal("3"))],  # last one not open-ended
    [(None, Decimal("3")), (Decimal("20"), Decimal("4"))],  # open-ended first
    [(Decimal("20"), Decimal("-1")), (None, Decimal("4"))],  # negative price
    [(Decimal("20"), Decimal("3.00001")), (None, Decimal("4"))],  # 5 decimals
])  # fmt: skip
def test_bad_tiers_are_refused(tiers: list[tuple[Decimal | None, Decimal]]) -> None:
    with pytest.raises(BillingError) as caught:
        check_tiers(tiers)
    assert caught.value.code is BillingErrorCode.INVALID_TIERS


# -- readings ------------------------------------------------------------------------------


async def test_a_batch_stores_the_valid_rows_and_says_why_the_others_failed(
    as_user: Any, runtime: Any, ledger: Ledger, water: FeeItem
) -> None:
    # given two meters (the first starting at 100) and a month that has not come yet
    today = local_today()
    m0 = await _meter(runtime, ledger.units[0], water, "W-0001", initial="100")
    m1 = await _meter(runtime, ledger.units[1], water, "W-0002")
    last, this, next_ = _month(today, 1), _month(today, 0), _month(today, -1)
    rows = [
        {"meterId": m0.gid, "period": f"{last:%Y-%m}", "value": "110.00"},  # 0 ok
        {"meterId": m0.gid, "period": f"{this:%Y-%m}", "value": "105.00"},  # 1 below the last
        {"meterId": m1.gid, "period": f"{next_:%Y-%m}", "value": "1.00"},  # 2 future month
        {"meterId": m0.gid, "period": f"{last:%Y-%m}", "value": "111.00"},  # 3 same month again
        {"meterId": to_global_id("Meter", 999999), "period": f"{this:%Y-%m}", "value": "1"},  # 4 no such meter
        {"meterId": m1.gid, "period": f"{this:%Y-%m}", "value": "1.001"},  # 5 three decimals
        {"meterId": m1.gid, "period": "2026-13", "value": "1"},  # 6 not a month
        {"meterId": m1.gid, "period": f"{this:%Y-%m}", "value": "7.50", "readOn": str(today + dt.timedelta(1))},
        {"meterId": m1.gid, "period": f"{this:%Y-%m}", "value": "7.50"},  # 8 ok
    ]
    finance = await as_user("finance.north")
    # when
    body = (await finance.data(RECORD, {"input": {"readings": rows}}))["recordMeterReadings"]
    # then
    codes = [[e["code"] for e in r["errors"]] for r in body["results"]]
    assert codes == [[], ["READING_DECREASED"], ["READING_IN_FUTURE"], ["DUPLICATE_READING"], ["NOT_FOUND"],
                     ["INVALID_READING"], ["INVALID_PERIOD"], ["READING_IN_FUTURE"], []]  # fmt: skip
    assert (body["recordedCount"], body["rejectedCount"]) == (2, 7)
    assert [r["index"] for r in body["results"]] == list(range(9))
    assert body["results"][8]["reading"] == {
        "id": body["results"][8]["reading"]["id"], "period": f"{this:%Y-%m}", "value": "7.50", "readOn": str(today),
    }  # fmt: skip
    async with runtime.sessionmaker() as session:
        stored = (
            await session.execute(
                select(MeterReading.meter_id, MeterReading.period_start, MeterReading.value)
                .where(MeterReading.meter_id.in_([m0.id, m1.id]))
                .order_by(MeterReading.meter_id)
            )
        ).all()
    assert stored == [(m0.id, last, Decimal("110.00")), (m1.id, this, Decimal("7.50"))]


async def test_more_than_100_readings_are_refused_whole(
    as_user: Any, runtime: Any, ledger: Ledger, water: FeeItem
) -> None:
    # given
    meter = await _meter(runtime, ledger.units[0], water, "W-0100")
    rows = [{"meterId": meter.gid, "period": f"{_month(local_today(), 0):%Y-%m}", "value": "1"}] * 101
    # when
    body = (await (await as_user("finance.north")).data(RECORD, {"input": {"readings": rows}}))["recordMeterReadings"]
    # then
    assert [e["code"] for e in body["errors"]] == ["TOO_MANY_READINGS"]
    assert body["results"] == []
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(MeterReading.meter_id == meter.id)) == 0


async def test_a_back_filled_month_must_fit_between_its_neighbours(
    runtime: Any, ledger: Ledger, water: FeeItem
) -> None:
    # given readings 10 three months ago and 30 one month ago
    today = local_today()
    meter = await _meter(runtime, ledger.units[0], water, "W-0200")
    async with runtime.sessionmaker() as session, session.begin():
        await record_readings(session=session, today=today, actor_id=None, rows=[
            ReadingRow(meter.id, _month(today, 3), Decimal(10), today), ReadingRow(meter.id, _month(today, 1), Decimal(30), today),
        ])  # fmt: skip
    # when two months ago is filled in, above the next one and then within
    async with runtime.sessionmaker() as session, session.begin():
        too_high, within = await record_readings(session=session, today=today, actor_id=None, rows=[
            ReadingRow(meter.id, _month(today, 2), Decimal(31), today),
            ReadingRow(meter.id, _month(today, 2), Decimal(20), today),
        ])  # fmt: skip
    # then
    assert too_high.error is not None
    assert too_high.error[0] is BillingErrorCode.READING_DECREASED
    assert within.error is None
    assert within.reading_id is not None


async def test_concurrent_batches_for_one_meter_store_one_reading_per_month(
    runtime: Any, ledger: Ledger, water: FeeItem
) -> None:
    # given
    today = local_today()
    meter = await _meter(runtime, ledger.units[0], water, "W-0300")

    async def send(value: int) -> Any:
        async with runtime.sessionmaker() as session, session.begin():
            return await record_readings(
                session=session, today=today, actor_id=None, rows=[ReadingRow(meter.id, _month(today, 0), Decimal(value), today)]
            )  # fmt: skip

    # when ten clerks send this month's reading at once
    results = await asyncio.gather(*(send(v) for v in range(10, 20)))
    # then exactly one is stored; the others are told it is a duplicate
    stored = [r[0] for r in results if r[0].reading_id is not None]
    refused = [r[0].error[0] for r in results if r[0].error is not None]
    assert len(stored) == 1
    assert refused == [BillingErrorCode.DUPLICATE_READING] * 9
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(MeterReading.meter_id == meter.id)) == 1


# -- METERED bills -------------------------------------------------------------------------


async def test_metered_bills_price_the_months_consumption_in_tiers_once(
    runtime: Any, ledger: Ledger, water: FeeItem
) -> None:
    # given last month's readings: 100 → 125 (25 m³) and 0 → 7.5
    today = local_today()
    last = _month(today, 1)
    m0 = await _meter(runtime, ledger.units[0], water, "W-0400", initial="100")
    m1 = await _meter(runtime, ledger.units[1], water, "W-0401")
    async with runtime.sessionmaker() as session, session.begin():
        await record_readings(session=session, today=today, actor_id=None, rows=[
            ReadingRow(m0.id, last, Decimal("125"), today), ReadingRow(m1.id, last, Decimal("7.5"), today),
        ])  # fmt: skip
    # when this month is billed, twice
    reports = []
    for _ in range(2):
        async with runtime.sessionmaker() as session, session.begin():
            reports.append(await generate_bills(session=session, estate=ledger.estate, month=_month(today, 0),
                                                actor_id=None, request_id=None))  # fmt: skip
    # then last month's water is billed once, priced in tiers, due this month
    async with runtime.sessionmaker() as session:
        bills = (await session.scalars(select(Bill).where(Bill.fee_item_id == water.id).order_by(Bill.unit_id))).all()
    assert [(b.unit_id, b.period, b.quantity, b.amount, b.status) for b in bills] == [
        (ledger.units[0].id, f"{last:%Y-%m}", Decimal("25.00"), Decimal("82.50"), BillStatus.UNPAID),
        (ledger.units[1].id, f"{last:%Y-%m}", Decimal("7.50"), Decimal("22.50"), BillStatus.UNPAID),
    ]
    assert {b.due_date for b in bills} == {_month(today, 0).replace(day=20)}
    metered_second_run = reports[1].created
    assert metered_second_run == 0


async def test_a_replaced_meter_bills_the_old_and_the_new_meters_consumption(
    runtime: Any, ledger: Ledger, water: FeeItem
) -> None:
    # given a meter read at 110 two months ago, replaced last month at 130 by a new one starting at 0
    today = local_today()
    two, last = _month(today, 2), _month(today, 1)
    old = await _meter(runtime, ledger.units[0], water, "W-0500", initial="100")
    async with runtime.sessionmaker() as session, session.begin():
        await record_readings(session=session, today=today, actor_id=None,
                              rows=[ReadingRow(old.id, two, Decimal(110), today)])  # fmt: skip
    async with runtime.sessionmaker() as session, session.begin():
        new = await replace_meter(session=session, meter_id=old.id, final_reading=Decimal(130),
                                  replaced_on=last + dt.timedelta(days=9), serial="W-0501",
                                  initial_reading=Decimal(0), multiplier=None, today=today, actor_id=None,
                                  request_id=None)  # fmt: skip
    async with runtime.sessionmaker() as session, session.begin():
        after = await record_readings(session=session, today=today, actor_id=None, rows=[
            ReadingRow(new.id, last, Decimal(5), today), ReadingRow(old.id, _month(today, 0), Decimal(131), today),
        ])  # fmt: skip
    # when
    async with runtime.sessionmaker() as session, session.begin():
        await generate_bills(session=session, estate=ledger.estate, month=_month(today, 0), actor_id=None,
                             request_id=None)  # fmt: skip
    # then last month's bill is (130 − 110) + (5 − 0) = 25 m³; the old meter takes no more readings
    assert after[0].error is None
    assert after[1].error is not None
    assert after[1].error[0] is BillingErrorCode.METER_REMOVED
    async with runtime.sessionmaker() as session:
        bills = (
            await session.execute(
                select(Bill.period_start, Bill.quantity, Bill.amount)
                .where(Bill.fee_item_id == water.id)
                .order_by(Bill.period_start)
            )
        ).all()
        in_service = (await session.scalars(select(Meter.serial).where(Meter.unit_id == ledger.units[0].id,
                                                                          Meter.removed_on.is_(None)))).all()  # fmt: skip
    assert bills == [(two, Decimal("10.00"), Decimal("30.00")), (last, Decimal("25.00"), Decimal("82.50"))]
    assert in_service == ["W-0501"]


async def test_a_second_meter_for_the_same_unit_and_item_is_refused(
    runtime: Any, ledger: Ledger, water: FeeItem
) -> None:
    # given
    await _meter(runtime, ledger.units[0], water, "W-0600")
    # when
    with pytest.raises(BillingError) as caught:
        await _meter(runtime, ledger.units[0], water, "W-0601")
    # then
    assert caught.value.code is BillingErrorCode.METER_IN_SERVICE
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(Meter.serial == "W-0601")) == 0


# -- who may ------------------------------------------------------------------------------

INSTALL = """
mutation($input: InstallMeterInput!) { installMeter(input: $input) { meter { id serial } errors { code } } }
"""
METERS = """
query($unit: ID!) {
  meters(first: 100, filter: {unitId: $unit}) { edges { node { id serial unit { code } readings { period value } } } }
}
"""


@pytest_asyncio.fixture(loop_scope="session")
async def demo_a_meter(runtime: Any) -> AsyncIterator[Meter]:
    """A METERED item and a meter on owner.a1's unit in DEMO-A, removed afterwards."""
    async with runtime.sessionmaker() as session, session.begin():
        estate = await session.scalar(select(Estate).where(Estate.code == "DEMO-A"))
        assert estate is not None
        unit = await session.scalar(select(Unit).where(Unit.estate_id == estate.id, Unit.code == "1-1-101"))
        assert unit is not None
        item = FeeItem(estate_id=estate.id, code="WTEST", name="测试水费", kind=FeeKind.WATER,
                       method=ChargeMethod.METERED, cycle=BillingCycle.MONTHLY, due_day=20)  # fmt: skip
        session.add(item)
        await session.flush()
        session.add(FeeRate(fee_item_id=item.id, rate=Decimal("3.00"), effective_from=dt.date(2020, 1, 1)))
        meter = await install_meter(session=session, unit=unit, fee_item=item, serial="WTEST-1", multiplier=Decimal(1),
                                    initial_reading=Decimal(0), installed_on=dt.date(2020, 1, 1), actor_id=None,
                                    request_id=None)  # fmt: skip
    yield meter
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(MeterReading).where(MeterReading.meter_id == meter.id))
        await session.execute(delete(Meter).where(Meter.fee_item_id == item.id))
        await session.execute(delete(FeeRate).where(FeeRate.fee_item_id == item.id))
        await session.execute(delete(FeeItem).where(FeeItem.id == item.id))


@pytest.mark.parametrize(("username", "verdict"), [
    ("admin", "recorded"), ("manager.north", "recorded"), ("finance.north", "recorded"), ("cs.a", "recorded"),
    ("tech.a", "recorded"), ("guard.a", "FORBIDDEN"), ("supervisor.north", "FORBIDDEN"),
    ("supervisor.south", "FORBIDDEN"), ("owner.a1", "FORBIDDEN"), ("owner.c1", "FORBIDDEN"),
    (None, "UNAUTHENTICATED"),
])  # fmt: skip
async def test_who_may_record_readings(
    as_user: Any, runtime: Any, demo_a_meter: Meter, username: str | None, verdict: str
) -> None:
    # given a month of its own for each caller, so the readings never collide
    callers = ["admin", "manager.north", "finance.north", "cs.a", "tech.a", "guard.a", "supervisor.north",
               "supervisor.south", "owner.a1", "owner.c1", None]  # fmt: skip
    back = 1 + callers.index(username)
    period = _month(local_today(), back)
    client = await as_user(username)
    # when
    body = await client.execute(RECORD, {"input": {"readings": [
        {"meterId": demo_a_meter.gid, "period": f"{period:%Y-%m}", "value": str(1000 - back)}]}})  # fmt: skip
    # then
    async with runtime.sessionmaker() as session:
        stored = await session.scalar(
            select(func.count()).where(MeterReading.meter_id == demo_a_meter.id, MeterReading.period_start == period)
        )
    if verdict == "recorded":
        assert body["data"]["recordMeterReadings"]["recordedCount"] == 1, body
        assert stored == 1
    else:
        assert body["errors"][0]["extensions"]["code"] == verdict
        assert stored == 0


@pytest.mark.parametrize(("username", "sees"), [
    ("finance.north", True), ("cs.a", True), ("tech.a", True), ("owner.a1", True), ("manager.north", True),
    ("owner.a2", False), ("owner.c1", False), ("supervisor.north", False), ("guard.a", False),
])  # fmt: skip
async def test_meters_are_seen_by_staff_in_scope_and_by_the_units_owner(
    as_user: Any, runtime: Any, demo_a_meter: Meter, username: str, sees: bool
) -> None:
    # given
    async with runtime.sessionmaker() as session:
        unit = await session.get(Unit, demo_a_meter.unit_id)
    assert unit is not None
    # when
    edges = (await (await as_user(username)).data(METERS, {"unit": unit.gid}))["meters"]["edges"]
    # then
    assert (demo_a_meter.gid in [e["node"]["id"] for e in edges]) is sees


@pytest.mark.parametrize(("username", "code"), [
    ("finance.north", None), ("cs.a", "FORBIDDEN"), ("tech.a", "FORBIDDEN"), ("owner.a1", "FORBIDDEN"),
])  # fmt: skip
async def test_who_may_install_a_meter(
    as_user: Any, runtime: Any, ledger: Ledger, water: FeeItem, username: str, code: str | None
) -> None:
    # given
    serial = f"W-I-{username}"
    # when
    body = await (await as_user(username)).execute(INSTALL, {"input": {
        "unitId": ledger.units[1].gid, "feeItemId": water.gid, "serial": serial, "installedOn": "2026-01-01"}})  # fmt: skip
    # then
    async with runtime.sessionmaker() as session:
        made = await session.scalar(select(func.count()).where(Meter.serial == serial))
    if code is None:
        assert body["data"]["installMeter"]["meter"]["serial"] == serial
        assert made == 1
    else:
        assert body["errors"][0]["extensions"]["code"] == code
        assert made == 0


async def test_a_meter_of_an_estate_out_of_scope_is_not_found_per_row(
    as_user: Any, runtime: Any, demo_a_meter: Meter
) -> None:
    # given a DEMO-C meter, outside finance.north's scope
    async with runtime.sessionmaker() as session, session.begin():
        estate = await session.scalar(select(Estate).where(Estate.code == "DEMO-C"))
        assert estate is not None
        unit = await session.scalar(select(Unit).where(Unit.estate_id == estate.id).order_by(Unit.id).limit(1))
        item = FeeItem(estate_id=estate.id, code="WTESTC", name="测试水费", kind=FeeKind.WATER,
                       method=ChargeMethod.METERED, cycle=BillingCycle.MONTHLY, due_day=20)  # fmt: skip
        session.add(item)
        await session.flush()
        assert unit is not None
        south = await install_meter(session=session, unit=unit, fee_item=item, serial="WTESTC-1", multiplier=Decimal(1),
                                    initial_reading=Decimal(0), installed_on=dt.date(2020, 1, 1), actor_id=None,
                                    request_id=None)  # fmt: skip
    try:
        # when finance.north records for it
        body = (await (await as_user("finance.north")).data(RECORD, {"input": {"readings": [
            {"meterId": south.gid, "period": f"{_month(local_today(), 1):%Y-%m}", "value": "5"}]}}))  # fmt: skip
        # then it is answered exactly like a missing meter, and nothing is stored
        assert body["recordMeterReadings"]["results"][0]["errors"] == [{"field": "meterId", "code": "NOT_FOUND"}]
        async with runtime.sessionmaker() as session:
            assert await session.scalar(select(func.count()).where(MeterReading.meter_id == south.id)) == 0
    finally:
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(delete(Meter).where(Meter.id == south.id))
            await session.execute(delete(FeeItem).where(FeeItem.id == item.id))


REPLACE = """
mutation($input: ReplaceMeterInput!) {
  replaceMeter(input: $input) { meter { serial initialReading } errors { code field } }
}
"""


@pytest.mark.parametrize(("username", "code"), [
    ("finance.north", None), ("manager.north", None), ("cs.a", "FORBIDDEN"), ("tech.a", "FORBIDDEN"),
    ("owner.a1", "FORBIDDEN"), (None, "UNAUTHENTICATED"),
])  # fmt: skip
async def test_who_may_replace_a_meter(
    as_user: Any, runtime: Any, ledger: Ledger, water: FeeItem, username: str | None, code: str | None
) -> None:
    # given a meter at 100 installed six months ago
    old = await _meter(runtime, ledger.units[0], water, "W-R-OLD", initial="100")
    replaced_on = local_today()
    # when
    body = await (await as_user(username)).execute(REPLACE, {"input": {
        "meterId": old.gid, "finalReading": "123.40", "replacedOn": str(replaced_on), "serial": "W-R-NEW",
        "initialReading": "0.50"}})  # fmt: skip
    # then
    async with runtime.sessionmaker() as session:
        removed_on = await session.scalar(select(Meter.removed_on).where(Meter.id == old.id))
        successors = await session.scalar(select(func.count()).where(Meter.replaces_id == old.id))
        final = await session.scalar(select(MeterReading.value).where(MeterReading.meter_id == old.id))
    if code is None:
        assert body["data"]["replaceMeter"] == {"meter": {"serial": "W-R-NEW", "initialReading": "0.50"}, "errors": []}
        assert (removed_on, successors, final) == (replaced_on, 1, Decimal("123.40"))
    else:
        assert body["errors"][0]["extensions"]["code"] == code
        assert (removed_on, successors, final) == (None, 0, None)


async def test_a_final_reading_below_the_last_one_replaces_nothing(
    as_user: Any, runtime: Any, ledger: Ledger, water: FeeItem
) -> None:
    # given
    old = await _meter(runtime, ledger.units[0], water, "W-R2-OLD", initial="100")
    # when
    body = await (await as_user("finance.north")).data(REPLACE, {"input": {
        "meterId": old.gid, "finalReading": "99", "replacedOn": str(local_today()), "serial": "W-R2-NEW"}})  # fmt: skip
    # then
    assert body["replaceMeter"]["errors"] == [{"code": "READING_DECREASED", "field": "finalReading"}]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(Meter.removed_on).where(Meter.id == old.id)) is None
        assert await session.scalar(select(func.count()).where(Meter.serial == "W-R2-NEW")) == 0
