"""Area corrections (面积变更) become adjustment lines on the next bill; late fees (滞纳金)
accrue once per bill per day after the grace days."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from billing_support import Ledger
from sqlalchemy import func, select, update

from backend.accounts.models import User
from backend.audit.models import AuditEntry
from backend.billing.area import correct_area
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.late_fees import accrue_late_fees
from backend.billing.models import Bill, BillLine, BillLineKind, BillStatus, FeeItem, PaymentMethod, UnitAreaChange
from backend.billing.payments import pay_bills
from backend.billing.service import generate_bills
from backend.property.models import Unit

OCT, NOV, DEC = dt.date(2026, 10, 1), dt.date(2026, 11, 1), dt.date(2026, 12, 1)


async def _generate(runtime: Any, ledger: Ledger, month: dt.date) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await generate_bills(session=session, estate=ledger.estate, month=month, actor_id=None, request_id=None)


async def _pf_bills(runtime: Any, unit: Unit, ledger: Ledger) -> list[Bill]:
    async with runtime.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Bill)
                    .where(Bill.unit_id == unit.id, Bill.fee_item_id == ledger.items["PF"].id)
                    .order_by(Bill.period_start)
                )
            ).all()
        )


async def _lines(runtime: Any, bill_id: int, kind: BillLineKind) -> list[BillLine]:
    async with runtime.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(BillLine).where(BillLine.bill_id == bill_id, BillLine.kind == kind).order_by(BillLine.id)
                )
            ).all()
        )


async def _correct(runtime: Any, unit: Unit, area: str, since: dt.date, today: dt.date = DEC) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await correct_area(session=session, unit_id=unit.id, building_area=Decimal(area), inner_area=None,
                           effective_from=since, reason="实测面积更正", today=today, actor_id=None,
                           request_id=None)  # fmt: skip


# -- area corrections ----------------------------------------------------------------------


async def test_an_area_correction_adjusts_the_next_bill_once_and_leaves_old_bills_alone(
    runtime: Any, ledger: Ledger
) -> None:
    # given October and November billed on 89.56 m² at 2.50 (223.90 each)
    unit = ledger.units[0]
    await _generate(runtime, ledger, OCT)
    await _generate(runtime, ledger, NOV)
    # when the area is corrected to 91.56 m² from October, and December is billed twice
    await _correct(runtime, unit, "91.56", OCT)
    await _generate(runtime, ledger, DEC)
    await _generate(runtime, ledger, DEC)
    # then
    october, november, december = await _pf_bills(runtime, unit, ledger)
    assert [(b.quantity, b.amount, b.charged_amount) for b in (october, november)] == [
        (Decimal("89.56"), Decimal("223.90"), Decimal("0.00")),
        (Decimal("89.56"), Decimal("223.90"), Decimal("0.00")),
    ]
    assert (december.quantity, december.amount) == (Decimal("91.56"), Decimal("228.90"))
    adjustments = await _lines(runtime, december.id, BillLineKind.ADJUSTMENT)
    assert [a.amount for a in adjustments] == [Decimal("10.00")]  # 2 m² × 2.50 × 2 months
    assert december.outstanding == Decimal("238.90")


async def test_a_smaller_area_from_november_credits_one_month(runtime: Any, ledger: Ledger) -> None:
    # given
    unit = ledger.units[1]  # 120.00 m²
    await _generate(runtime, ledger, OCT)
    await _generate(runtime, ledger, NOV)
    # when
    await _correct(runtime, unit, "118.80", NOV)
    await _generate(runtime, ledger, DEC)
    # then −1.20 m² × 2.50 for November only
    december = (await _pf_bills(runtime, unit, ledger))[-1]
    assert [a.amount for a in await _lines(runtime, december.id, BillLineKind.ADJUSTMENT)] == [Decimal("-3.00")]
    assert december.outstanding == Decimal("294.00")  # 118.80 × 2.50 − 3.00


async def test_a_correction_before_any_bill_adjusts_nothing(runtime: Any, ledger: Ledger) -> None:
    # given
    unit = ledger.units[0]
    await _correct(runtime, unit, "90.00", OCT, today=OCT)
    # when
    await _generate(runtime, ledger, OCT)
    # then the first bill is simply on the new area
    october = (await _pf_bills(runtime, unit, ledger))[0]
    assert (october.quantity, october.amount) == (Decimal("90.00"), Decimal("225.00"))
    assert await _lines(runtime, october.id, BillLineKind.ADJUSTMENT) == []


@pytest.mark.parametrize(("area", "since", "code"), [
    ("0", OCT, BillingErrorCode.INVALID_AREA),
    ("89.555", OCT, BillingErrorCode.INVALID_AREA),
    ("89.56", OCT, BillingErrorCode.INVALID_AREA),  # unchanged
    ("90.00", dt.date(2027, 1, 1), BillingErrorCode.INVALID_PERIOD),  # after today
])  # fmt: skip
async def test_a_bad_correction_changes_nothing(
    runtime: Any, ledger: Ledger, area: str, since: dt.date, code: BillingErrorCode
) -> None:
    # when
    with pytest.raises(BillingError) as caught:
        await _correct(runtime, ledger.units[0], area, since)
    # then
    assert caught.value.code is code
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(Unit.building_area).where(Unit.id == ledger.units[0].id)) == Decimal("89.56")
        assert await session.scalar(select(func.count()).where(UnitAreaChange.unit_id == ledger.units[0].id)) == 0


CORRECT = """
mutation($input: CorrectUnitAreaInput!) {
  correctUnitArea(input: $input) { unit { buildingArea } areaChange { oldArea newArea } errors { code } }
}
"""


@pytest.mark.parametrize(("username", "verdict"), [
    ("admin", "ok"), ("manager.north", "ok"), ("finance.north", "ok"),
    ("cs.a", "FORBIDDEN"), ("tech.a", "FORBIDDEN"), ("owner.a1", "FORBIDDEN"), ("supervisor.north", "FORBIDDEN"),
    (None, "UNAUTHENTICATED"),
])  # fmt: skip
async def test_who_may_correct_an_area(
    as_user: Any, runtime: Any, ledger: Ledger, username: str | None, verdict: str
) -> None:
    # given
    unit = ledger.units[0]
    # when
    body = await (await as_user(username)).execute(CORRECT, {"input": {
        "unitId": unit.gid, "buildingArea": "90.10", "effectiveFrom": "2026-10-01", "reason": "实测"}})  # fmt: skip
    # then
    async with runtime.sessionmaker() as session:
        area = await session.scalar(select(Unit.building_area).where(Unit.id == unit.id))
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.action == "unit.correct_area", AuditEntry.target_id == str(unit.id))
        )
    if verdict == "ok":
        assert body["data"]["correctUnitArea"] == {
            "unit": {"buildingArea": "90.10"}, "areaChange": {"oldArea": "89.56", "newArea": "90.10"}, "errors": []
        }  # fmt: skip
        assert (area, audited) == (Decimal("90.10"), 1)
    else:
        assert body["errors"][0]["extensions"]["code"] == verdict
        assert (area, audited) == (Decimal("89.56"), 0)


async def test_a_unit_out_of_scope_is_not_found(as_user: Any, runtime: Any) -> None:
    # given a DEMO-C unit, outside finance.north's scope
    async with runtime.sessionmaker() as session:
        unit = await session.scalar(
            select(Unit).join(Unit.estate).where(Unit.estate.has(code="DEMO-C")).order_by(Unit.id).limit(1)
        )
    assert unit is not None
    # when
    body = await (await as_user("finance.north")).data(CORRECT, {"input": {
        "unitId": unit.gid, "buildingArea": "99.99", "effectiveFrom": "2026-10-01", "reason": "实测"}})  # fmt: skip
    # then
    assert body["correctUnitArea"]["errors"] == [{"code": "NOT_FOUND"}]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(UnitAreaChange.unit_id == unit.id)) == 0


# -- late fees -----------------------------------------------------------------------------


async def _late_fee_terms(runtime: Any, item: FeeItem, rate: str, grace: int) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(FeeItem).where(FeeItem.id == item.id).values(late_fee_daily_rate=Decimal(rate), grace_days=grace)
        )


async def _accrue(runtime: Any, ledger: Ledger, today: dt.date, catch_up: int = 7) -> tuple[int, int]:
    async with runtime.sessionmaker() as session, session.begin():
        return await accrue_late_fees(session, today=today, estate_id=ledger.estate.id, catch_up_days=catch_up)


async def test_late_fees_start_after_the_grace_days_and_accrue_once_a_day(runtime: Any, ledger: Ledger) -> None:
    # given October's 223.90 due 2026-10-28, 0.05 % a day after 5 grace days
    await _late_fee_terms(runtime, ledger.items["PF"], "0.0005", 5)
    await _generate(runtime, ledger, OCT)
    bill = (await _pf_bills(runtime, ledger.units[0], ledger))[0]
    # when the job runs on the last grace day, twice on the first late day, then the next
    runs = [await _accrue(runtime, ledger, day) for day in (
        dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 3), dt.date(2026, 11, 4))]  # fmt: skip
    # then one line per late day: 223.90 × 0.0005 = 0.11195 → 0.11
    lines = await _lines(runtime, bill.id, BillLineKind.LATE_FEE)
    assert [(line.accrued_on, line.amount) for line in lines] == [
        (dt.date(2026, 11, 3), Decimal("0.11")),
        (dt.date(2026, 11, 4), Decimal("0.11")),
    ]
    assert [lines_added for lines_added, _ in runs] == [0, 2, 0, 2]  # both flats' bills
    after = (await _pf_bills(runtime, ledger.units[0], ledger))[0]
    assert (after.charged_amount, after.outstanding) == (Decimal("0.22"), Decimal("224.12"))


async def test_missed_days_are_caught_up_within_the_window(runtime: Any, ledger: Ledger) -> None:
    # given
    await _late_fee_terms(runtime, ledger.items["PF"], "0.0005", 0)
    await _generate(runtime, ledger, OCT)  # due 2026-10-28; late from the 29th
    bill = (await _pf_bills(runtime, ledger.units[0], ledger))[0]
    # when the worker was down and runs again on 11-20 with a 7-day window
    await _accrue(runtime, ledger, dt.date(2026, 11, 20))
    # then the 7 days 11-14 … 11-20, and no more
    days = [line.accrued_on for line in await _lines(runtime, bill.id, BillLineKind.LATE_FEE)]
    assert days == [dt.date(2026, 11, d) for d in range(14, 21)]


async def test_paid_bills_get_no_late_fee_and_part_payments_lower_the_fee(runtime: Any, ledger: Ledger) -> None:
    # given one flat paid in full, the other (300.00) half paid
    await _late_fee_terms(runtime, ledger.items["PF"], "0.001", 0)
    await _generate(runtime, ledger, OCT)
    paid_bill = (await _pf_bills(runtime, ledger.units[0], ledger))[0]
    half_bill = (await _pf_bills(runtime, ledger.units[1], ledger))[0]
    async with runtime.sessionmaker() as session, session.begin():
        actor = await session.scalar(select(User.id).where(User.username == "admin"))
        assert actor is not None
        for bill_id, amount in ((paid_bill.id, "223.90"), (half_bill.id, "150.00")):
            await pay_bills(session=session, bill_ids=[bill_id], amount=Decimal(amount), method=PaymentMethod.CASH,
                            idempotency_key=uuid.uuid4().hex, actor_id=actor, request_id=None)  # fmt: skip
    # when the first late day comes (due 10-28, no grace)
    await _accrue(runtime, ledger, dt.date(2026, 10, 29))
    # then 150.00 × 0.001 on the half-paid one, nothing on the paid one
    assert await _lines(runtime, paid_bill.id, BillLineKind.LATE_FEE) == []
    assert [line.amount for line in await _lines(runtime, half_bill.id, BillLineKind.LATE_FEE)] == [Decimal("0.15")]


async def test_late_fees_never_exceed_the_bills_amount(runtime: Any, ledger: Ledger) -> None:
    # given the quarterly 30.00 garbage fee due 2026-10-10 at 1 % a day: 0.30 a day
    await _late_fee_terms(runtime, ledger.items["GB"], "0.01", 0)
    await _generate(runtime, ledger, OCT)
    async with runtime.sessionmaker() as session:
        bill = await session.scalar(
            select(Bill).where(Bill.unit_id == ledger.units[0].id, Bill.fee_item_id == ledger.items["GB"].id)
        )
    assert bill is not None
    # when 150 days have passed (with a long enough window), and the job runs again later
    await _accrue(runtime, ledger, dt.date(2027, 3, 9), catch_up=200)
    await _accrue(runtime, ledger, dt.date(2027, 3, 10), catch_up=200)
    # then 100 days of 0.30 and not a cent more
    lines = await _lines(runtime, bill.id, BillLineKind.LATE_FEE)
    assert (len(lines), sum(line.amount for line in lines)) == (100, Decimal("30.00"))


async def test_concurrent_runs_accrue_a_day_once(runtime: Any, ledger: Ledger) -> None:
    # given
    await _late_fee_terms(runtime, ledger.items["PF"], "0.0005", 0)
    await _generate(runtime, ledger, OCT)
    # when five workers run the same day at once
    await asyncio.gather(*(_accrue(runtime, ledger, dt.date(2026, 11, 1)) for _ in range(5)))
    # then four days (10-29 … 11-01) for each of the two flats, once
    async with runtime.sessionmaker() as session:
        counts = (
            await session.execute(
                select(BillLine.bill_id, func.count())
                .join(Bill, Bill.id == BillLine.bill_id)
                .where(Bill.estate_id == ledger.estate.id, BillLine.kind == BillLineKind.LATE_FEE)
                .group_by(BillLine.bill_id)
            )
        ).all()
    assert sorted(c for _, c in counts) == [4, 4]


async def test_a_late_fee_is_paid_like_the_rest_of_the_bill(runtime: Any, ledger: Ledger) -> None:
    # given October's bill with two days of late fees
    await _late_fee_terms(runtime, ledger.items["PF"], "0.0005", 0)
    await _generate(runtime, ledger, OCT)
    await _accrue(runtime, ledger, dt.date(2026, 10, 30))
    bill = (await _pf_bills(runtime, ledger.units[0], ledger))[0]
    assert bill.outstanding == Decimal("224.12")
    # when the whole outstanding is paid
    async with runtime.sessionmaker() as session, session.begin():
        actor = await session.scalar(select(User.id).where(User.username == "admin"))
        assert actor is not None
        await pay_bills(session=session, bill_ids=[bill.id], amount=Decimal("224.12"), method=PaymentMethod.CASH,
                        idempotency_key=uuid.uuid4().hex, actor_id=actor, request_id=None)  # fmt: skip
    await _accrue(runtime, ledger, dt.date(2026, 10, 31))
    # then it is settled and stays so
    settled = (await _pf_bills(runtime, ledger.units[0], ledger))[0]
    assert (settled.status, settled.outstanding) == (BillStatus.PAID, Decimal("0.00"))
