"""Counter payments (cash, card, bank transfer): idempotent, allocated oldest-due-first,
never taking a bill below zero, each with a gap-free receipt number. The steps they share
with ONLINE payments (backend/billing/online.py) are here too.

Choice: an amount above what the bills owe is refused (AMOUNT_EXCEEDS_OUTSTANDING) rather
than kept as prepayment credit — credit needs its own ledger and is not modelled yet.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import (
    Bill,
    BillLine,
    BillLineKind,
    BillStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    ReceiptCounter,
    Refund,
)
from backend.db import utcnow
from backend.property.models import Estate, OrgUnit

CENT = Decimal("0.01")
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment: Payment
    bill_ids: list[int]
    replayed: bool  # the same request was answered before; nothing new was written


def check_amount(amount: Decimal) -> Decimal:
    """Positive, finite, whole cents (100.005 is refused, not rounded)."""
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT) or amount > Decimal("99999999.99"):
        raise BillingError(BillingErrorCode.INVALID_AMOUNT, "A positive amount in whole cents.", "amount")
    return amount.quantize(CENT)


def request_hash(bill_ids: list[int], amount: Decimal, method: PaymentMethod) -> str:
    canonical = json.dumps({"bills": sorted(set(bill_ids)), "amount": str(amount), "method": method.name})
    return hashlib.sha256(canonical.encode()).hexdigest()


def allocate(amount: Decimal, bills: list[tuple[int, Decimal]]) -> list[tuple[int, Decimal]]:
    """Split ``amount`` over (bill id, outstanding) already in payment order: each bill in
    turn is paid as far as the money goes. The parts sum to ``amount`` exactly."""
    parts: list[tuple[int, Decimal]] = []
    left = amount
    for bill_id, outstanding in bills:
        if left <= 0:
            break
        part = min(left, outstanding)
        if part > 0:
            parts.append((bill_id, part))
            left -= part
    if left > 0:
        raise BillingError(
            BillingErrorCode.AMOUNT_EXCEEDS_OUTSTANDING, f"The bills owe {amount - left}; {left} is too much.", "amount"
        )
    return parts


async def _existing(session: AsyncSession, user_id: int, key: str) -> Payment | None:
    return await session.scalar(select(Payment).where(Payment.created_by_id == user_id, Payment.idempotency_key == key))


async def replay_or_lock(
    session: AsyncSession,
    *,
    bill_ids: list[int],
    amount: Decimal,
    method: PaymentMethod,
    idempotency_key: str,
    actor_id: int,
) -> tuple[Decimal, str, PaymentResult | None]:
    """The checks every payment request starts with: the key, the amount, the bills named.
    Requests with one key then run one after the other; when the key was used before, its
    payment is the answer (the same request) or IDEMPOTENCY_KEY_REUSED (another one).
    Returns the amount in cents, the request's hash, and the earlier answer if any."""
    if not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH:
        raise BillingError(BillingErrorCode.INVALID_IDEMPOTENCY_KEY, "1 to 255 characters.", "idempotencyKey")
    amount = check_amount(amount)
    if not bill_ids:
        raise BillingError(BillingErrorCode.NO_BILLS, "Name the bills to pay.", "billIds")
    digest = request_hash(bill_ids, amount, method)
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"pay:{actor_id}:{idempotency_key}"}
    )
    previous = await _existing(session, actor_id, idempotency_key)
    if previous is None:
        return amount, digest, None
    if previous.request_hash != digest:
        raise BillingError(
            BillingErrorCode.IDEMPOTENCY_KEY_REUSED, "This key was used for a different payment.", "idempotencyKey"
        )
    paid = (await session.scalars(select(BillLine.bill_id).where(BillLine.payment_id == previous.id))).all()
    return amount, digest, PaymentResult(previous, sorted(set(bill_ids) | set(paid)), replayed=True)


