"""ONLINE payments through a :class:`~backend.billing.providers.PaymentProvider`.

payBills with ONLINE writes a PENDING payment — no bill lines, no receipt — and opens an
order at the provider. The money is booked when the provider says it was paid: by its
signed callback or, when that never came, by reconciliation. Both settle through
:func:`settle`, under a row lock on the payment, so a payment settles once however many
notices arrive. An order closed unpaid makes the payment FAILED. A payment row only ever
changes from PENDING (a trigger refuses anything else).

If the bills owe less by the time the money arrives (someone paid at the counter
meanwhile), the money was still received: the payment settles, pays what the bills owe,
and keeps the rest as ``unallocated`` for finance to refund (audited).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.audit import service as audit
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import (
    BillStatus,
    Payment,
    PaymentCallback,
    PaymentMethod,
    PaymentStatus,
)
from backend.billing.payments import (
    PaymentResult,
    allocate,
    locked_bills,
    next_receipt,
    payable_bills,
    post_allocation,
    replay_or_lock,
)
from backend.billing.providers import (
    CallbackOutcome,
    CallbackRejected,
    OrderReport,
    OrderState,
    PaymentProvider,
    ProviderError,
    ProviderRegistry,
)
from backend.db import utcnow
from backend.notifications import service as notifications
from backend.property.models import Estate

log = structlog.get_logger(__name__)

MAX_STORED_BODY = 16_000


def new_order_id() -> str:
    """Our order number at the provider (its ``out_trade_no``): unique, 30 characters."""
    return f"WY{utcnow():%Y%m%d}{uuid.uuid4().hex[:20].upper()}"


async def start_online_payment(
    *,
    session: AsyncSession,
    provider: PaymentProvider | None,
    bill_ids: list[int],
    amount: Decimal,
    idempotency_key: str,
    order_ttl: dt.timedelta,
    actor_id: int,
    request_id: str | None,
) -> PaymentResult:
    """A PENDING payment over ``bill_ids`` and its order at ``provider``. The same key with
    the same request answers the same pending payment (and its pay URL)."""
    amount, digest, replay = await replay_or_lock(
        session,
        bill_ids=bill_ids,
        amount=amount,
        method=PaymentMethod.ONLINE,
        idempotency_key=idempotency_key,
        actor_id=actor_id,
    )
    if replay is not None:
        return replay
    if provider is None:
        raise BillingError(BillingErrorCode.PROVIDER_UNAVAILABLE, "Online payment is not available.", "method")
    bills = await payable_bills(session, bill_ids, amount)
    # One open order per bill: a second one (another tap, another family member) would be
    # paid on top of the first and end up unallocated. The bills are locked, so two
    # concurrent starts see each other.
    waiting = await session.scalar(
        select(Payment.expires_at)
        .where(
            Payment.status == PaymentStatus.PENDING,
            Payment.expires_at > utcnow(),
            Payment.bill_ids.overlap(sorted({b.id for b in bills})),
        )
        .order_by(Payment.expires_at.desc())
        .limit(1)
    )
    if waiting is not None:
        raise BillingError(
            BillingErrorCode.PAYMENT_IN_PROGRESS,
            f"An online payment for these bills is waiting to be paid until {waiting:%Y-%m-%d %H:%M} UTC.",
            "billIds",
        )
    estate = await session.get(Estate, bills[0].estate_id)
    assert estate is not None
    try:
        order = await provider.create_order(
            order_id=new_order_id(),
            amount=amount,
            description=f"{estate.name} {' '.join(sorted({b.period for b in bills}))}"[:100],
            expires_at=utcnow() + order_ttl,
        )
    except ProviderError as exc:
        log.warning("payment.provider_unavailable", provider=provider.name, error=str(exc))
        raise BillingError(
            BillingErrorCode.PROVIDER_UNAVAILABLE, "The payment provider is unavailable; try again.", "method"
        ) from exc
    payment = Payment(
        estate_id=estate.id,
        amount=amount,
        method=PaymentMethod.ONLINE,
        status=PaymentStatus.PENDING,
        idempotency_key=idempotency_key,
        request_hash=digest,
        bill_ids=sorted(set(bill_ids)),
        created_by_id=actor_id,
        provider=provider.name,
        provider_order_id=order.order_id,
        pay_url=order.pay_url,
        expires_at=order.expires_at,
    )
    session.add(payment)
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="payment.start_online",
        target_type="Payment",
        target_id=payment.id,
        request_id=request_id,
        detail={"amount": str(amount), "provider": provider.name, "orderId": order.order_id, "bills": payment.bill_ids},
    )
    return PaymentResult(payment, sorted(set(bill_ids)), replayed=False)


async def settle(
    session: AsyncSession, payment: Payment, *, transaction_id: str | None, source: str, request_id: str | None
) -> Decimal:
    """Book a PENDING payment the provider reports paid; the caller holds its row lock.
    Pays its bills oldest due first as far as they still owe; returns what is left over."""
    assert payment.status is PaymentStatus.PENDING
    bills = await locked_bills(session, payment.bill_ids)
    owing = sorted(
        (b for b in bills if b.status not in (BillStatus.VOID, BillStatus.WAIVED) and b.outstanding > 0),
        key=lambda b: (b.due_date, b.id),
    )
    allocated = min(payment.amount, sum((b.outstanding for b in owing), Decimal("0.00")))
    parts = allocate(allocated, [(b.id, b.outstanding) for b in owing]) if allocated > 0 else []
    estate = await session.get(Estate, payment.estate_id)
    assert estate is not None
    payment.status = PaymentStatus.SETTLED
    payment.receipt_number = await next_receipt(session, estate)
    payment.settled_at = utcnow()
    payment.provider_reference = transaction_id
    await session.flush()
    await post_allocation(session, payment, parts, bills)
    unallocated = payment.amount - allocated
    await audit.record(
        session,
        actor_user_id=None,
        action="payment.settle",
        target_type="Payment",
        target_id=payment.id,
        request_id=request_id,
        detail={
            "amount": str(payment.amount),
            "provider": payment.provider,
            "orderId": payment.provider_order_id,
            "receipt": payment.receipt_number,
            "bills": [bill_id for bill_id, _ in parts],
            "unallocated": str(unallocated),
            "source": source,
        },
    )
    # The payer hears of it in the app (once per payment, even if settling were retried).
    await notifications.notify(
        session,
        user_id=payment.created_by_id,
        kind="payment_settled",
        title="缴费成功",
        body=f"已收到您的缴费 {payment.amount} 元，收据号 {payment.receipt_number}。",
        data={"paymentId": payment.gid, "receiptNumber": payment.receipt_number, "amount": str(payment.amount)},
        dedup_key=f"payment-settled:{payment.id}",
    )
    if unallocated > 0:
        # Money no bill took: finance refunds it (Payment.unallocated lists it).
        await audit.record(
            session,
            actor_user_id=None,
            action="payment.unallocated",
            target_type="Payment",
            target_id=payment.id,
            request_id=request_id,
            detail={"amount": str(unallocated), "receipt": payment.receipt_number},
        )
        log.warning("payment.unallocated", payment_id=payment.id, amount=str(unallocated))
    return unallocated


async def fail(session: AsyncSession, payment: Payment, *, reason: str, request_id: str | None) -> None:
    """A PENDING payment whose order closed unpaid; the caller holds its row lock."""
    assert payment.status is PaymentStatus.PENDING
    payment.status = PaymentStatus.FAILED
    await session.flush()
    await audit.record(
        session,
        actor_user_id=None,
        action="payment.fail",
        target_type="Payment",
        target_id=payment.id,
        request_id=request_id,
        detail={"provider": payment.provider, "orderId": payment.provider_order_id, "reason": reason},
    )


# --- callbacks -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackResult:
    outcome: CallbackOutcome
    payment_id: int | None = None


async def _locked_payment(session: AsyncSession, provider: str, order_id: str) -> Payment | None:
    return await session.scalar(
        select(Payment)
        .where(Payment.provider == provider, Payment.provider_order_id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _apply_notice(
    session: AsyncSession, provider: PaymentProvider, report: OrderReport, request_id: str | None
) -> CallbackResult:
    payment = await _locked_payment(session, provider.name, report.order_id)
    if payment is None:
        return CallbackResult(CallbackOutcome.UNKNOWN_ORDER)
    if report.state is not OrderState.PAID:
        return CallbackResult(CallbackOutcome.NOT_PAID, payment.id)
    if report.amount != payment.amount:
        log.warning("payment.callback_amount_mismatch", payment_id=payment.id, reported=str(report.amount))
        return CallbackResult(CallbackOutcome.AMOUNT_MISMATCH, payment.id)
    if payment.status is PaymentStatus.SETTLED:
        return CallbackResult(CallbackOutcome.DUPLICATE, payment.id)
    if payment.status is PaymentStatus.FAILED:
        # We closed the order before it was paid; a provider that took money anyway is a
        # case for finance, not for the ledger.
        log.error("payment.paid_after_failed", payment_id=payment.id, order_id=report.order_id)
        return CallbackResult(CallbackOutcome.PAYMENT_FAILED, payment.id)
    await settle(session, payment, transaction_id=report.transaction_id, source="callback", request_id=request_id)
    return CallbackResult(CallbackOutcome.SETTLED, payment.id)


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    provider: str,
    body: str,
    outcome: CallbackOutcome,
    order_id: str | None,
    reference: str | None = None,
) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(
            PaymentCallback(
                provider=provider, provider_order_id=order_id, provider_reference=reference, body=body, outcome=outcome
            )
        )


async def receive_callback(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    headers: Mapping[str, str],
    body: bytes,
    request_id: str | None,
    now: float | None = None,
) -> CallbackResult:
    """Verify a provider's callback and act on it. Every callback is kept with its outcome;
    one that is not authentic, fresh, ours and for the right amount settles nothing."""
    stored = body[:MAX_STORED_BODY].decode("utf-8", errors="replace")
    try:
        report = provider.verify_callback(headers, body, now=time.time() if now is None else now)
    except CallbackRejected as rejected:
        log.warning("payment.callback_rejected", provider=provider.name, outcome=rejected.outcome.value)
        await _record(sessionmaker, provider=provider.name, body=stored, outcome=rejected.outcome, order_id=None)
        return CallbackResult(rejected.outcome)
    if report.merchant_id != provider.merchant_id:
        log.warning("payment.callback_rejected", provider=provider.name, outcome="MERCHANT_MISMATCH")
        await _record(
            sessionmaker,
            provider=provider.name,
            body=stored,
            outcome=CallbackOutcome.MERCHANT_MISMATCH,
            order_id=report.order_id,
        )
        return CallbackResult(CallbackOutcome.MERCHANT_MISMATCH)
    try:
        async with sessionmaker() as session, session.begin():
            result = await _apply_notice(session, provider, report, request_id)
            session.add(
                PaymentCallback(
                    provider=provider.name,
                    provider_order_id=report.order_id,
                    provider_reference=report.transaction_id,
                    body=stored,
                    outcome=result.outcome,
                    payment_id=result.payment_id,
                )
            )
    except Exception:
        # Nothing was booked (the transaction rolled back); the provider will retry.
        log.exception("payment.callback_failed", provider=provider.name, order_id=report.order_id)
        await _record(
            sessionmaker, provider=provider.name, body=stored, outcome=CallbackOutcome.ERROR, order_id=report.order_id
        )
        return CallbackResult(CallbackOutcome.ERROR)
    log.info("payment.callback", provider=provider.name, outcome=result.outcome.value, payment_id=result.payment_id)
    return result


# --- reconciliation ------------------------------------------------------------------------


@dataclass(slots=True)
class ReconcileReport:
    settled: int = 0
    failed: int = 0
    pending: int = 0  # still open at the provider, not expired
    skipped: int = 0  # provider unreachable or unknown, or settled meanwhile by a callback
    mismatched: int = 0  # paid at the provider, but not what we asked: left for finance

    def as_dict(self) -> dict[str, int]:
        return {
            "settled": self.settled,
            "failed": self.failed,
            "pending": self.pending,
            "skipped": self.skipped,
            "mismatched": self.mismatched,
        }


async def _provider_verdict(
    provider: PaymentProvider, order_id: str, *, expired: bool
) -> tuple[OrderReport | None, bool]:
    """What the provider says about an order; an open order past our expiry is closed there
    first, so that it cannot be paid after we give up on it. Returns (report, closed)."""
    report = await provider.query_order(order_id)
    if expired and report is not None and report.state is OrderState.PENDING:
        report = await provider.close_order(order_id)
    closed = (report is None and expired) or (report is not None and report.state is OrderState.CLOSED)
    return report, closed


async def reconcile_pending(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    providers: ProviderRegistry,
    older_than: dt.timedelta,
    request_id: str | None,
    limit: int = 500,
) -> ReconcileReport:
    """Ask the provider about PENDING payments at least ``older_than`` old: paid → settle;
    closed, or past their expiry and unpaid → FAILED. Idempotent, and safe on two workers:
    each payment is decided under its row lock, skipped if someone else holds it."""
    report = ReconcileReport()
    now = utcnow()
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Payment.id, Payment.provider, Payment.provider_order_id, Payment.expires_at)
                .where(Payment.status == PaymentStatus.PENDING, Payment.created_at <= now - older_than)
                .order_by(Payment.id)
                .limit(limit)
            )
        ).all()
    for payment_id, provider_name, order_id, expires_at in rows:
        provider = providers.get(provider_name or "")
        if provider is None or order_id is None:
            log.warning("payment.reconcile_no_provider", payment_id=payment_id, provider=provider_name)
            report.skipped += 1
            continue
        expired = expires_at is None or expires_at <= utcnow()
        try:
            verdict, closed = await _provider_verdict(provider, order_id, expired=expired)
        except ProviderError as exc:
            log.warning("payment.reconcile_provider_unavailable", payment_id=payment_id, error=str(exc))
            report.skipped += 1
            continue
        async with sessionmaker() as session, session.begin():
            payment = await session.scalar(
                select(Payment)
                .where(Payment.id == payment_id, Payment.status == PaymentStatus.PENDING)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
            if payment is None:
                report.skipped += 1
            elif verdict is not None and verdict.state is OrderState.PAID:
                if verdict.amount != payment.amount or verdict.merchant_id != provider.merchant_id:
                    log.error("payment.reconcile_mismatch", payment_id=payment.id, reported=str(verdict.amount))
                    report.mismatched += 1
                    continue
                await settle(
                    session,
                    payment,
                    transaction_id=verdict.transaction_id,
                    source="reconciliation",
                    request_id=request_id,
                )
                report.settled += 1
            elif closed:
                await fail(session, payment, reason="closed unpaid", request_id=request_id)
                report.failed += 1
            else:
                report.pending += 1
    if rows:
        log.info("payment.reconciled", **report.as_dict())
    return report
