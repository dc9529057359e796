"""Bill generation against a real database: amounts, cycles, rates, idempotency, concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from billing_support import Ledger
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from backend.billing.errors import BillingError
from backend.billing.models import (
    Bill,
    BillLine,
    BillLineKind,
    FeeBinding,
    FeeRate,
)
from backend.billing.periods import parse_month
from backend.billing.service import generate_bills

NOV = dt.date(2026, 11, 1)


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
    # given a bill with an area correction (面积变更) line
    await _generate(runtime, ledger, NOV)
    bill = (await _bills(runtime, ledger))[0]
    async with runtime.sessionmaker() as session, session.begin():
        line = BillLine(bill_id=bill.id, kind=BillLineKind.ADJUSTMENT, amount=Decimal("-10.00"), note="面积更正")
        session.add(line)
    # when / then: the sums follow the lines …
    async with runtime.sessionmaker() as session:
        adjusted = await session.scalar(select(Bill).where(Bill.id == bill.id))
        assert adjusted is not None
        assert adjusted.charged_amount == Decimal("-10.00")
        assert adjusted.outstanding == bill.amount - Decimal("10.00")
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
