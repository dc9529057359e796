"""GraphQL types of the property domain: org units, estates, buildings, entrances, units."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from backend.property import models
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Node
from schema.core.types import orm_type

if TYPE_CHECKING:
    from schema.billing.types import BillType, UnitBillFilter
    from schema.core.context import Context
    from schema.people.types import OccupancyType

OrgUnitKind = strawberry.enum(models.OrgUnitKind, name="OrgUnitKind")
UnitUsage = strawberry.enum(models.UnitUsage, name="UnitUsage")
UnitStatus = strawberry.enum(models.UnitStatus, name="UnitStatus")


@orm_type(models.OrgUnit, name="OrgUnit", description="A company, branch or management office.")
class OrgUnitType(Node):
    kind: OrgUnitKind
    code: str
    name: str
    path: str


@orm_type(models.Estate, name="Estate", description="A residential estate (小区).")
class EstateType(Node):
    code: str
    name: str
    address: str
    org_unit: OrgUnitType = strawberry.field(name="office", description="The management office in charge.")
    buildings: list[BuildingType]
    auto_assign_tickets: bool = strawberry.field(
        description="Tickets submitted here go to the office's least loaded technician skilled in the category."
    )


@orm_type(models.Building, name="Building")
class BuildingType(Node):
    code: str
    name: str
    floors: int | None
    estate: EstateType
    entrances: list[EntranceType]
    units: list[UnitType] = strawberry.field(description="The building's units the caller may see, by id.")


@orm_type(models.Entrance, name="Entrance", description="A stairwell entrance (单元) of a building.")
class EntranceType(Node):
    code: str
    name: str
    building: BuildingType


@orm_type(models.Unit, name="Unit", description="A room, shop, parking space or storage room.")
class UnitType(Node):
    code: str = strawberry.field(description="`B-E-FFNN`: building, entrance, floor and number, e.g. `1-1-101`.")
    floor: int
    area: Decimal = strawberry.field(description="Building area (建筑面积) in m².")
    building_area: Decimal
    inner_area: Decimal = strawberry.field(description="Inner area (套内面积) in m².")
    usage: UnitUsage
    status: UnitStatus
    created_at: dt.datetime
    building: BuildingType
    entrance: EntranceType | None
    estate: EstateType
    occupancies: list[Annotated[OccupancyType, strawberry.lazy("schema.people.types")]] = strawberry.field(
        name="occupants", description="Current occupants (owners, tenants, family) visible to the caller."
    )

    @strawberry.field(description="The unit's bills the caller may see, oldest due first (batched per request).")
    @staticmethod
    async def bills(
        root: strawberry.Parent[models.Unit],
        info: strawberry.Info[Context, None],
        filter: Annotated[UnitBillFilter, strawberry.lazy("schema.billing.types")] | None = None,
    ) -> list[Annotated[BillType, strawberry.lazy("schema.billing.types")]]:
        status = filter.status if filter is not None else None
        period = filter.period if filter is not None else None
        return await info.context.loaders.bills_by_unit(status, period).load(root.id)  # type: ignore[no-any-return]


register_relation(models.Estate, "office", Relation("org_unit"))
register_relation(models.Estate, "buildings", Relation("buildings"))
register_relation(models.Building, "estate", Relation("estate"))
register_relation(models.Building, "entrances", Relation("entrances"))
register_relation(models.Building, "units", Relation("units"))
register_relation(models.Entrance, "building", Relation("building"))
register_relation(models.Unit, "building", Relation("building"))
register_relation(models.Unit, "entrance", Relation("entrance"))
register_relation(models.Unit, "estate", Relation("estate"))
register_relation(models.Unit, "occupants", Relation("occupancies", only_active=True))