async def locked_bills(session: AsyncSession, bill_ids: list[int]) -> list[Bill]:
    """The bills, locked (in id order: no deadlock between payments), then read afresh in a
    second statement: under READ COMMITTED it sees every payment committed before the lock
    was granted (the locking statement's own snapshot may predate them)."""
    await session.execute(select(Bill.id).where(Bill.id.in_(bill_ids)).order_by(Bill.id).with_for_update())
    return list(
        (
            await session.scalars(
                select(Bill).where(Bill.id.in_(bill_ids)).order_by(Bill.id).execution_options(populate_existing=True)
            )
        ).all()
    )


async def payable_bills(session: AsyncSession, bill_ids: list[int], amount: Decimal) -> list[Bill]:
    """The bills of a new payment, locked and checked: all exist, one estate, each owes
    something, and together they owe at least ``amount``. Oldest due first."""
    bills = await locked_bills(session, bill_ids)
    if len(bills) != len(set(bill_ids)):
        raise BillingError(BillingErrorCode.NO_BILLS, "Some of these bills do not exist.", "billIds")
    if len({b.estate_id for b in bills}) != 1:
        raise BillingError(BillingErrorCode.BILLS_IN_SEVERAL_ESTATES, "Pay one estate's bills at a time.", "billIds")
    for bill in bills:
        if bill.status in (BillStatus.VOID, BillStatus.WAIVED) or bill.outstanding <= 0:
            raise BillingError(BillingErrorCode.BILL_NOT_PAYABLE, f"Bill {bill.period} owes nothing.", "billIds")
    ordered = sorted(bills, key=lambda b: (b.due_date, b.id))  # oldest due first
    allocate(amount, [(b.id, b.outstanding) for b in ordered])  # refuses more than they owe
    return ordered


async def post_allocation(
    session: AsyncSession, payment: Payment, parts: list[tuple[int, Decimal]], bills: list[Bill]
) -> None:
    """The payment's lines on its bills, and the bills' new statuses."""
    session.add_all(
        BillLine(
            bill_id=bill_id,
            kind=BillLineKind.PAYMENT,
            amount=part,
            payment_id=payment.id,
            created_by_id=payment.created_by_id,
        )
        for bill_id, part in parts
    )
    await session.flush()
    by_id = {b.id: b for b in bills}
    for bill_id, part in parts:
        settled = by_id[bill_id].outstanding - part <= 0
        await session.execute(
            update(Bill).where(Bill.id == bill_id).values(status=BillStatus.PAID if settled else BillStatus.PARTIAL)
        )


async def pay_bills(
    *,
    session: AsyncSession,
    bill_ids: list[int],
    amount: Decimal,
    method: PaymentMethod,
    idempotency_key: str,
    actor_id: int,
    request_id: str | None,
) -> PaymentResult:
    """Record a counter payment over ``bill_ids``. The caller has checked the caller may pay
    these bills (row scope and policy); this function keeps the money right. ONLINE payments
    go through a provider: see :mod:`backend.billing.online`."""
    if method is PaymentMethod.ONLINE:
        raise BillingError(BillingErrorCode.INVALID_METHOD, "Online payments go through a provider.", "method")
    amount, digest, replay = await replay_or_lock(
        session, bill_ids=bill_ids, amount=amount, method=method, idempotency_key=idempotency_key, actor_id=actor_id
    )
    if replay is not None:
        return replay
    bills = await payable_bills(session, bill_ids, amount)
    parts = allocate(amount, [(b.id, b.outstanding) for b in bills])

    estate = await session.get(Estate, bills[0].estate_id)
    assert estate is not None
    payment = Payment(
        estate_id=estate.id,
        amount=amount,
        method=method,
        status=PaymentStatus.SETTLED,
        receipt_number=await next_receipt(session, estate),
        idempotency_key=idempotency_key,
        request_hash=digest,
        bill_ids=sorted(set(bill_ids)),
        created_by_id=actor_id,
        settled_at=utcnow(),
    )
    session.add(payment)
    await session.flush()
    await post_allocation(session, payment, parts, bills)
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="payment.record",
        target_type="Payment",
        target_id=payment.id,
        request_id=request_id,
        detail={"amount": str(amount), "method": method.name, "bills": [b for b, _ in parts]},
    )
    return PaymentResult(payment, sorted(set(bill_ids)), replayed=False)


