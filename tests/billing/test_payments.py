"""Counter payments: exact money, oldest due first, idempotent, safe under concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from decimal import Decimal
from typing import Any

import pytest
from billing_support import Ledger
from sqlalchemy import func, select

from backend.accounts.models import User
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import Bill, BillLine, BillLineKind, BillStatus, Payment, PaymentMethod
from backend.billing.payments import allocate, check_amount, pay_bills
from backend.billing.service import generate_bills


async def _admin_id(runtime: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(User.id).where(User.username == "admin")) or 0)


async def _billed(runtime: Any, ledger: Ledger, *months: dt.date) -> list[Bill]:
    """The first flat's property-fee bills for ``months`` (223.90 each), oldest first."""
    async with runtime.sessionmaker() as session, session.begin():
        for month in months:
            await generate_bills(session=session, estate=ledger.estate, month=month, actor_id=None, request_id=None)
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(Bill)
            .where(Bill.unit_id == ledger.units[0].id, Bill.fee_item_id == ledger.items["PF"].id)
            .order_by(Bill.due_date)
        )
        return list(rows.all())


async def _pay(runtime: Any, bills: list[Bill], amount: str, key: str | None = None, **kwargs: Any) -> Any:
    async with runtime.sessionmaker() as session, session.begin():
        return await pay_bills(
            session=session,
            bill_ids=[b.id for b in bills],
            amount=Decimal(amount),
            method=kwargs.get("method", PaymentMethod.CASH),
            idempotency_key=key or uuid.uuid4().hex,
            actor_id=await _admin_id(runtime),
            request_id=None,
        )


async def _state(runtime: Any, bills: list[Bill]) -> list[tuple[Decimal, Decimal, BillStatus]]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(Bill).where(Bill.id.in_([b.id for b in bills])).order_by(Bill.due_date))
        return [(b.paid_amount, b.outstanding, b.status) for b in rows.all()]


def test_splitting_100_over_three_bills_fills_the_oldest_first_and_sums_exactly() -> None:
    # when
    parts = allocate(Decimal("100.00"), [(1, Decimal("33.33")), (2, Decimal("33.33")), (3, Decimal("50.00"))])
    # then
    assert parts == [(1, Decimal("33.33")), (2, Decimal("33.33")), (3, Decimal("33.34"))]
    assert sum(p for _, p in parts) == Decimal("100.00")


def test_random_splits_always_sum_exactly_and_never_overpay_a_bill() -> None:
    rng = random.Random(20261123)
    for _ in range(2000):
        owed = [(i, Decimal(rng.randint(1, 50_000)) / 100) for i in range(rng.randint(1, 8))]
        amount = Decimal(rng.randint(1, int(sum(o for _, o in owed) * 100))) / 100
        parts = allocate(amount, owed)
        assert sum(p for _, p in parts) == amount
        assert all(p <= dict(owed)[i] and p > 0 for i, p in parts)
        assert [i for i, _ in parts] == [i for i, _ in owed][: len(parts)]


@pytest.mark.parametrize("value", ["100.005", "NaN", "-0.01", "0", "0.00", "Infinity", "100000000.00"])
def test_amounts_that_are_not_whole_positive_cents_are_refused(value: str) -> None:
    with pytest.raises(BillingError) as caught:
        check_amount(Decimal(value))
    assert caught.value.code is BillingErrorCode.INVALID_AMOUNT


