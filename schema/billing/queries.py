"""Root queries of billing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry
from sqlalchemy import select

from backend.billing import models, reports
from backend.billing.errors import BillingError
from backend.billing.periods import parse_month
from backend.db import local_today
from backend.property.models import Building, Estate
from schema.billing.types import BillStatus, BillType, FeeItemType
from schema.core.errors import BadUserInput
from schema.core.relay import Connection, try_decode_id
from schema.core.resolving import Info, authorised_target, estate_own_path, scoped_connection
from schema.property.types import BuildingType


@strawberry.input
class BillFilter:
    estate_id: strawberry.ID | None = None
    unit_id: strawberry.ID | None = None
    period: str | None = strawberry.field(default=None, description="`2026-11`, `2026-Q4` or `2026`.")
    status: BillStatus | None = None
    fee_item_code: str | None = None


@strawberry.input
class FeeItemFilter:
    estate_id: strawberry.ID | None = None


@strawberry.type(description="Money of one month's bills (by period start), as of now.")
class BillingFigures:
    billed: Decimal = strawberry.field(description="Charged, with adjustments and late fees.")
    collected: Decimal = strawberry.field(description="Paid so far (any payment date), net of reversals.")
    waived: Decimal
    outstanding: Decimal
    collection_rate: Decimal = strawberry.field(description="收缴率: collected ÷ (billed − waived), 4 places.")


@strawberry.type
class BuildingBillingSummary:
    building: BuildingType
    billed: Decimal
    collected: Decimal
    waived: Decimal
    outstanding: Decimal
    collection_rate: Decimal


@strawberry.type
class BillingSummary(BillingFigures):
    period: str
    buildings: list[BuildingBillingSummary]


@strawberry.type
class AgingBucket:
    label: str = strawberry.field(description="Days past due: `0-30`, `31-60`, `61-90`, `91-180`, `>180`.")
    amount: Decimal
    units: int = strawberry.field(description="Units owing in this bucket.")


@strawberry.type
class ArrearsAging:
    as_of: dt.date
    buckets: list[AgingBucket]


async def _report_estate(info: Info, estate_id: strawberry.ID) -> Estate | None:
    """The estate of a billing report: FORBIDDEN without `Bill read` anywhere, null outside
    the caller's scope (exactly like a missing id)."""
    return await authorised_target(
        info, Estate, estate_id, type_name="Estate", obj="Bill", act="read", path_of=estate_own_path
    )


def _figures(summary: reports.Summary) -> dict[str, Decimal]:
    return {
        "billed": summary.billed,
        "collected": summary.collected,
        "waived": summary.waived,
        "outstanding": summary.outstanding,
        "collection_rate": summary.collection_rate,
    }


@strawberry.type
class BillingQuery:
    @strawberry.field(description="The month's billing figures for an estate and each building. Needs `Bill read`.")
    async def billing_summary(self, info: Info, estate_id: strawberry.ID, period: str) -> BillingSummary | None:
        estate = await _report_estate(info, estate_id)
        if estate is None:
            return None
        try:
            month = parse_month(period)
        except BillingError as exc:
            raise BadUserInput(exc.message, argument="period") from exc
        total, per_building = await reports.billing_summary(info.context.session, estate_id=estate.id, month=month)
        buildings = {
            b.id: b for b in await info.context.session.scalars(select(Building).where(Building.estate_id == estate.id))
        }
        return BillingSummary(
            period=f"{month:%Y-%m}",
            buildings=[
                BuildingBillingSummary(building=buildings[row.building_id], **_figures(row.summary))  # type: ignore[arg-type]
                for row in per_building
            ],
            **_figures(total),
        )

    @strawberry.field(description="账龄分析: what is overdue today, by days past due. Needs `Bill read`.")
    async def arrears_aging(self, info: Info, estate_id: strawberry.ID) -> ArrearsAging | None:
        estate = await _report_estate(info, estate_id)
        if estate is None:
            return None
        today = local_today()
        buckets = await reports.arrears_aging(info.context.session, estate_id=estate.id, today=today)
        return ArrearsAging(
            as_of=today, buckets=[AgingBucket(label=b.label, amount=b.amount, units=b.units) for b in buckets]
        )

    @strawberry.field(
        description="Bills in scope: staff with `Bill read` in their estates; residents their own units'."
    )
    async def bills(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: BillFilter | None = None
    ) -> Connection[BillType]:
        statement = select(models.Bill)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(models.Bill.estate_id == try_decode_id(filter.estate_id, "Estate"))
            if filter.unit_id is not None:
                statement = statement.where(models.Bill.unit_id == try_decode_id(filter.unit_id, "Unit"))
            if filter.period:
                statement = statement.where(models.Bill.period == filter.period)
            if filter.status is not None:
                statement = statement.where(models.Bill.status == filter.status)
            if filter.fee_item_code:
                statement = statement.where(
                    models.Bill.fee_item_id.in_(
                        select(models.FeeItem.id).where(models.FeeItem.code == filter.fee_item_code)
                    )
                )
        return await scoped_connection(info, models.Bill, statement, first=first, after=after)

    @strawberry.field(description="Fee items of the estates in scope.")
    async def fee_items(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: FeeItemFilter | None = None
    ) -> Connection[FeeItemType]:
        statement = select(models.FeeItem)
        if filter is not None and filter.estate_id is not None:
            statement = statement.where(models.FeeItem.estate_id == try_decode_id(filter.estate_id, "Estate"))
        return await scoped_connection(info, models.FeeItem, statement, first=first, after=after)
