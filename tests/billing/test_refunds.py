"""refundPayment: a whole payment reversed, the money adding up, finance only."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from billing_support import Ledger
from sqlalchemy import func, select

from backend.accounts.models import User
from backend.audit.models import AuditEntry
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import Bill, BillLine, BillLineKind, BillStatus, Payment, PaymentMethod, Refund
from backend.billing.payments import pay_bills, refund_payment
from backend.billing.service import generate_bills
from backend.db import to_global_id
from backend.property.models import Estate

REFUND = """
mutation($input: RefundPaymentInput!) {
  refundPayment(input: $input) { payment { id amount refund { reason } allocations { amount } } errors { field code } }
}
"""


async def _paid(runtime: Any, ledger: Ledger, amount: str = "300.00") -> tuple[Payment, list[Bill]]:
    """October and November billed (223.90 each) and ``amount`` paid over both."""
    async with runtime.sessionmaker() as session, session.begin():
        for month in (dt.date(2026, 10, 1), dt.date(2026, 11, 1)):
            await generate_bills(session=session, estate=ledger.estate, month=month, actor_id=None, request_id=None)
    async with runtime.sessionmaker() as session, session.begin():
        bills = list(
            (
                await session.scalars(
                    select(Bill)
                    .where(Bill.unit_id == ledger.units[0].id, Bill.fee_item_id == ledger.items["PF"].id)
                    .order_by(Bill.due_date)
                )
            ).all()
        )
        admin = await session.scalar(select(User.id).where(User.username == "admin"))
        assert admin is not None
        result = await pay_bills(
            session=session, bill_ids=[b.id for b in bills], amount=Decimal(amount), method=PaymentMethod.BANK_TRANSFER,
            idempotency_key=uuid.uuid4().hex, actor_id=admin, request_id=None,
        )  # fmt: skip
    return result.payment, bills


async def _bill_state(runtime: Any, bills: list[Bill]) -> list[tuple[Decimal, BillStatus]]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(Bill).where(Bill.id.in_([b.id for b in bills])).order_by(Bill.due_date))
        return [(b.outstanding, b.status) for b in rows.all()]


async def test_a_refund_restores_what_the_bills_owe_and_keeps_the_payment(runtime: Any, ledger: Ledger) -> None:
    # given 300.00 paid: October settled, 76.10 of November
    payment, bills = await _paid(runtime, ledger)
    assert await _bill_state(runtime, bills) == [
        (Decimal("0.00"), BillStatus.PAID),
        (Decimal("147.80"), BillStatus.PARTIAL),
    ]
    # when
    async with runtime.sessionmaker() as session, session.begin():
        await refund_payment(
            session=session, payment_id=payment.id, reason="重复缴费", actor_id=payment.created_by_id, request_id=None
        )
    # then
    assert await _bill_state(runtime, bills) == [
        (Decimal("223.90"), BillStatus.UNPAID),
        (Decimal("223.90"), BillStatus.UNPAID),
    ]
    async with runtime.sessionmaker() as session:
        kept = await session.get(Payment, payment.id)
        sums = dict(
            (
                await session.execute(
                    select(BillLine.kind, func.sum(BillLine.amount))
                    .where(BillLine.payment_id == payment.id)
                    .group_by(BillLine.kind)
                )
            ).all()
        )
    assert kept is not None
    assert kept.amount == Decimal("300.00")
    assert sums == {BillLineKind.PAYMENT: Decimal("300.00"), BillLineKind.REVERSAL: Decimal("300.00")}
    # and a payment is refunded once
    with pytest.raises(BillingError) as caught:
        async with runtime.sessionmaker() as session, session.begin():
            await refund_payment(
                session=session,
                payment_id=payment.id,
                reason="再退一次",
                actor_id=payment.created_by_id,
                request_id=None,
            )
    assert caught.value.code is BillingErrorCode.ALREADY_REFUNDED


@pytest.mark.parametrize(
    ("username", "verdict"),
    [
        ("finance.north", "allowed"),
        ("admin", "allowed"),
        ("manager.north", "FORBIDDEN"),  # a deny row: refunds are finance's alone
        ("cs.a", "FORBIDDEN"),
        ("owner.a1", "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ],
)
async def test_refund_by_role(as_user: Any, runtime: Any, ledger: Ledger, username: str | None, verdict: str) -> None:
    # given
    payment, _bills = await _paid(runtime, ledger, "50.00")
    client = await as_user(username)
    request_id = uuid.uuid4().hex
    # when
    body = (
        await client.post(
            REFUND, {"input": {"paymentId": to_global_id("Payment", payment.id), "reason": "退款"}},
            **{"x-request-id": request_id},
        )
    ).json()  # fmt: skip
    # then
    async with runtime.sessionmaker() as session:
        refunds = await session.scalar(select(func.count()).where(Refund.payment_id == payment.id))
        audits = await session.scalar(select(func.count()).where(AuditEntry.request_id == request_id))
    if verdict == "allowed":
        result = body["data"]["refundPayment"]
        assert result["errors"] == []
        assert result["payment"]["refund"] == {"reason": "退款"}
        assert result["payment"]["allocations"] == [{"amount": "50.00"}]
        assert (refunds, audits) == (1, 1)
    else:
        assert body["errors"][0]["extensions"]["code"] == verdict
        assert (refunds, audits) == (0, 0)


async def test_a_payment_outside_the_callers_estates_is_not_found(as_user: Any, runtime: Any) -> None:
    # given a seeded DEMO-C payment and North's finance clerk
    async with runtime.sessionmaker() as session:
        payment_id = await session.scalar(
            select(Payment.id)
            .join(Estate, Estate.id == Payment.estate_id)
            .where(Estate.code == "DEMO-C", Payment.id.not_in(select(Refund.payment_id)))
            .limit(1)
        )
    assert payment_id is not None
    finance = await as_user("finance.north")
    # when
    data = await finance.data(REFUND, {"input": {"paymentId": to_global_id("Payment", payment_id), "reason": "越权"}})
    # then
    assert data["refundPayment"]["errors"] == [{"field": "paymentId", "code": "NOT_FOUND"}]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(Refund.payment_id == payment_id)) == 0
