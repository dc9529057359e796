"""Paid repairs: the charges of a resolved ticket become one REPAIR bill on its unit.

The bill is an ordinary bill (owners see and pay it like any other); ``bills.ticket_id`` is
unique, so a ticket is billed once. The fee item is the estate's ONE_OFF REPAIR item, made on
first use.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.billing.models import Bill, BillingCycle, BillStatus, ChargeMethod, FeeItem, FeeKind

REPAIR_FEE_CODE = "RP01"
REPAIR_DUE_DAYS = 15
CENT = Decimal("0.01")
MAX_CHARGE = Decimal("1000000")


@dataclass(frozen=True, slots=True)
class Charge:
    description: str
    amount: Decimal


class InvalidCharge(ValueError):
    """A charge that cannot be billed: no description, or not a positive amount in whole cents."""


def check_charges(charges: list[Charge]) -> Decimal:
    """The total of valid charges; raises :class:`InvalidCharge` for any invalid one."""
    for charge in charges:
        if not charge.description.strip() or len(charge.description) > 100:
            raise InvalidCharge("Each charge needs a description (at most 100 characters).")
        amount = charge.amount
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT) or amount > MAX_CHARGE:
            raise InvalidCharge("Each charge is a positive amount in whole cents.")
    return sum((c.amount for c in charges), Decimal("0.00"))


async def repair_fee_item(session: AsyncSession, estate_id: int) -> FeeItem:
    """The estate's REPAIR fee item, created on first use (concurrent first uses make one)."""
    await session.execute(
        insert(FeeItem)
        .values(
            estate_id=estate_id,
            code=REPAIR_FEE_CODE,
            name="维修费",
            kind=FeeKind.REPAIR,
            method=ChargeMethod.ONE_OFF,
            cycle=BillingCycle.MONTHLY,
            due_day=REPAIR_DUE_DAYS,
        )
        .on_conflict_do_nothing(index_elements=["estate_id", "code"])
    )
    item = await session.scalar(select(FeeItem).where(FeeItem.estate_id == estate_id, FeeItem.code == REPAIR_FEE_CODE))
    assert item is not None
    return item


async def bill_repair(
    session: AsyncSession,
    *,
    ticket_id: int,
    ticket_number: str,
    estate_id: int,
    unit_id: int,
    charges: list[Charge],
    on: dt.date,
    actor_id: int | None,
    request_id: str | None = None,
) -> Bill:
    """One UNPAID bill for the charges: period the month of ``on``, due ``REPAIR_DUE_DAYS`` later."""
    total = check_charges(charges)
    if total <= 0:
        raise InvalidCharge("The charges add up to nothing.")
    item = await repair_fee_item(session, estate_id)
    bill = Bill(
        estate_id=estate_id,
        unit_id=unit_id,
        fee_item_id=item.id,
        period=f"{on:%Y-%m}",
        period_start=on,
        period_end=on,
        quantity=Decimal("1"),
        rate=total,
        amount=total,
        due_date=on + dt.timedelta(days=REPAIR_DUE_DAYS),
        status=BillStatus.UNPAID,
        ticket_id=ticket_id,
    )
    session.add(bill)
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="bill.repair",
        target_type="Bill",
        target_id=bill.id,
        request_id=request_id,
        detail={
            "ticket": ticket_number,
            "charges": [{"description": c.description.strip(), "amount": str(c.amount)} for c in charges],
        },
    )
    return bill
