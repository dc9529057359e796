"""Fixtures of the billing tests: a fresh estate with fee items, removed afterwards."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest_asyncio
from billing_support import Ledger
from sqlalchemy import delete, select, text

from backend.billing.models import (
    Bill,
    BillingCycle,
    BillLine,
    ChargeMethod,
    DunningNotice,
    FeeBinding,
    FeeItem,
    FeeKind,
    FeeRate,
    Meter,
    MeterReading,
    Payment,
    PaymentCallback,
    Refund,
    UnitAreaChange,
)
from backend.property.models import Building, Estate, OrgUnit, Unit, UnitUsage


@pytest_asyncio.fixture(loop_scope="session")
async def ledger(runtime: Any) -> AsyncIterator[Ledger]:
    """A fresh estate: two flats (89.56 m², 120.00 m²) and a parking space, three fee items."""
    code = f"BG{uuid.uuid4().hex[:8].upper()}"
    async with runtime.sessionmaker() as session, session.begin():
        office = await session.scalar(select(OrgUnit).where(OrgUnit.code == "N1"))
        assert office is not None
        estate = Estate(org_unit_id=office.id, org_path=office.path, code=code, name="账单测试")
        session.add(estate)
        await session.flush()
        building = Building(estate_id=estate.id, code="1", name="1号楼")
        session.add(building)
        await session.flush()
        units = [
            Unit(estate_id=estate.id, building_id=building.id, code=c, floor=1, building_area=Decimal(a),
                 inner_area=Decimal(a) * Decimal("0.8"), usage=u)
            for c, a, u in (("1-1-101", "89.56", UnitUsage.RESIDENTIAL), ("1-1-102", "120.00", UnitUsage.RESIDENTIAL),
                            ("P-1-001", "12.50", UnitUsage.PARKING))
        ]  # fmt: skip
        session.add_all(units)
        items = {
            "PF": FeeItem(estate_id=estate.id, code="PF", name="物业费", kind=FeeKind.PROPERTY_FEE,
                          method=ChargeMethod.PER_AREA, cycle=BillingCycle.MONTHLY, due_day=31 - 3),
            "GB": FeeItem(estate_id=estate.id, code="GB", name="垃圾费", kind=FeeKind.GARBAGE,
                          method=ChargeMethod.FIXED, cycle=BillingCycle.QUARTERLY, due_day=10),
            "PK": FeeItem(estate_id=estate.id, code="PK", name="车位费", kind=FeeKind.PARKING,
                          method=ChargeMethod.FIXED, cycle=BillingCycle.MONTHLY, due_day=5),
        }  # fmt: skip
        session.add_all(items.values())
        await session.flush()
        since = dt.date(2026, 1, 1)
        session.add_all(
            [
                FeeRate(fee_item_id=items["PF"].id, rate=Decimal("2.50"), effective_from=since),
                FeeRate(fee_item_id=items["GB"].id, rate=Decimal("30.00"), effective_from=since),
                FeeRate(fee_item_id=items["PK"].id, rate=Decimal("150.00"), effective_from=since),
            ]
            + [FeeBinding(unit_id=u.id, fee_item_id=items["PF"].id, start_date=since) for u in units[:2]]
            + [FeeBinding(unit_id=u.id, fee_item_id=items["GB"].id, start_date=since) for u in units[:2]]
            + [FeeBinding(unit_id=units[2].id, fee_item_id=items["PK"].id, start_date=since)]
        )
    yield Ledger(estate, units, items)
    async with runtime.sessionmaker() as session, session.begin():
        # The ledger's append-only triggers stand aside for this transaction only.
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        bills = select(Bill.id).where(Bill.estate_id == estate.id)
        await session.execute(delete(BillLine).where(BillLine.bill_id.in_(bills)))
        await session.execute(delete(DunningNotice).where(DunningNotice.bill_id.in_(bills)))
        payments = select(Payment.id).where(Payment.estate_id == estate.id)
        await session.execute(delete(Refund).where(Refund.payment_id.in_(payments)))
        await session.execute(delete(PaymentCallback).where(PaymentCallback.payment_id.in_(payments)))
        await session.execute(delete(Payment).where(Payment.estate_id == estate.id))
        await session.execute(delete(Bill).where(Bill.estate_id == estate.id))
        meters = select(Meter.id).where(Meter.estate_id == estate.id)
        await session.execute(delete(MeterReading).where(MeterReading.meter_id.in_(meters)))
        await session.execute(delete(Meter).where(Meter.estate_id == estate.id))
        units_ = select(Unit.id).where(Unit.estate_id == estate.id)
        await session.execute(delete(UnitAreaChange).where(UnitAreaChange.unit_id.in_(units_)))
        item_ids = [i.id for i in items.values()]
        await session.execute(delete(FeeBinding).where(FeeBinding.fee_item_id.in_(item_ids)))
        await session.execute(delete(FeeRate).where(FeeRate.fee_item_id.in_(item_ids)))
        await session.execute(delete(FeeItem).where(FeeItem.id.in_(item_ids)))
        await session.execute(delete(Unit).where(Unit.estate_id == estate.id))
        await session.execute(delete(Building).where(Building.estate_id == estate.id))
        await session.execute(delete(Estate).where(Estate.id == estate.id))
