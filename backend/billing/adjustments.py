"""Waivers (减免) and voiding bills issued in error. Both add to the ledger; nothing is edited
but the bill's status."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import Bill, BillLine, BillLineKind, BillStatus
from backend.billing.payments import check_amount


async def _locked(session: AsyncSession, bill_id: int) -> Bill:
    """The bill, locked, then read afresh (as payments.py does, for the same reason)."""
    await session.execute(select(Bill.id).where(Bill.id == bill_id).with_for_update())
    bill = await session.scalar(select(Bill).where(Bill.id == bill_id).execution_options(populate_existing=True))
    if bill is None:
        raise BillingError(BillingErrorCode.NOT_FOUND, "No such bill.", "billId")
    return bill


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not 2 <= len(reason) <= 255:
        raise BillingError(BillingErrorCode.REASON_REQUIRED, "Say why, in 2 to 255 characters.", "reason")
    return reason


async def waive_bill(
    *, session: AsyncSession, bill_id: int, amount: Decimal, reason: str, actor_id: int, request_id: str | None
) -> Bill:
    """Waive part or all of what a bill still owes. A bill whose whole amount was waived is
    WAIVED; one settled by payments and a waiver is PAID."""
    amount = check_amount(amount)
    reason = _reason(reason)
    bill = await _locked(session, bill_id)
    if bill.status is BillStatus.VOID or bill.outstanding <= 0:
        raise BillingError(BillingErrorCode.BILL_NOT_PAYABLE, "This bill owes nothing.", "billId")
    if amount > bill.outstanding:
        raise BillingError(BillingErrorCode.AMOUNT_EXCEEDS_OUTSTANDING, f"The bill owes {bill.outstanding}.", "amount")
    session.add(BillLine(bill_id=bill.id, kind=BillLineKind.WAIVER, amount=amount, note=reason, created_by_id=actor_id))
    await session.flush()
    if amount == bill.outstanding:
        status = BillStatus.PAID if bill.paid_amount > 0 else BillStatus.WAIVED
    else:
        status = BillStatus.PARTIAL if bill.paid_amount > 0 else BillStatus.UNPAID
    await session.execute(update(Bill).where(Bill.id == bill.id).values(status=status))
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="bill.waive",
        target_type="Bill",
        target_id=bill.id,
        request_id=request_id,
        detail={"amount": str(amount), "reason": reason},
    )
    return bill


async def void_bill(*, session: AsyncSession, bill_id: int, reason: str, actor_id: int, request_id: str | None) -> Bill:
    """Void a bill issued in error. A bill with payments is not voided: refund them first."""
    reason = _reason(reason)
    bill = await _locked(session, bill_id)
    if bill.status is BillStatus.VOID:
        raise BillingError(BillingErrorCode.BILL_NOT_PAYABLE, "This bill is void already.", "billId")
    if bill.paid_amount > 0:
        raise BillingError(BillingErrorCode.BILL_HAS_PAYMENTS, "Refund its payments before voiding it.", "billId")
    await session.execute(update(Bill).where(Bill.id == bill.id).values(status=BillStatus.VOID))
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="bill.void",
        target_type="Bill",
        target_id=bill.id,
        request_id=request_id,
        detail={"reason": reason},
    )
    return bill
