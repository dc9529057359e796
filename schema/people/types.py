"""GraphQL types of people: persons and their occupancies. Personal data is masked by policy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from authz.fields import mask_id_number, mask_phone
from authz.principal import FieldAccess
from backend.people import models
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Node
from schema.core.types import orm_type

if TYPE_CHECKING:
    from schema.core.context import Context
    from schema.property.types import UnitType

OccupancyRole = strawberry.enum(models.OccupancyRole, name="OccupancyRole")


def _visible(info: strawberry.Info[Context, None], person: models.Person, field: str) -> bool:
    access = info.context.permissions.field_access(field)
    if access is FieldAccess.FULL:
        return True
    principal = info.context.permissions.principal
    return access is FieldAccess.SELF and principal is not None and principal.person_id == person.id


@orm_type(models.Person, name="Person")
class PersonType(Node):
    name: str
    email: str | None

    @strawberry.field(
        description="Mobile phone. Masked (`138****5678`) unless the caller holds `Person.phone read` "
        "(admin, manager, customer_service) or it is the caller's own."
    )
    @staticmethod
    def phone(root: strawberry.Parent[models.Person], info: strawberry.Info[Context, None]) -> str | None:
        return root.phone if _visible(info, root, "Person.phone") else mask_phone(root.phone)

    @strawberry.field(
        description="National ID number. Masked (`1101**********1234`, never the birth date) unless the "
        "caller holds `Person.idNumber read` (admin, manager) or it is the caller's own."
    )
    @staticmethod
    def id_number(root: strawberry.Parent[models.Person], info: strawberry.Info[Context, None]) -> str | None:
        return root.id_number if _visible(info, root, "Person.idNumber") else mask_id_number(root.id_number)

    occupancies: list[OccupancyType] = strawberry.field(
        description="The person's occupancies the caller may see, ended ones included (history)."
    )


@orm_type(models.Occupancy, name="Occupancy", description="A person's tie to a unit over a period.")
class OccupancyType(Node):
    role: OccupancyRole
    share: Decimal | None
    start_date: dt.date
    end_date: dt.date | None
    person: PersonType
    unit: Annotated[UnitType, strawberry.lazy("schema.property.types")]


register_relation(models.Person, "occupancies", Relation("occupancies"))
register_relation(models.Occupancy, "person", Relation("person"))
register_relation(models.Occupancy, "unit", Relation("unit"))