async def test_a_partial_payment_then_the_rest(runtime: Any, ledger: Ledger) -> None:
    # given two months owed, 223.90 each
    bills = await _billed(runtime, ledger, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    # when
    first = await _pay(runtime, bills, "300.00")
    second = await _pay(runtime, bills[1:], "147.80")
    # then: October filled first, then November
    assert await _state(runtime, bills) == [
        (Decimal("223.90"), Decimal("0.00"), BillStatus.PAID),
        (Decimal("223.90"), Decimal("0.00"), BillStatus.PAID),
    ]
    assert first.payment.receipt_number != second.payment.receipt_number
    # a bill that owes nothing is not silently skipped: the clerk's list was stale
    with pytest.raises(BillingError) as caught:
        await _pay(runtime, bills, "0.01")
    assert caught.value.code is BillingErrorCode.BILL_NOT_PAYABLE


async def test_more_than_the_bills_owe_is_refused_and_nothing_is_written(runtime: Any, ledger: Ledger) -> None:
    # given
    bills = await _billed(runtime, ledger, dt.date(2026, 11, 1))
    # when
    with pytest.raises(BillingError) as caught:
        await _pay(runtime, bills, "223.91")
    # then
    assert caught.value.code is BillingErrorCode.AMOUNT_EXCEEDS_OUTSTANDING
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(Payment.estate_id == ledger.estate.id)) == 0
        assert await session.scalar(select(func.count()).where(BillLine.bill_id == bills[0].id)) == 0


async def test_the_same_key_answers_the_same_and_a_changed_request_is_refused(runtime: Any, ledger: Ledger) -> None:
    # given
    bills = await _billed(runtime, ledger, dt.date(2026, 11, 1))
    key = f"counter-{uuid.uuid4().hex}"
    # when
    first = await _pay(runtime, bills, "100.00", key)
    again = await _pay(runtime, bills, "100.00", key)
    with pytest.raises(BillingError) as caught:
        await _pay(runtime, bills, "120.00", key)
    # then
    assert again.replayed
    assert again.payment.id == first.payment.id
    assert caught.value.code is BillingErrorCode.IDEMPOTENCY_KEY_REUSED
    assert await _state(runtime, bills) == [(Decimal("100.00"), Decimal("123.90"), BillStatus.PARTIAL)]


async def test_fifty_concurrent_requests_with_one_key_make_one_payment(runtime: Any, ledger: Ledger) -> None:
    # given
    bills = await _billed(runtime, ledger, dt.date(2026, 11, 1))
    key = f"tap-{uuid.uuid4().hex}"
    # when
    results = await asyncio.gather(*(_pay(runtime, bills, "50.00", key) for _ in range(50)))
    # then
    assert len({r.payment.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert await _state(runtime, bills) == [(Decimal("50.00"), Decimal("173.90"), BillStatus.PARTIAL)]


async def test_concurrent_payments_never_take_a_bill_below_zero(runtime: Any, ledger: Ledger) -> None:
    # given one bill of 223.90 and twenty tellers paying 50.00 each at once
    bills = await _billed(runtime, ledger, dt.date(2026, 11, 1))

    async def attempt() -> Any:
        try:
            return await _pay(runtime, bills, "50.00")
        except BillingError as exc:
            return exc.code

    # when
    results = await asyncio.gather(*(attempt() for _ in range(20)))
    # then: four fit (200.00), the rest are refused; the money adds up exactly
    accepted = [r for r in results if not isinstance(r, BillingErrorCode)]
    assert len(accepted) == 4
    assert {r for r in results if isinstance(r, BillingErrorCode)} == {BillingErrorCode.AMOUNT_EXCEEDS_OUTSTANDING}
    assert await _state(runtime, bills) == [(Decimal("200.00"), Decimal("23.90"), BillStatus.PARTIAL)]
    async with runtime.sessionmaker() as session:
        paid_in = await session.scalar(select(func.sum(Payment.amount)).where(Payment.estate_id == ledger.estate.id))
        allocated = await session.scalar(
            select(func.sum(BillLine.amount)).where(
                BillLine.kind == BillLineKind.PAYMENT, BillLine.bill_id.in_([b.id for b in bills])
            )
        )
    assert paid_in == allocated == Decimal("200.00")
    numbers = sorted(int(r.payment.receipt_number.rsplit("-", 1)[1]) for r in accepted)
    assert numbers == list(range(numbers[0], numbers[0] + 4)), "receipt numbers are gap-free"
