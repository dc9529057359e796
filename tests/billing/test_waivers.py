"""waiveBill and voidBill: exact, audited, only for finance and managers in scope."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from billing_support import Ledger
from sqlalchemy import func, select

from backend.accounts.models import User
from backend.audit.models import AuditEntry
from backend.billing.adjustments import void_bill, waive_bill
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import Bill, BillLine, BillStatus, PaymentMethod
from backend.billing.payments import pay_bills
from backend.billing.service import generate_bills
from backend.db import to_global_id

WAIVE = """
mutation($input: WaiveBillInput!) {
  waiveBill(input: $input) { bill { id outstanding waivedAmount status } errors { field code message } }
}
"""
VOID = "mutation($input: VoidBillInput!) { voidBill(input: $input) { bill { id status outstanding } errors { code } } }"


async def _flat_bill(runtime: Any, ledger: Ledger) -> Bill:
    async with runtime.sessionmaker() as session, session.begin():
        await generate_bills(
            session=session, estate=ledger.estate, month=dt.date(2026, 11, 1), actor_id=None, request_id=None
        )
    async with runtime.sessionmaker() as session:
        bill = await session.scalar(
            select(Bill).where(Bill.unit_id == ledger.units[0].id, Bill.fee_item_id == ledger.items["PF"].id)
        )
    assert bill is not None
    return bill


async def _admin(runtime: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(User.id).where(User.username == "admin")) or 0)


async def _reread(runtime: Any, bill: Bill) -> Bill:
    async with runtime.sessionmaker() as session:
        fresh = await session.get(Bill, bill.id)
    assert fresh is not None
    return fresh


async def test_a_partial_then_full_waiver(runtime: Any, ledger: Ledger) -> None:
    # given a 223.90 bill
    bill = await _flat_bill(runtime, ledger)
    actor = await _admin(runtime)
    # when
    async with runtime.sessionmaker() as session, session.begin():
        await waive_bill(
            session=session,
            bill_id=bill.id,
            amount=Decimal("23.90"),
            reason="空置房减免",
            actor_id=actor,
            request_id=None,
        )
    partly = await _reread(runtime, bill)
    async with runtime.sessionmaker() as session, session.begin():
        await waive_bill(
            session=session,
            bill_id=bill.id,
            amount=Decimal("200.00"),
            reason="困难业主",
            actor_id=actor,
            request_id=None,
        )
    fully = await _reread(runtime, bill)
    # then
    assert (partly.waived_amount, partly.outstanding, partly.status) == (
        Decimal("23.90"),
        Decimal("200.00"),
        BillStatus.UNPAID,
    )
    assert (fully.waived_amount, fully.outstanding, fully.status) == (
        Decimal("223.90"),
        Decimal("0.00"),
        BillStatus.WAIVED,
    )


async def test_waiving_the_rest_of_a_partly_paid_bill_settles_it(runtime: Any, ledger: Ledger) -> None:
    # given 200.00 paid of 223.90
    bill = await _flat_bill(runtime, ledger)
    actor = await _admin(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        await pay_bills(session=session, bill_ids=[bill.id], amount=Decimal("200.00"), method=PaymentMethod.CASH,
                        idempotency_key=uuid.uuid4().hex, actor_id=actor, request_id=None)  # fmt: skip
    # when
    async with runtime.sessionmaker() as session, session.begin():
        await waive_bill(
            session=session,
            bill_id=bill.id,
            amount=Decimal("23.90"),
            reason="零头减免",
            actor_id=actor,
            request_id=None,
        )
    # then
    settled = await _reread(runtime, bill)
    assert (settled.outstanding, settled.status) == (Decimal("0.00"), BillStatus.PAID)
    # and a bill with payments cannot be voided
    with pytest.raises(BillingError) as caught:
        async with runtime.sessionmaker() as session, session.begin():
            await void_bill(session=session, bill_id=bill.id, reason="开错了", actor_id=actor, request_id=None)
    assert caught.value.code is BillingErrorCode.BILL_HAS_PAYMENTS


@pytest.mark.parametrize(("amount", "reason", "code"), [
    ("223.91", "太多", BillingErrorCode.AMOUNT_EXCEEDS_OUTSTANDING),
    ("10.005", "分", BillingErrorCode.INVALID_AMOUNT),
    ("10.00", " ", BillingErrorCode.REASON_REQUIRED),
])  # fmt: skip
async def test_a_bad_waiver_writes_nothing(
    runtime: Any, ledger: Ledger, amount: str, reason: str, code: BillingErrorCode
) -> None:
    # given
    bill = await _flat_bill(runtime, ledger)
    # when
    with pytest.raises(BillingError) as caught:
        async with runtime.sessionmaker() as session, session.begin():
            await waive_bill(session=session, bill_id=bill.id, amount=Decimal(amount), reason=reason,
                             actor_id=await _admin(runtime), request_id=None)  # fmt: skip
    # then
    assert caught.value.code is code
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(BillLine.bill_id == bill.id)) == 0


@pytest.mark.parametrize(
    ("username", "verdict"),
    [
        ("finance.north", "allowed"),
        ("manager.north", "allowed"),
        ("admin", "allowed"),
        ("cs.a", "FORBIDDEN"),
        ("tech.a", "FORBIDDEN"),
        ("owner.a1", "FORBIDDEN"),
        ("supervisor.south", "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ],
)
async def test_waive_and_void_by_role(
    as_user: Any, runtime: Any, ledger: Ledger, username: str | None, verdict: str
) -> None:
    # given a bill in an N1 estate
    bill = await _flat_bill(runtime, ledger)
    client = await as_user(username)
    request_id = uuid.uuid4().hex
    bill_id = to_global_id("Bill", bill.id)
    # when
    waived = await client.post(WAIVE, {"input": {"billId": bill_id, "amount": "23.90", "reason": "空置减免"}},
                               **{"x-request-id": request_id})  # fmt: skip
    voided = await client.post(VOID, {"input": {"billId": bill_id, "reason": "开错了"}})
    # then
    async with runtime.sessionmaker() as session:
        audited = await session.scalar(select(func.count()).where(AuditEntry.request_id == request_id))
    after = await _reread(runtime, bill)
    if verdict == "allowed":
        assert waived.json()["data"]["waiveBill"] == {
            "bill": {"id": bill_id, "outstanding": "200.00", "waivedAmount": "23.90", "status": "UNPAID"},
            "errors": [],
        }
        assert voided.json()["data"]["voidBill"]["bill"]["status"] == "VOID"
        assert (after.status, after.outstanding, audited) == (BillStatus.VOID, Decimal("0.00"), 1)
    else:
        assert waived.json()["errors"][0]["extensions"]["code"] == verdict
        assert voided.json()["errors"][0]["extensions"]["code"] == verdict
        assert (after.status, after.waived_amount, audited) == (BillStatus.UNPAID, Decimal("0.00"), 0)


async def test_a_bill_outside_the_scope_is_not_found(as_user: Any, runtime: Any) -> None:
    # given a DEMO-C bill and North's finance clerk
    finance = await as_user("finance.north")
    demo_c = await (await as_user("admin")).data(
        'query { estates(first: 1, filter: {codePrefix: "DEMO-C"}) { edges { node { id } } } }'
    )
    c_id = demo_c["estates"]["edges"][0]["node"]["id"]
    bills = await (await as_user("admin")).data(
        "query($e: ID!) { bills(first: 1, filter: {estateId: $e, status: UNPAID}) { edges { node { id } } } }",
        {"e": c_id},
    )
    target = bills["bills"]["edges"][0]["node"]["id"]
    # when
    data = await finance.data(WAIVE, {"input": {"billId": target, "amount": "1.00", "reason": "越权"}})
    # then
    assert data["waiveBill"]["errors"][0]["code"] == "NOT_FOUND"
    async with runtime.sessionmaker() as session:
        pk = int(base64.urlsafe_b64decode(target + "=" * (-len(target) % 4)).decode().split(":")[1])
        assert await session.scalar(select(func.count()).where(BillLine.bill_id == pk)) == 0
