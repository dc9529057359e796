"""Randomised concurrent runs of everything that moves money on bills — counter payments,
refunds, waivers, late fees — then the books must balance: Σ allocations = Σ payments −
Σ reversals, no bill paid beyond what it owes, and every status matching its lines."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from decimal import Decimal
from typing import Any

import pytest
from billing_support import Ledger
from sqlalchemy import func, select, update

from backend.accounts.models import User
from backend.billing.adjustments import waive_bill
from backend.billing.errors import BillingError
from backend.billing.late_fees import accrue_late_fees
from backend.billing.models import (
    Bill,
    BillLine,
    BillLineKind,
    BillStatus,
    FeeItem,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
)
from backend.billing.payments import pay_bills, refund_payment
from backend.billing.service import generate_bills

MONTHS = (dt.date(2026, 9, 1), dt.date(2026, 10, 1), dt.date(2026, 11, 1))


async def _setup(runtime: Any, ledger: Ledger) -> tuple[int, list[Bill]]:
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(FeeItem).where(FeeItem.id == ledger.items["PF"].id).values(late_fee_daily_rate=Decimal("0.0005"))
        )
        for month in MONTHS:
            await generate_bills(session=session, estate=ledger.estate, month=month, actor_id=None, request_id=None)
    async with runtime.sessionmaker() as session:
        actor = int(await session.scalar(select(User.id).where(User.username == "finance.north")) or 0)
        bills = list((await session.scalars(select(Bill).where(Bill.estate_id == ledger.estate.id))).all())
    return actor, bills


async def _attempt(runtime: Any, action: Any) -> str:
    try:
        async with runtime.sessionmaker() as session, session.begin():
            await action(session)
    except BillingError as exc:
        return exc.code.value
    return "ok"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_concurrent_money_movements_keep_the_books_balanced(
    runtime: Any, ledger: Ledger, seed: int
) -> None:
    # given a quarter of bills on three units and a random mix of tellers, refunds, waivers
    # and late-fee runs, all at once
    rng = random.Random(seed)
    actor, bills = await _setup(runtime, ledger)

    def pay() -> Any:
        chosen = rng.sample(bills, rng.randint(1, 3))
        amount = Decimal(rng.randint(1, 40000)) / 100

        async def run(session: Any) -> None:
            await pay_bills(session=session, bill_ids=[b.id for b in chosen], amount=amount,
                            method=rng.choice([PaymentMethod.CASH, PaymentMethod.CARD]),
                            idempotency_key=uuid.uuid4().hex, actor_id=actor, request_id=None)  # fmt: skip

        return run

    def waive() -> Any:
        bill = rng.choice(bills)
        amount = Decimal(rng.randint(1, 5000)) / 100

        async def run(session: Any) -> None:
            await waive_bill(session=session, bill_id=bill.id, amount=amount, reason="随机减免", actor_id=actor,
                             request_id=None)  # fmt: skip

        return run

    def late(day: int) -> Any:
        async def run(session: Any) -> None:
            await accrue_late_fees(session, today=dt.date(2026, 11, day), estate_id=ledger.estate.id)

        return run

    first_wave = [pay() for _ in range(25)] + [waive() for _ in range(5)] + [late(20), late(20)]
    rng.shuffle(first_wave)
    # when
    outcomes = await asyncio.gather(*(_attempt(runtime, a) for a in first_wave))
    async with runtime.sessionmaker() as session:
        paid = list((await session.scalars(select(Payment.id).where(Payment.estate_id == ledger.estate.id))).all())

    def refund(payment_id: int) -> Any:
        async def run(session: Any) -> None:
            await refund_payment(session=session, payment_id=payment_id, reason="退款", actor_id=actor, request_id=None)

        return run

    to_refund = rng.sample(paid, min(len(paid), 4))
    second_wave = [refund(p) for p in to_refund] * 2  # each refund twice, at once
    second_wave += [pay() for _ in range(15)] + [waive() for _ in range(5)] + [late(21), late(22)]
    rng.shuffle(second_wave)
    outcomes += await asyncio.gather(*(_attempt(runtime, a) for a in second_wave))
    # then something happened and some requests were refused as they should be
    assert "ok" in outcomes
    async with runtime.sessionmaker() as session:
        settled = await session.scalar(
            select(func.coalesce(func.sum(Payment.amount), 0)).where(
                Payment.estate_id == ledger.estate.id, Payment.status == PaymentStatus.SETTLED
            )
        )
        refunded = await session.scalar(
            select(func.coalesce(func.sum(Payment.amount), 0))
            .join(Refund, Refund.payment_id == Payment.id)
            .where(Payment.estate_id == ledger.estate.id)
        )
        refunds = await session.scalar(
            select(func.count()).select_from(Refund).join(Payment).where(Payment.estate_id == ledger.estate.id)
        )

        async def line_sum(kind: BillLineKind) -> Decimal:
            return Decimal(
                await session.scalar(
                    select(func.coalesce(func.sum(BillLine.amount), 0))
                    .join(Bill, Bill.id == BillLine.bill_id)
                    .where(Bill.estate_id == ledger.estate.id, BillLine.kind == kind)
                )
                or 0
            )

        allocated, reversed_ = await line_sum(BillLineKind.PAYMENT), await line_sum(BillLineKind.REVERSAL)
        final = list((await session.scalars(select(Bill).where(Bill.estate_id == ledger.estate.id))).all())
        late_days = (
            await session.execute(
                select(BillLine.bill_id, BillLine.accrued_on, func.count())
                .join(Bill, Bill.id == BillLine.bill_id)
                .where(Bill.estate_id == ledger.estate.id, BillLine.kind == BillLineKind.LATE_FEE)
                .group_by(BillLine.bill_id, BillLine.accrued_on)
            )
        ).all()
    # Σ allocations = Σ payments − Σ reversals; a refund reverses exactly what it paid
    assert allocated - reversed_ == settled - refunded
    assert reversed_ == refunded
    # each payment refunded once, however often it was asked
    assert refunds == len(to_refund)
    assert outcomes.count("ALREADY_REFUNDED") == len(to_refund)
    # no bill is paid beyond what it owes, and each status says what its lines say
    for bill in final:
        owed = bill.amount + bill.charged_amount - bill.paid_amount - bill.waived_amount
        assert owed >= 0, (bill.id, owed)
        assert bill.outstanding == owed
        if owed == 0:
            assert bill.status in (BillStatus.PAID, BillStatus.WAIVED), (bill.id, bill.status)
        elif bill.paid_amount > 0:
            assert bill.status is BillStatus.PARTIAL, (bill.id, bill.status)
        else:
            assert bill.status is BillStatus.UNPAID, (bill.id, bill.status)
    # and a late-fee day is charged at most once per bill
    assert all(count == 1 for _, _, count in late_days)