async def next_receipt(session: AsyncSession, estate: Estate) -> str:
    """``R{company}-{n:08d}``: the company's next number, under a row lock (gap-free)."""
    company_path = estate.org_path.split("/")[1]
    company_id = int(company_path)
    await session.execute(
        text(
            "INSERT INTO receipt_counters (company_id, next_number) VALUES (:id, 1) ON CONFLICT (company_id) DO NOTHING"
        ),
        {"id": company_id},
    )
    number = await session.scalar(
        update(ReceiptCounter)
        .where(ReceiptCounter.company_id == company_id)
        .values(next_number=ReceiptCounter.next_number + 1)
        .returning(ReceiptCounter.next_number - 1)
    )
    company_code = await session.scalar(select(OrgUnit.code).where(OrgUnit.id == company_id))
    return f"R{company_code}-{int(number or 0):08d}"


async def total_paid(session: AsyncSession, bill_id: int) -> Decimal:
    return Decimal(
        await session.scalar(
            select(func.coalesce(func.sum(BillLine.amount), 0)).where(
                BillLine.bill_id == bill_id, BillLine.kind == BillLineKind.PAYMENT
            )
        )
        or 0
    )


async def refund_payment(
    *, session: AsyncSession, payment_id: int, reason: str, actor_id: int, request_id: str | None
) -> Payment:
    """Reverse a whole payment: a refund record and, on each bill it paid, a REVERSAL line of
    the same amount. The payment itself is never edited; the bills owe again what it paid."""
    reason = reason.strip()
    if not 2 <= len(reason) <= 255:
        raise BillingError(BillingErrorCode.REASON_REQUIRED, "Say why, in 2 to 255 characters.", "reason")
    payment = await session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
    if payment is None:
        raise BillingError(BillingErrorCode.NOT_FOUND, "No such payment.", "paymentId")
    if await session.scalar(select(Refund.id).where(Refund.payment_id == payment.id)) is not None:
        raise BillingError(BillingErrorCode.ALREADY_REFUNDED, "This payment was refunded already.", "paymentId")
    lines = (
        await session.scalars(
            select(BillLine).where(BillLine.payment_id == payment.id, BillLine.kind == BillLineKind.PAYMENT)
        )
    ).all()
    bill_ids = sorted({line.bill_id for line in lines})
    await session.execute(select(Bill.id).where(Bill.id.in_(bill_ids)).order_by(Bill.id).with_for_update())
    session.add(Refund(payment_id=payment.id, reason=reason, created_by_id=actor_id))
    session.add_all(
        BillLine(
            bill_id=line.bill_id,
            kind=BillLineKind.REVERSAL,
            amount=line.amount,
            payment_id=payment.id,
            note=reason,
            created_by_id=actor_id,
        )
        for line in lines
    )
    await session.flush()
    for bill in (
        await session.scalars(select(Bill).where(Bill.id.in_(bill_ids)).execution_options(populate_existing=True))
    ).all():
        status = BillStatus.PARTIAL if bill.paid_amount > 0 else BillStatus.UNPAID
        if bill.status not in (BillStatus.VOID,) and bill.outstanding > 0:
            await session.execute(update(Bill).where(Bill.id == bill.id).values(status=status))
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="payment.refund",
        target_type="Payment",
        target_id=payment.id,
        request_id=request_id,
        detail={"amount": str(payment.amount), "reason": reason, "bills": bill_ids},
    )
    return payment
