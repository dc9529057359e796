"""GraphQL types of billing: fee items and bills."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import inspect as sa_inspect

from authz.principal import FieldAccess
from backend.billing import models
from backend.db import local_today
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Node
from schema.core.types import orm_type

if TYPE_CHECKING:
    from schema.core.context import Context
    from schema.property.types import UnitType

FeeKind = strawberry.enum(models.FeeKind, name="FeeKind")
ChargeMethod = strawberry.enum(models.ChargeMethod, name="ChargeMethod")
BillingCycle = strawberry.enum(models.BillingCycle, name="BillingCycle")
BillStatus = strawberry.enum(models.BillStatus, name="BillStatus")
PaymentMethod = strawberry.enum(models.PaymentMethod, name="PaymentMethod")
PaymentStatus = strawberry.enum(models.PaymentStatus, name="PaymentStatus")
BillLineKind = strawberry.enum(models.BillLineKind, name="BillLineKind")
DunningStep = strawberry.enum(models.DunningStep, name="DunningStep")


@strawberry.input
class UnitBillFilter:
    status: BillStatus | None = None
    period: str | None = None


@orm_type(models.FeeItem, name="FeeItem", description="A charge an estate bills its units (收费项目).")
class FeeItemType(Node):
    code: str
    name: str
    kind: FeeKind
    method: ChargeMethod
    cycle: BillingCycle
    due_day: int = strawberry.field(description="Day of the period's first month the bill falls due.")
    late_fee_daily_rate: Decimal
    grace_days: int
    active: bool

    @strawberry.field(description="The rate in force today (the company's day).")
    @staticmethod
    async def current_rate(
        root: strawberry.Parent[models.FeeItem], info: strawberry.Info[Context, None]
    ) -> Decimal | None:
        if "rates" in sa_inspect(root).unloaded:  # not preloaded by the look-ahead: batch it
            loaded: list[models.FeeRate] = await info.context.loaders.for_relation(models.FeeItem, "rates").load(
                root.id
            )
        else:
            loaded = root.rates
        today = local_today()
        rates = [r for r in loaded if r.effective_from <= today]
        return max(rates, key=lambda r: r.effective_from).rate if rates else None

    rates: list[FeeRateType] = strawberry.field(description="Every rate with the date it applies from.")


@strawberry.type(description="A price tier: consumption up to `upTo` (null: no limit) at `price` per unit.")
class FeeTier:
    up_to: Decimal | None
    price: Decimal


@orm_type(models.FeeRate, name="FeeRate")
class FeeRateType:
    rate: Decimal
    effective_from: dt.date

    @strawberry.field(description="METERED items' tiered prices (阶梯价), lowest first; empty for a flat rate.")
    @staticmethod
    def tiers(root: strawberry.Parent[models.FeeRate]) -> list[FeeTier]:
        return [
            FeeTier(up_to=None if t["upTo"] is None else Decimal(t["upTo"]), price=Decimal(str(t["price"])))
            for t in root.tiers or []
        ]


@orm_type(models.BillLine, name="BillLine", description="One movement on a bill; lines are only ever added.")
class BillLineType:
    kind: BillLineKind
    amount: Decimal = strawberry.field(description="Positive, except ADJUSTMENT lines, which may be negative.")
    note: str
    accrued_on: dt.date | None = strawberry.field(description="LATE_FEE lines: the day the fee accrued for.")
    created_at: dt.datetime


@orm_type(
    models.DunningNotice,
    name="DunningNotice",
    description="One reminder step taken for a bill (催缴): what it owed then and how its payers were reached.",
)
class DunningNoticeType:
    step: DunningStep = strawberry.field(
        description="BEFORE_DUE (a few days before the due date), ON_DUE, OVERDUE_7 or OVERDUE_30."
    )
    outstanding: Decimal = strawberry.field(description="What the bill owed when reminded.")
    in_app: int = strawberry.field(description="In-app notifications written to the payers' accounts.")
    sms: int = strawberry.field(description="Text messages handed to the SMS channel.")
    created_at: dt.datetime


@orm_type(models.Bill, name="Bill", description="What a unit owes for one fee item and period.")
class BillType(Node):
    period: str = strawberry.field(description="`2026-11`, `2026-Q4` or `2026`, by the fee item's cycle.")
    period_start: dt.date
    period_end: dt.date
    quantity: Decimal = strawberry.field(description="Billed area in m² (PER_AREA), consumption (METERED) or 1.")
    rate: Decimal
    amount: Decimal = strawberry.field(description="The amount charged when the bill was issued; never edited.")
    charged_amount: Decimal = strawberry.field(
        description="Added since: adjustments (± area corrections) and late fees."
    )
    paid_amount: Decimal
    waived_amount: Decimal
    outstanding: Decimal
    due_date: dt.date
    status: BillStatus
    created_at: dt.datetime
    unit: Annotated[UnitType, strawberry.lazy("schema.property.types")]
    fee_item: FeeItemType
    lines: list[BillLineType] = strawberry.field(description="The bill's ledger: every line, oldest first.")
    reminders: list[DunningNoticeType] = strawberry.field(
        description="The dunning steps taken for this bill (催缴), oldest first; seen by whoever may read the bill."
    )


@orm_type(models.BillLine, name="PaymentAllocation", description="The part of a payment that went to one bill.")
class PaymentAllocationType:
    amount: Decimal
    bill: BillType


@orm_type(models.Refund, name="Refund")
class RefundType:
    reason: str
    created_at: dt.datetime


@orm_type(
    models.Payment,
    name="Payment",
    description="Money received, or for an ONLINE payment expected: PENDING until the provider confirms it, then "
    "SETTLED (or FAILED when the order closed unpaid). Never edited afterwards (corrections are reversals).",
)
class PaymentType(Node):
    amount: Decimal
    method: PaymentMethod
    status: PaymentStatus
    receipt_number: str | None = strawberry.field(description="Gap-free per company; set once SETTLED.")
    created_at: dt.datetime
    settled_at: dt.datetime | None
    provider: str | None = strawberry.field(description="ONLINE: the payment provider, e.g. `sandbox`.")
    provider_order_id: str | None = strawberry.field(description="ONLINE: our order number at the provider.")
    pay_url: str | None = strawberry.field(description="ONLINE: where the payer pays, until `expiresAt`.")
    expires_at: dt.datetime | None = strawberry.field(description="ONLINE: the order closes unpaid after this.")
    unallocated: Decimal | None = strawberry.field(
        description="Received but owed by none of its bills any more (they were paid meanwhile): for finance to "
        "refund. Null until SETTLED."
    )

    @strawberry.field(
        description="The provider's transaction id. Needs `Payment.providerReference read` (finance); null for "
        "everyone else."
    )
    @staticmethod
    def provider_reference(root: strawberry.Parent[models.Payment], info: strawberry.Info[Context, None]) -> str | None:
        if info.context.permissions.field_access("Payment.providerReference") is FieldAccess.FULL:
            return root.provider_reference
        return None

    allocations: list[PaymentAllocationType] = strawberry.field(description="Oldest-due bill first.")
    refund: RefundType | None = strawberry.field(description="Set once the whole payment was reversed.")


register_relation(models.Payment, "allocations", Relation("allocations"))
register_relation(models.Payment, "refund", Relation("refund"))
register_relation(models.FeeItem, "rates", Relation("rates"))
register_relation(models.FeeItem, "currentRate", Relation("rates"))
register_relation(models.BillLine, "bill", Relation("bill"))
register_relation(models.Bill, "unit", Relation("unit"))
register_relation(models.Bill, "feeItem", Relation("fee_item"))
register_relation(models.Bill, "lines", Relation("lines"))
register_relation(models.Bill, "reminders", Relation("reminders"))
