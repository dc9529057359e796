"""Fee items, their rates and bindings to units; bills and their immutable lines.

A bill's ``amount`` is what was charged when it was issued and is never edited. Everything
after that — adjustments, payments, reversals, waivers, late fees — is a new ``BillLine``;
``paid_amount``, ``waived_amount`` and ``outstanding`` are sums over those lines.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship
from sqlalchemy.sql.selectable import ScalarSelect

from backend.db import Area, Base, Money, created_at_column, enum_column

if TYPE_CHECKING:
    from backend.property.models import Unit


class FeeKind(enum.Enum):
    PROPERTY_FEE = "property_fee"
    WATER = "water"
    ELECTRICITY = "electricity"
    GAS = "gas"
    PARKING = "parking"
    GARBAGE = "garbage"
    REPAIR = "repair"
    OTHER = "other"


class ChargeMethod(enum.Enum):
    PER_AREA = "per_area"  # building area × rate per month
    FIXED = "fixed"  # rate per cycle
    METERED = "metered"  # reading delta × unit price
    ONE_OFF = "one_off"


class BillingCycle(enum.Enum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "yearly": 12}[self.value]


class FeeItem(Base):
    __tablename__ = "fee_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[FeeKind] = mapped_column(enum_column(FeeKind))
    method: Mapped[ChargeMethod] = mapped_column(enum_column(ChargeMethod))
    cycle: Mapped[BillingCycle] = mapped_column(enum_column(BillingCycle))
    due_day: Mapped[int] = mapped_column(default=15)
    late_fee_daily_rate: Mapped[Decimal] = mapped_column(Numeric(8, 6), default=Decimal(0))
    grace_days: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = created_at_column()

    rates: Mapped[list[FeeRate]] = relationship(lazy="raise", order_by="FeeRate.effective_from")

    __table_args__ = (
        UniqueConstraint("estate_id", "code"),
        CheckConstraint("due_day BETWEEN 1 AND 28", name="due_day_range"),
        CheckConstraint("late_fee_daily_rate >= 0 AND grace_days >= 0", name="late_fee_non_negative"),
    )


class FeeRate(Base):
    """A fee item's rate from a date on. Bills take the rate in force on their first day."""

    __tablename__ = "fee_rates"

    id: Mapped[int] = mapped_column(primary_key=True)
    fee_item_id: Mapped[int] = mapped_column(ForeignKey("fee_items.id", ondelete="RESTRICT"))
    rate: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    # METERED items may price consumption in tiers (阶梯价): [{"upTo": "20", "price": "3.00"},
    # {"upTo": null, "price": "4.50"}], ascending, the last open-ended. Null: ``rate`` flat.
    tiers: Mapped[list[dict[str, str | None]] | None] = mapped_column(JSONB)
    effective_from: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (
        UniqueConstraint("fee_item_id", "effective_from"),
        CheckConstraint("rate >= 0", name="rate_non_negative"),
    )


class FeeBinding(Base):
    """A fee item charged to a unit from ``start_date`` until ``end_date`` (exclusive)."""

    __tablename__ = "fee_bindings"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    fee_item_id: Mapped[int] = mapped_column(ForeignKey("fee_items.id", ondelete="RESTRICT"), index=True)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (
        UniqueConstraint("unit_id", "fee_item_id", "start_date"),
        CheckConstraint("end_date IS NULL OR end_date > start_date", name="period_order"),
    )


class BillStatus(enum.Enum):
    UNPAID = "unpaid"
    PARTIAL = "partial"
    PAID = "paid"
    WAIVED = "waived"
    VOID = "void"


class BillLineKind(enum.Enum):
    ADJUSTMENT = "adjustment"  # + or −, e.g. an area correction (面积变更)
    LATE_FEE = "late_fee"  # +
    PAYMENT = "payment"  # − on the outstanding
    REVERSAL = "reversal"  # undoes a payment
    WAIVER = "waiver"  # − on the outstanding


