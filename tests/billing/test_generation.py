"""Bill generation against a real database: amounts, cycles, rates, idempotency, concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError

from backend.billing.errors import BillingError
from backend.billing.models import (
    Bill,
    BillingCycle,
    BillLine,
    BillLineKind,
    ChargeMethod,
    FeeBinding,
    FeeItem,
    FeeKind,
    FeeRate,
)
from backend.billing.periods import parse_month
from backend.billing.service import generate_bills
from backend.property.models import Building, Estate, OrgUnit, Unit, UnitUsage

NOV = dt.date(2026, 11, 1)


@dataclass
class Ledger:
    estate: Estate
    units: list[Unit]
    items: dict[str, FeeItem]


@pytest_asyncio.fixture(loop_scope="session")
async def ledger(runtime: Any) -> AsyncIterator[Ledger]:
    """A fresh estate: two flats (89.56 m², 120.00 m²) and a parking space, three fee items."""
    code = f"BG{uuid.uuid4().hex[:8].upper()}"
    async with runtime.sessionmaker() as session, session.begin():
        office = await session.scalar(select(OrgUnit).where(OrgUnit.code == "N1"))
        assert office is not None
        estate = Estate(org_unit_id=office.id, org_path=office.path, code=code, name="账单测试")
        session.add(estate)
        await session.flush()
        building = Building(estate_id=estate.id, code="1", name="1号楼")
        session.add(building)
        await session.flush()
        units = [
            Unit(estate_id=estate.id, building_id=building.id, code=c, floor=1, building_area=Decimal(a),
                 inner_area=Decimal(a) * Decimal("0.8"), usage=u)
            for c, a, u in (("1-1-101", "89.56", UnitUsage.RESIDENTIAL), ("1-1-102", "120.00", UnitUsage.RESIDENTIAL),
                            ("P-1-001", "12.50", UnitUsage.PARKING))
        ]  # fmt: skip
        session.add_all(units)
        items = {
            "PF": FeeItem(estate_id=estate.id, code="PF", name="物业费", kind=FeeKind.PROPERTY_FEE,
                          method=ChargeMethod.PER_AREA, cycle=BillingCycle.MONTHLY, due_day=31 - 3),
            "GB": FeeItem(estate_id=estate.id, code="GB", name="垃圾费", kind=FeeKind.GARBAGE,
                          method=ChargeMethod.FIXED, cycle=BillingCycle.QUARTERLY, due_day=10),
            "PK": FeeItem(estate_id=estate.id, code="PK", name="车位费", kind=FeeKind.PARKING,
                          method=ChargeMethod.FIXED, cycle=BillingCycle.MONTHLY, due_day=5),
        }  # fmt: skip
        session.add_all(items.values())
        await session.flush()
        since = dt.date(2026, 1, 1)
        session.add_all(
            [
                FeeRate(fee_item_id=items["PF"].id, rate=Decimal("2.50"), effective_from=since),
                FeeRate(fee_item_id=items["GB"].id, rate=Decimal("30.00"), effective_from=since),
                FeeRate(fee_item_id=items["PK"].id, rate=Decimal("150.00"), effective_from=since),
            ]
            + [FeeBinding(unit_id=u.id, fee_item_id=items["PF"].id, start_date=since) for u in units[:2]]
            + [FeeBinding(unit_id=u.id, fee_item_id=items["GB"].id, start_date=since) for u in units[:2]]
            + [FeeBinding(unit_id=units[2].id, fee_item_id=items["PK"].id, start_date=since)]
        )
    yield Ledger(estate, units, items)
    async with runtime.sessionmaker() as session, session.begin():
        bills = select(Bill.id).where(Bill.estate_id == estate.id)
        await session.execute(text("ALTER TABLE bill_lines DISABLE TRIGGER bill_lines_append_only"))
        await session.execute(delete(BillLine).where(BillLine.bill_id.in_(bills)))
        await session.execute(text("ALTER TABLE bill_lines ENABLE TRIGGER bill_lines_append_only"))
        await session.execute(delete(Bill).where(Bill.estate_id == estate.id))
        item_ids = [i.id for i in items.values()]
        await session.execute(delete(FeeBinding).where(FeeBinding.fee_item_id.in_(item_ids)))
        await session.execute(delete(FeeRate).where(FeeRate.fee_item_id.in_(item_ids)))
        await session.execute(delete(FeeItem).where(FeeItem.id.in_(item_ids)))
        await session.execute(delete(Unit).where(Unit.estate_id == estate.id))
        await session.execute(delete(Building).where(Building.estate_id == estate.id))
        await session.execute(delete(Estate).where(Estate.id == estate.id))


async def _generate(runtime: Any, ledger: Ledger, month: dt.date) -> tuple[int, int]:
    async with runtime.sessionmaker() as session, session.begin():
        report = await generate_bills(
            session=session, estate=ledger.estate, month=month, actor_id=None, request_id=None
        )
    return report.created, report.skipped


async def _bills(runtime: Any, ledger: Ledger) -> list[Bill]:
    async with runtime.sessionmaker() as session:
        return list(
            (await session.scalars(select(Bill).where(Bill.estate_id == ledger.estate.id).order_by(Bill.id))).all()
        )


async def test_amounts_are_exact_and_each_cycle_bills_its_own_period(runtime: Any, ledger: Ledger) -> None:
    # when: October (a quarter's first month) and November
    october = await _generate(runtime, ledger, dt.date(2026, 10, 1))
    november = await _generate(runtime, ledger, NOV)
    # then
    assert october == (2 + 2 + 1, 0)  # PF × 2, the quarter's GB × 2, PK × 1
    assert november == (2 + 1, 0)  # no garbage bill in the quarter's second month
    by_key = {(b.fee_item_id, b.unit_id, b.period): b for b in await _bills(runtime, ledger)}
    flat, big, parking = ledger.units
    pf, gb, pk = ledger.items["PF"].id, ledger.items["GB"].id, ledger.items["PK"].id
    assert by_key[(pf, flat.id, "2026-11")].amount == Decimal("223.90")  # 89.56 × 2.50
    assert by_key[(pf, big.id, "2026-11")].amount == Decimal("300.00")
    assert by_key[(pf, flat.id, "2026-11")].quantity == Decimal("89.56")
    assert by_key[(pf, flat.id, "2026-11")].due_date == dt.date(2026, 11, 28)
    quarter = by_key[(gb, flat.id, "2026-Q4")]
    assert (quarter.amount, quarter.period_start, quarter.period_end) == (
        Decimal("30.00"),
        dt.date(2026, 10, 1),
        dt.date(2026, 12, 31),
    )
    assert by_key[(pk, parking.id, "2026-11")].amount == Decimal("150.00")
    assert all(b.outstanding == b.amount and b.paid_amount == 0 for b in by_key.values())


async def test_running_twice_makes_each_bill_once(runtime: Any, ledger: Ledger) -> None:
    # when
    first = await _generate(runtime, ledger, NOV)
    second = await _generate(runtime, ledger, NOV)
    # then
    assert first == (3, 0)
    assert second == (0, 3)
    assert len(await _bills(runtime, ledger)) == 3


async def test_two_workers_at_once_make_each_bill_once(runtime: Any, ledger: Ledger) -> None:
    # when
    results = await asyncio.gather(*(_generate(runtime, ledger, NOV) for _ in range(4)))
    # then
    assert sum(created for created, _ in results) == 3
    assert len(await _bills(runtime, ledger)) == 3


async def test_a_new_rate_applies_from_its_date_and_issued_bills_keep_theirs(runtime: Any, ledger: Ledger) -> None:
    # given the November bills, then a rate rise from December
    await _generate(runtime, ledger, NOV)
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            FeeRate(fee_item_id=ledger.items["PF"].id, rate=Decimal("2.80"), effective_from=dt.date(2026, 12, 1))
        )
    # when
    await _generate(runtime, ledger, dt.date(2026, 12, 1))
    # then
    flat = ledger.units[0]
    amounts = {b.period: b.amount for b in await _bills(runtime, ledger) if b.unit_id == flat.id}
    assert amounts["2026-11"] == Decimal("223.90")
    assert amounts["2026-12"] == Decimal("250.77")  # 89.56 × 2.80 = 250.768 → 250.77


async def test_an_ended_binding_bills_nothing_afterwards(runtime: Any, ledger: Ledger) -> None:
    # given the parking space given up at the end of November
    async with runtime.sessionmaker() as session, session.begin():
        binding = await session.scalar(select(FeeBinding).where(FeeBinding.fee_item_id == ledger.items["PK"].id))
        assert binding is not None
        binding.end_date = dt.date(2026, 12, 1)
    # when
    await _generate(runtime, ledger, NOV)
    december = await _generate(runtime, ledger, dt.date(2026, 12, 1))
    # then
    assert december == (2, 0)
    periods = sorted(b.period for b in await _bills(runtime, ledger) if b.fee_item_id == ledger.items["PK"].id)
    assert periods == ["2026-11"]


async def test_bill_lines_can_be_added_but_never_edited(runtime: Any, ledger: Ledger) -> None:
    # given a bill with a payment line
    await _generate(runtime, ledger, NOV)
    bill = (await _bills(runtime, ledger))[0]
    async with runtime.sessionmaker() as session, session.begin():
        line = BillLine(bill_id=bill.id, kind=BillLineKind.PAYMENT, amount=Decimal("100.00"))
        session.add(line)
    # when / then: the sums follow the lines …
    async with runtime.sessionmaker() as session:
        paid = await session.scalar(select(Bill).where(Bill.id == bill.id))
        assert paid is not None
        assert paid.paid_amount == Decimal("100.00")
        assert paid.outstanding == bill.amount - Decimal("100.00")
    # … and the database refuses to edit or delete a line
    for statement in (
        text("UPDATE bill_lines SET amount = 1 WHERE id = :id"),
        text("DELETE FROM bill_lines WHERE id = :id"),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with runtime.sessionmaker() as session, session.begin():
                await session.execute(statement, {"id": line.id})


@pytest.mark.parametrize("value", ["2026-13", "2026-1", "26-11", "2026/11", "", "1999-12"])
def test_a_period_is_a_month(value: str) -> None:
    with pytest.raises(BillingError):
        parse_month(value)
