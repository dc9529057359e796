"""payBills through GraphQL: who may take money for which bills, and what the payload says."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from billing_support import Ledger
from sqlalchemy import func, select

from backend.audit.models import AuditEntry
from backend.billing.models import Bill, BillLine, Payment
from backend.billing.service import generate_bills
from backend.db import to_global_id
from backend.property.models import Estate

PAY = """
mutation($input: PayBillsInput!) {
  payBills(input: $input) {
    payment { id amount method status receiptNumber allocations { amount bill { id period } } }
    bills { id outstanding paidAmount status }
    errors { field code message }
  }
}
"""


async def _ledger_bill(runtime: Any, ledger: Ledger) -> Bill:
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


async def _demo_c_bill(runtime: Any) -> Bill:
    async with runtime.sessionmaker() as session:
        bill = await session.scalar(
            select(Bill).join(Estate, Estate.id == Bill.estate_id).where(Estate.code == "DEMO-C").limit(1)
        )
    assert bill is not None
    return bill


async def _written(runtime: Any, bill_id: int, request_id: str) -> tuple[int, int]:
    async with runtime.sessionmaker() as session:
        lines = await session.scalar(
            select(func.count()).where(BillLine.bill_id == bill_id, BillLine.payment_id.is_not(None))
        )
        audits = await session.scalar(select(func.count()).where(AuditEntry.request_id == request_id))
    return int(lines or 0), int(audits or 0)


def _input(bill: Bill, amount: str = "50.00") -> dict[str, Any]:
    return {
        "input": {
            "billIds": [to_global_id("Bill", bill.id)],
            "amount": amount,
            "method": "CASH",
            "idempotencyKey": uuid.uuid4().hex,
        }
    }


@pytest.mark.parametrize("username", ["cs.a", "finance.north", "manager.north", "admin"])
async def test_counter_staff_take_a_payment(as_user: Any, runtime: Any, ledger: Ledger, username: str) -> None:
    # given
    bill = await _ledger_bill(runtime, ledger)
    client = await as_user(username)
    request_id = uuid.uuid4().hex
    # when
    response = await client.post(PAY, _input(bill), **{"x-request-id": request_id})
    # then
    result = response.json()["data"]["payBills"]
    assert result["errors"] == []
    payment = result["payment"]
    assert (payment["amount"], payment["method"], payment["status"]) == ("50.00", "CASH", "SETTLED")
    assert payment["receiptNumber"].startswith("RDEMO-")
    assert payment["allocations"] == [
        {"amount": "50.00", "bill": {"id": to_global_id("Bill", bill.id), "period": "2026-11"}}
    ]
    assert result["bills"] == [
        {"id": to_global_id("Bill", bill.id), "outstanding": "173.90", "paidAmount": "50.00", "status": "PARTIAL"}
    ]
    assert await _written(runtime, bill.id, request_id) == (1, 1)


@pytest.mark.parametrize(
    ("username", "code"),
    [
        ("tech.a", "FORBIDDEN"),
        ("guard.a", "FORBIDDEN"),
        ("supervisor.north", "FORBIDDEN"),
        ("owner.a1", "FORBIDDEN"),  # owners pay online only (test_online_payments.py), not at the counter
        (None, "UNAUTHENTICATED"),
    ],
)
async def test_others_may_not_and_nothing_is_written(
    as_user: Any, runtime: Any, ledger: Ledger, username: str | None, code: str
) -> None:
    # given
    bill = await _ledger_bill(runtime, ledger)
    client = await as_user(username)
    request_id = uuid.uuid4().hex
    # when
    response = await client.post(PAY, _input(bill), **{"x-request-id": request_id})
    # then
    assert response.json()["errors"][0]["extensions"]["code"] == code
    assert await _written(runtime, bill.id, request_id) == (0, 0)


async def test_a_bill_outside_the_callers_estates_is_not_found(as_user: Any, runtime: Any) -> None:
    # given a DEMO-C bill and North's finance clerk
    bill = await _demo_c_bill(runtime)
    finance = await as_user("finance.north")
    request_id = uuid.uuid4().hex
    async with runtime.sessionmaker() as session:
        payments_before = await session.scalar(select(func.count()).select_from(Payment))
    # when
    response = await finance.post(PAY, _input(bill), **{"x-request-id": request_id})
    # then
    assert response.json()["data"]["payBills"]["errors"][0]["code"] == "NOT_FOUND"
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Payment)) == payments_before
    assert (await _written(runtime, bill.id, request_id))[1] == 0


@pytest.mark.parametrize("amount", ["100.005", "-1.00", "0"])
async def test_an_amount_that_is_not_whole_positive_cents_is_refused(
    as_user: Any, runtime: Any, ledger: Ledger, amount: str
) -> None:
    # given
    bill = await _ledger_bill(runtime, ledger)
    cs = await as_user("cs.a")
    # when
    data = await cs.data(PAY, _input(bill, amount))
    # then
    assert [e["code"] for e in data["payBills"]["errors"]] == ["INVALID_AMOUNT"]
    assert data["payBills"]["payment"] is None
