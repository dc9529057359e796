"""Root queries of the property domain."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from backend.property import models
from schema.core.relay import Connection, try_decode_id
from schema.core.resolving import Info, scoped_connection
from schema.property.types import EstateType, OrgUnitType, UnitType, UnitUsage


@strawberry.input
class EstateFilter:
    code_prefix: str | None = None
    name_contains: str | None = None


@strawberry.input
class UnitFilter:
    estate_id: strawberry.ID | None = None
    building_id: strawberry.ID | None = None
    usage: UnitUsage | None = None
    code_prefix: str | None = None


@strawberry.type
class PropertyQuery:
    @strawberry.field(description="The company, branches and offices the caller may see (ids for grants).")
    async def org_units(self, info: Info, first: int | None = 50, after: str | None = None) -> Connection[OrgUnitType]:
        return await scoped_connection(info, models.OrgUnit, first=first, after=after)

    @strawberry.field(description="Estates in the caller's scope (staff: under their org units; residents: their own).")
    async def estates(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: EstateFilter | None = None
    ) -> Connection[EstateType]:
        statement = select(models.Estate)
        if filter is not None:
            if filter.code_prefix:
                statement = statement.where(models.Estate.code.startswith(filter.code_prefix, autoescape=True))
            if filter.name_contains:
                statement = statement.where(models.Estate.name.contains(filter.name_contains, autoescape=True))
        return await scoped_connection(info, models.Estate, statement, first=first, after=after)

    @strawberry.field(description="Units in the caller's scope, filtered by estate, building, usage or code prefix.")
    async def units(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: UnitFilter | None = None
    ) -> Connection[UnitType]:
        statement = select(models.Unit)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(models.Unit.estate_id == try_decode_id(filter.estate_id, "Estate"))
            if filter.building_id is not None:
                statement = statement.where(models.Unit.building_id == try_decode_id(filter.building_id, "Building"))
            if filter.usage is not None:
                statement = statement.where(models.Unit.usage == filter.usage)
            if filter.code_prefix:
                statement = statement.where(models.Unit.code.startswith(filter.code_prefix, autoescape=True))
        return await scoped_connection(info, models.Unit, statement, first=first, after=after)
