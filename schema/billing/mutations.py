"""Billing mutations: bills, payments (counter and online), waivers, fee items, refunds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry
from sqlalchemy import select

from authz.scopes import scoped
from backend.billing import adjustments, fee_items, models, online, payments, service
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.periods import parse_month
from backend.property.models import Estate
from schema.billing.types import (
    BillingCycle,
    BillType,
    ChargeMethod,
    FeeItemType,
    FeeKind,
    PaymentMethod,
    PaymentType,
)
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
from schema.property.types import UnitUsage


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
    method: PaymentMethod = strawberry.field(description="Residents: ONLINE only.")
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


@strawberry.input(description="A price tier: consumption up to `upTo` (the last tier open-ended) at `price` per unit.")
class FeeTierInput:
    price: Decimal
    up_to: Decimal | None = None


@strawberry.input
class CreateFeeItemInput:
    estate_id: strawberry.ID
    code: str = strawberry.field(description="The company's fee code, e.g. `PF01`; unique in the estate.")
    name: str
    kind: FeeKind
    method: ChargeMethod
    cycle: BillingCycle
    rate: Decimal = strawberry.field(description="Per m² per month (PER_AREA) or per cycle (FIXED), ≤ 4 decimals.")
    effective_from: dt.date
    due_day: int = 15
    late_fee_daily_rate: Decimal = Decimal("0")
    grace_days: int = 0
    tiers: list[FeeTierInput] | None = strawberry.field(
        default=None, description="METERED only: tiered unit prices (阶梯价); `rate` is then the first tier's."
    )


@strawberry.type
class FeeItemPayload:
    fee_item: FeeItemType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetFeeRateInput:
    fee_item_id: strawberry.ID
    rate: Decimal
    effective_from: dt.date
    tiers: list[FeeTierInput] | None = None


@strawberry.input
class BindFeeItemInput:
    fee_item_id: strawberry.ID
    start_date: dt.date
    unit_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="These units, or …")
    building_id: strawberry.ID | None = strawberry.field(default=None, description="… every unit of a building, …")
    usage: UnitUsage | None = strawberry.field(default=None, description="… of a usage (filters combine).")


@strawberry.input
class UnbindFeeItemInput:
    fee_item_id: strawberry.ID
    end_date: dt.date = strawberry.field(description="The first day not charged; bills already issued stay.")
    unit_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="These units, or …")
    building_id: strawberry.ID | None = strawberry.field(default=None, description="… every unit of a building, …")
    usage: UnitUsage | None = strawberry.field(default=None, description="… of a usage (filters combine).")


@strawberry.type
class UnbindFeeItemPayload:
    ended_count: int = 0
    skipped_count: int = strawberry.field(default=0, description="Matching units not bound on that day.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BindFeeItemPayload:
    bound_count: int = 0
    skipped_count: int = strawberry.field(default=0, description="Units bound already on that date.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class FeeItemMutation:
    @strawberry.mutation(
        description="Create a fee item with its first rate. Needs `FeeItem create` (finance, manager)."
    )
    async def create_fee_item(self, info: Info, input: CreateFeeItemInput) -> FeeItemPayload:
        ctx = info.context
        principal = ctx.require_principal()
        estate = await authorised_target(
            info, Estate, input.estate_id, type_name="Estate", obj="FeeItem", act="create", path_of=estate_own_path
        )
        if estate is None:
            return FeeItemPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such estate.", "estateId")])
        try:
            async with unit_of_work(ctx):
                item = await fee_items.create_fee_item(
                    session=ctx.session,
                    estate=estate,
                    code=input.code,
                    name=input.name,
                    kind=input.kind,
                    method=input.method,
                    cycle=input.cycle,  # type: ignore[arg-type]
                    rate=input.rate,
                    effective_from=input.effective_from,
                    due_day=input.due_day,
                    late_fee_daily_rate=input.late_fee_daily_rate,
                    grace_days=input.grace_days,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                    tiers=_tiers(input.tiers),
                )
        except BillingError as exc:
            return FeeItemPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return FeeItemPayload(fee_item=await reload_for_payload(info, models.FeeItem, item.id, "feeItem"))

    @strawberry.mutation(description="A new rate from a date; issued bills keep theirs. Needs `FeeItem update`.")
    async def set_fee_rate(self, info: Info, input: SetFeeRateInput) -> FeeItemPayload:
        ctx = info.context
        principal = ctx.require_principal()
        item = await _fee_item_for_update(info, input.fee_item_id)
        if item is None:
            return FeeItemPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such fee item.", "feeItemId")])
        try:
            async with unit_of_work(ctx):
                await fee_items.set_rate(
                    session=ctx.session,
                    item=item,
                    rate=input.rate,
                    effective_from=input.effective_from,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                    tiers=_tiers(input.tiers),
                )
        except BillingError as exc:
            return FeeItemPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return FeeItemPayload(fee_item=await reload_for_payload(info, models.FeeItem, item.id, "feeItem"))

    @strawberry.mutation(
        description="Bind a fee item to units: listed ones, a building's, a usage's — in one statement. "
        "Needs `FeeItem update`."
    )
    async def bind_fee_item(self, info: Info, input: BindFeeItemInput) -> BindFeeItemPayload:
        ctx = info.context
        principal = ctx.require_principal()
        item = await _fee_item_for_update(info, input.fee_item_id)
        if item is None:
            return BindFeeItemPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such fee item.", "feeItemId")])
        unit_ids, building_id = _unit_filter(input)
        try:
            async with unit_of_work(ctx):
                bound, skipped = await fee_items.bind_units(
                    session=ctx.session,
                    item=item,
                    start_date=input.start_date,
                    unit_ids=unit_ids,
                    building_id=building_id,
                    usage=input.usage,  # type: ignore[arg-type]
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return BindFeeItemPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return BindFeeItemPayload(bound_count=bound, skipped_count=skipped)

    @strawberry.mutation(
        description="Stop charging a fee item to units from a date (a unit sold, a parking space given up): "
        "listed ones, a building's, a usage's. Issued bills stay. Needs `FeeItem update`."
    )
    async def unbind_fee_item(self, info: Info, input: UnbindFeeItemInput) -> UnbindFeeItemPayload:
        ctx = info.context
        principal = ctx.require_principal()
        item = await _fee_item_for_update(info, input.fee_item_id)
        if item is None:
            return UnbindFeeItemPayload(
                errors=[user_error(BillingErrorCode.NOT_FOUND, "No such fee item.", "feeItemId")]
            )
        unit_ids, building_id = _unit_filter(input)
        try:
            async with unit_of_work(ctx):
                ended, skipped = await fee_items.unbind_units(
                    session=ctx.session,
                    item=item,
                    end_date=input.end_date,
                    unit_ids=unit_ids,
                    building_id=building_id,
                    usage=input.usage,  # type: ignore[arg-type]
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return UnbindFeeItemPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return UnbindFeeItemPayload(ended_count=ended, skipped_count=skipped)


def _unit_filter(input: BindFeeItemInput | UnbindFeeItemInput) -> tuple[list[int] | None, int | None]:
    """The listed units and the building as database ids (0 for an id that does not decode:
    it matches nothing)."""
    unit_ids = None if input.unit_ids is None else [try_decode_id(u, "Unit") or 0 for u in input.unit_ids]
    building_id = None if input.building_id is None else try_decode_id(input.building_id, "Building") or 0
    return unit_ids, building_id


def _tiers(tiers: list[FeeTierInput] | None) -> list[tuple[Decimal | None, Decimal]] | None:
    return None if tiers is None else [(t.up_to, t.price) for t in tiers]


async def _fee_item_for_update(info: Info, fee_item_id: strawberry.ID) -> models.FeeItem | None:
    async def item_path(item: models.FeeItem) -> str:
        return await estate_path(info.context.session, item.estate_id)

    return await authorised_target(
        info, models.FeeItem, fee_item_id, type_name="FeeItem", obj="FeeItem", act="update", path_of=item_path
    )


@strawberry.input
class RefundPaymentInput:
    payment_id: strawberry.ID
    reason: str


@strawberry.type
class RefundPaymentPayload:
    payment: PaymentType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RefundMutation:
    @strawberry.mutation(
        description="Reverse a whole payment: its bills owe again what it paid; the payment is kept. Audited. "
        "Needs `Payment refund` (finance only)."
    )
    async def refund_payment(self, info: Info, input: RefundPaymentInput) -> RefundPaymentPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def payment_path(payment: models.Payment) -> str:
            return await estate_path(ctx.session, payment.estate_id)

        payment = await authorised_target(
            info,
            models.Payment,
            input.payment_id,
            type_name="Payment",
            obj="Payment",
            act="refund",
            path_of=payment_path,
        )
        if payment is None:
            return RefundPaymentPayload(
                errors=[user_error(BillingErrorCode.NOT_FOUND, "No such payment.", "paymentId")]
            )
        try:
            async with unit_of_work(ctx):
                await payments.refund_payment(
                    session=ctx.session,
                    payment_id=payment.id,
                    reason=input.reason,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return RefundPaymentPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return RefundPaymentPayload(payment=await reload_for_payload(info, models.Payment, payment.id, "payment"))


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
        description="Pay bills of one estate, oldest due first; idempotent by key. Counter methods (CASH, CARD, "
        "BANK_TRANSFER) record money taken and need `Bill pay` (finance, manager, customer_service). ONLINE opens an "
        "order at the payment provider and returns a PENDING payment with its `payUrl`; it settles when the provider "
        "confirms. Residents may pay ONLINE only, and only their own units' bills (`Bill pay_own`); staff with "
        "`Bill pay` may start one on an owner's behalf."
    )
    async def pay_bills(self, info: Info, input: PayBillsInput) -> PayBillsPayload:
        ctx = info.context
        principal = ctx.require_principal()
        online_payment = input.method is models.PaymentMethod.ONLINE
        if not (
            ctx.permissions.anywhere("Bill", "pay") or (online_payment and ctx.permissions.anywhere("Bill", "pay_own"))
        ):
            raise Forbidden()
        ids = [try_decode_id(g, "Bill") for g in input.bill_ids]
        wanted = [i for i in ids if i]
        found = (
            await ctx.session.scalars(
                scoped(select(models.Bill).where(models.Bill.id.in_(wanted)), models.Bill, ctx.permissions)
            )
        ).all()
        if None in ids or len(found) != len(set(ids)):
            return PayBillsPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such bill.", "billIds")])
        if online_payment:
            # Staff where they hold `Bill pay`; a resident their own units' bills (`Bill pay_own`).
            payable = set(
                await ctx.session.scalars(
                    scoped(
                        select(models.Bill.id).where(models.Bill.id.in_(wanted)), models.Bill, ctx.permissions, "pay"
                    )
                )
            )
            if payable != {b.id for b in found}:
                raise Forbidden()
        else:
            for estate_id in {b.estate_id for b in found}:
                if not ctx.permissions.allows_at("Bill", "pay", await estate_path(ctx.session, estate_id)):
                    raise Forbidden()
        settings = ctx.runtime.settings
        try:
            async with unit_of_work(ctx):
                if online_payment:
                    result = await online.start_online_payment(
                        session=ctx.session,
                        provider=ctx.runtime.payment_providers.default,
                        bill_ids=[b.id for b in found],
                        amount=input.amount,
                        idempotency_key=input.idempotency_key,
                        order_ttl=dt.timedelta(seconds=settings.payment_order_ttl_seconds),
                        actor_id=principal.user_id,
                        request_id=ctx.request_id,
                    )
                else:
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