class BillLine(Base):
    """One movement on a bill. Rows are only ever added (a trigger refuses the rest)."""

    __tablename__ = "bill_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[BillLineKind] = mapped_column(enum_column(BillLineKind))
    amount: Mapped[Money]
    note: Mapped[str] = mapped_column(String(255), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # The payment a PAYMENT line allocates (one line per bill the payment covers).
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"), index=True)
    # The day a LATE_FEE line accrued for: one per bill per day, by a unique index.
    accrued_on: Mapped[dt.date | None] = mapped_column(Date)
    # The area correction an ADJUSTMENT line settles: once per bill.
    area_change_id: Mapped[int | None] = mapped_column(ForeignKey("unit_area_changes.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = created_at_column()

    bill: Mapped[Bill] = relationship(lazy="raise")

    __table_args__ = (
        CheckConstraint("kind = 'ADJUSTMENT' OR amount > 0", name="amount_sign"),
        CheckConstraint("(kind IN ('PAYMENT', 'REVERSAL')) = (payment_id IS NOT NULL)", name="payment_link"),
        CheckConstraint("(kind = 'LATE_FEE') = (accrued_on IS NOT NULL)", name="late_fee_day"),
        CheckConstraint("area_change_id IS NULL OR kind = 'ADJUSTMENT'", name="area_change_adjusts"),
        Index(
            "uq_bill_lines_late_fee_day",
            "bill_id",
            "accrued_on",
            unique=True,
            postgresql_where=text("kind = 'LATE_FEE'"),
        ),
        UniqueConstraint("area_change_id", "bill_id"),
    )


def _line_sum(*kinds: BillLineKind) -> ScalarSelect[Decimal]:
    return (
        select(cast(func.coalesce(func.sum(BillLine.amount), 0), Numeric(12, 2)))
        .where(BillLine.bill_id == Bill.id, BillLine.kind.in_(kinds))
        .correlate_except(BillLine)
        .scalar_subquery()
    )


class Bill(Base):
    """What one unit owes for one fee item and one period; unique per (unit, item, period)."""

    __tablename__ = "bills"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    fee_item_id: Mapped[int] = mapped_column(ForeignKey("fee_items.id", ondelete="RESTRICT"))
    period: Mapped[str] = mapped_column(String(8))  # 2026-11, 2026-Q4, 2026
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 2))  # m² for PER_AREA, 1 otherwise
    rate: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    amount: Mapped[Money]
    due_date: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[BillStatus] = mapped_column(enum_column(BillStatus), default=BillStatus.UNPAID)
    # A paid repair's bill (resolveTicket with charges): one per ticket, outside the
    # one-bill-per-period rule of periodic and metered bills.
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="RESTRICT"), unique=True)
    created_at: Mapped[dt.datetime] = created_at_column()

    unit: Mapped[Unit] = relationship(lazy="raise")
    fee_item: Mapped[FeeItem] = relationship(lazy="raise")
    lines: Mapped[list[BillLine]] = relationship(lazy="raise", viewonly=True, order_by="BillLine.id")
    reminders: Mapped[list[DunningNotice]] = relationship(lazy="raise", viewonly=True, order_by="DunningNotice.id")

    if TYPE_CHECKING:  # column properties added below, once Bill exists to correlate with
        paid_amount: Mapped[Decimal]
        waived_amount: Mapped[Decimal]
        charged_amount: Mapped[Decimal]

    __table_args__ = (
        Index(
            "uq_bills_unit_item_period",
            "unit_id",
            "fee_item_id",
            "period_start",
            unique=True,
            postgresql_where=text("ticket_id IS NULL"),
        ),
        Index("ix_bills_estate_period", "estate_id", "period_start"),
        Index("ix_bills_unit_due", "unit_id", "due_date"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint("period_end >= period_start", name="period_order"),
    )

    @property
    def outstanding(self) -> Decimal:
        if self.status is BillStatus.VOID:
            return Decimal("0.00")
        owed = self.amount + self.charged_amount - self.paid_amount - self.waived_amount
        return max(owed, Decimal("0.00"))


# Sums over the lines, read with the bill (correlated subqueries over an indexed column).
Bill.paid_amount = column_property(_line_sum(BillLineKind.PAYMENT) - _line_sum(BillLineKind.REVERSAL))
Bill.waived_amount = column_property(_line_sum(BillLineKind.WAIVER))
Bill.charged_amount = column_property(_line_sum(BillLineKind.ADJUSTMENT, BillLineKind.LATE_FEE))


class PaymentMethod(enum.Enum):
    CASH = "cash"
    CARD = "card"
    BANK_TRANSFER = "bank_transfer"
    ONLINE = "online"  # through a PaymentProvider: PENDING until the provider confirms


class PaymentStatus(enum.Enum):
    PENDING = "pending"  # an online order the provider has not confirmed yet
    SETTLED = "settled"  # money received: allocated to bills, with a receipt number
    FAILED = "failed"  # an online order that was closed unpaid (expired, cancelled)


class ReceiptCounter(Base):
    """The next receipt number of a company. Taken under a row lock in the payment's own
    transaction, so numbers are unique and gap-free (a rollback returns the number)."""

    __tablename__ = "receipt_counters"

    company_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"), primary_key=True)
    next_number: Mapped[int] = mapped_column(default=1)


class Payment(Base):
    """Money received. Never edited or deleted; a correction is a reversal (a later increment)."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"), index=True)
    amount: Mapped[Money]
    method: Mapped[PaymentMethod] = mapped_column(enum_column(PaymentMethod))
    status: Mapped[PaymentStatus] = mapped_column(enum_column(PaymentStatus))
    receipt_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    # The bills the payer asked to pay; a PENDING payment is allocated over them on settling.
    bill_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), default=list)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = created_at_column()
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # ONLINE only: the provider, our order id there, its transaction id, where to pay.
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_order_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    pay_url: Mapped[str | None] = mapped_column(String(500))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    allocations: Mapped[list[BillLine]] = relationship(
        lazy="raise",
        order_by="BillLine.id",
        primaryjoin="and_(Payment.id == foreign(BillLine.payment_id), BillLine.kind == 'PAYMENT')",
        viewonly=True,
    )
    refund: Mapped[Refund | None] = relationship(lazy="raise", viewonly=True)

    if TYPE_CHECKING:  # a column property added below, once BillLine exists to sum over
        allocated_amount: Mapped[Decimal]

    @property
    def unallocated(self) -> Decimal | None:
        """Money received that no bill took (null until settled)."""
        if self.status is not PaymentStatus.SETTLED:
            return None
        return self.amount - self.allocated_amount

    __table_args__ = (
        UniqueConstraint("created_by_id", "idempotency_key"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("(method = 'ONLINE') = (provider IS NOT NULL)", name="online_has_provider"),
        CheckConstraint("(status = 'SETTLED') = (receipt_number IS NOT NULL)", name="settled_has_receipt"),
        Index("ix_payments_pending", "expires_at", postgresql_where=text("status = 'PENDING'")),
    )


# What a payment paid on bills (its PAYMENT lines). An ONLINE payment that settled when its
# bills owed less than its amount keeps the rest unallocated, for finance to refund.
Payment.allocated_amount = column_property(
    select(cast(func.coalesce(func.sum(BillLine.amount), 0), Numeric(12, 2)))
    .where(BillLine.payment_id == Payment.id, BillLine.kind == BillLineKind.PAYMENT)
    .correlate_except(BillLine)
    .scalar_subquery()
)


class Refund(Base):
    """The reversal of a whole payment (money given back, or a payment entered in error).
    The payment stays as it was; its bills get REVERSAL lines for what it had paid."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"), unique=True)
    reason: Mapped[str] = mapped_column(String(255))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = created_at_column()


