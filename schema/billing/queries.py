"""Root queries of billing."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from backend.billing import models
from schema.billing.types import BillStatus, BillType, FeeItemType
from schema.core.relay import Connection, try_decode_id
from schema.core.resolving import Info, scoped_connection


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


@strawberry.type
class BillingQuery:
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
