"""generateBills."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from sqlalchemy import select

from authz.scopes import scoped
from backend.billing import adjustments, models, payments, service
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.periods import parse_month
from backend.property.models import Estate
from schema.billing.types import BillType, PaymentMethod, PaymentType
from schema.core.errors import Forbidden, UserError, user_error
from schema.core.relay import try_decode_id
from schema.core.resolving import (
    Info,
    authorised_target,
    estate_own_path,
    estate_path,
    payload_options,
    reload_for_payload,
    unit_of_work,
)


@strawberry.input
class GenerateBillsInput:
    estate_id: strawberry.ID
    period: str = strawberry.field(
        description="The month to bill, `YYYY-MM`. Quarterly and yearly items bill in their first month."
    )


@strawberry.type
class GenerateBillsPayload:
    created_count: int = 0
    skipped_count: int = strawberry.field(default=0, description="Bills that existed already (idempotent re-runs).")
    items_without_rate: list[str] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class PayBillsInput:
    bill_ids: list[strawberry.ID]
    amount: Decimal = strawberry.field(description="Whole cents; at most what the bills owe.")
    method: PaymentMethod
    idempotency_key: str = strawberry.field(
        description="Up to 255 characters. The same key with the same bills, amount and method returns the first "
        "result; with anything else, IDEMPOTENCY_KEY_REUSED."
    )


@strawberry.type
class PayBillsPayload:
    payment: PaymentType | None = None
    bills: list[BillType] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class WaiveBillInput:
    bill_id: strawberry.ID
    amount: Decimal = strawberry.field(description="Whole cents, at most what the bill still owes.")
    reason: str


@strawberry.input
class VoidBillInput:
    bill_id: strawberry.ID
    reason: str


@strawberry.type
class BillPayload:
    bill: BillType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BillingMutation:
    @strawberry.mutation(
        description="Bill an estate's periodic fee items for a month. Idempotent: each bill is made once. "
        "Needs `Bill generate` (finance, manager)."
    )
    async def generate_bills(self, info: Info, input: GenerateBillsInput) -> GenerateBillsPayload:
        ctx = info.context
        principal = ctx.require_principal()
        estate = await authorised_target(
            info, Estate, input.estate_id, type_name="Estate", obj="Bill", act="generate", path_of=estate_own_path
        )
        if estate is None:
            return GenerateBillsPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such estate.", "estateId")])
        try:
            month = parse_month(input.period)
            async with unit_of_work(ctx):
                report = await service.generate_bills(
                    session=ctx.session,
                    estate=estate,
                    month=month,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return GenerateBillsPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return GenerateBillsPayload(
            created_count=report.created, skipped_count=report.skipped, items_without_rate=report.items_without_rate
        )

    @strawberry.mutation(
        description="Record a counter payment (cash, card, bank transfer) over bills of one estate, oldest due "
        "first. Idempotent by key. Needs `Bill pay` (finance, manager, customer_service)."
    )
    async def pay_bills(self, info: Info, input: PayBillsInput) -> PayBillsPayload:
        ctx = info.context
        principal = ctx.require_principal()
        if not ctx.permissions.anywhere("Bill", "pay"):
            raise Forbidden()
        ids = [try_decode_id(g, "Bill") for g in input.bill_ids]
        found = (
            await ctx.session.scalars(
                scoped(
                    select(models.Bill).where(models.Bill.id.in_([i for i in ids if i])), models.Bill, ctx.permissions
                )
            )
        ).all()
        if None in ids or len(found) != len(set(ids)):
            return PayBillsPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such bill.", "billIds")])
        for estate_id in {b.estate_id for b in found}:
            if not ctx.permissions.allows_at("Bill", "pay", await estate_path(ctx.session, estate_id)):
                raise Forbidden()
        try:
            async with unit_of_work(ctx):
                result = await payments.pay_bills(
                    session=ctx.session,
                    bill_ids=[b.id for b in found],
                    amount=input.amount,
                    method=input.method,  # type: ignore[arg-type]
                    idempotency_key=input.idempotency_key,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return PayBillsPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        payment = await ctx.session.scalar(
            select(models.Payment)
            .where(models.Payment.id == result.payment.id)
            .options(*payload_options(info, models.Payment, "payment"))
            .execution_options(populate_existing=True)
        )
        bills = await ctx.session.scalars(
            scoped(select(models.Bill).where(models.Bill.id.in_(result.bill_ids)), models.Bill, ctx.permissions)
            .options(*payload_options(info, models.Bill, "bills"))
            .order_by(models.Bill.due_date, models.Bill.id)
            .execution_options(populate_existing=True)
        )
        return PayBillsPayload(payment=payment, bills=list(bills.unique()))

    @strawberry.mutation(description="Waive (减免) part or all of a bill, with a reason; audited. Needs `Bill waive`.")
    async def waive_bill(self, info: Info, input: WaiveBillInput) -> BillPayload:
        return await _adjust(info, input.bill_id, "waive", input.reason, input.amount)

    @strawberry.mutation(description="Void a bill issued in error (no payments on it); audited. Needs `Bill void`.")
    async def void_bill(self, info: Info, input: VoidBillInput) -> BillPayload:
        return await _adjust(info, input.bill_id, "void", input.reason, None)


async def _adjust(info: Info, bill_id: strawberry.ID, act: str, reason: str, amount: Decimal | None) -> BillPayload:
    ctx = info.context
    principal = ctx.require_principal()

    async def bill_path(bill: models.Bill) -> str:
        return await estate_path(ctx.session, bill.estate_id)

    bill = await authorised_target(info, models.Bill, bill_id, type_name="Bill", obj="Bill", act=act, path_of=bill_path)
    if bill is None:
        return BillPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such bill.", "billId")])
    try:
        async with unit_of_work(ctx):
            if amount is None:
                await adjustments.void_bill(
                    session=ctx.session,
                    bill_id=bill.id,
                    reason=reason,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
            else:
                await adjustments.waive_bill(
                    session=ctx.session,
                    bill_id=bill.id,
                    amount=amount,
                    reason=reason,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
    except BillingError as exc:
        return BillPayload(errors=[user_error(exc.code, exc.message, exc.field)])
    return BillPayload(bill=await reload_for_payload(info, models.Bill, bill.id, "bill"))