class PaymentCallback(Base):
    """Every notification a payment provider sent, verified or not, kept as received."""

    __tablename__ = "payment_callbacks"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_order_id: Mapped[str | None] = mapped_column(String(64), index=True)
    provider_reference: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)
    # SETTLED, DUPLICATE, or why it was refused (BAD_SIGNATURE, STALE, AMOUNT_MISMATCH, …).
    outcome: Mapped[str] = mapped_column(String(32))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"))
    received_at: Mapped[dt.datetime] = created_at_column()


class Meter(Base):
    """A unit's water, electricity or gas meter, billed under a METERED fee item.

    A replaced meter gets ``removed_on`` and its final reading; the new one ``replaces_id``
    and its own ``initial_reading``, so readings stay monotonic per meter.
    """

    __tablename__ = "meters"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    fee_item_id: Mapped[int] = mapped_column(ForeignKey("fee_items.id", ondelete="RESTRICT"), index=True)
    serial: Mapped[str] = mapped_column(String(64))
    multiplier: Mapped[Decimal] = mapped_column(Numeric(10, 4), default=Decimal(1))  # 倍率
    initial_reading: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    installed_on: Mapped[dt.date] = mapped_column(Date)
    removed_on: Mapped[dt.date | None] = mapped_column(Date)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("meters.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = created_at_column()

    unit: Mapped[Unit] = relationship(lazy="raise")
    fee_item: Mapped[FeeItem] = relationship(lazy="raise")
    readings: Mapped[list[MeterReading]] = relationship(
        lazy="raise", viewonly=True, order_by="MeterReading.period_start.desc()"
    )

    __table_args__ = (
        UniqueConstraint("estate_id", "serial"),
        Index(
            "uq_meters_unit_item_in_service",
            "unit_id",
            "fee_item_id",
            unique=True,
            postgresql_where=text("removed_on IS NULL"),
        ),
        CheckConstraint("multiplier > 0 AND initial_reading >= 0", name="values_positive"),
        CheckConstraint("removed_on IS NULL OR removed_on >= installed_on", name="period_order"),
    )


class MeterReading(Base):
    """A meter's reading for a month (抄表). One per meter per period; never edited."""

    __tablename__ = "meter_readings"

    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id", ondelete="RESTRICT"))
    period_start: Mapped[dt.date] = mapped_column(Date)  # the month read, as its first day
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    read_on: Mapped[dt.date] = mapped_column(Date)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = created_at_column()

    meter: Mapped[Meter] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("meter_id", "period_start"),
        CheckConstraint("value >= 0", name="value_non_negative"),
    )


class UnitAreaChange(Base):
    """A corrected building area from a date (面积变更). Bills already issued keep theirs; the
    difference for the periods they covered becomes an ADJUSTMENT line on the next bill."""

    __tablename__ = "unit_area_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    old_area: Mapped[Area]
    new_area: Mapped[Area]
    effective_from: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(255))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = created_at_column()


class DunningStep(enum.Enum):
    BEFORE_DUE = "before_due"  # a few days before the due date
    ON_DUE = "on_due"
    OVERDUE_7 = "overdue_7"
    OVERDUE_30 = "overdue_30"


class DunningNotice(Base):
    """One reminder step taken for one bill (催缴). The unique key makes a retried or
    duplicated job remind once."""

    __tablename__ = "dunning_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id", ondelete="RESTRICT"))
    step: Mapped[DunningStep] = mapped_column(enum_column(DunningStep))
    outstanding: Mapped[Money]  # what the bill owed when reminded
    in_app: Mapped[int] = mapped_column(default=0)  # notifications written
    sms: Mapped[int] = mapped_column(default=0)  # text messages handed to the SMS channel
    created_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (UniqueConstraint("bill_id", "step"),)
