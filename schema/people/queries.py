"""Root queries of the people domain."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from backend.people import models
from schema.core.errors import Forbidden
from schema.core.relay import Connection
from schema.core.resolving import Info, scoped_connection
from schema.people.types import PersonType


@strawberry.input
class PersonFilter:
    name_contains: str | None = None
    phone: str | None = strawberry.field(
        default=None, description="Exact phone. Only for callers who may read `Person.phone` in full."
    )


@strawberry.type
class PeopleQuery:
    @strawberry.field(description="Persons in the caller's scope.")
    async def people(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: PersonFilter | None = None
    ) -> Connection[PersonType]:
        statement = select(models.Person)
        if filter is not None:
            if filter.name_contains:
                statement = statement.where(models.Person.name.contains(filter.name_contains, autoescape=True))
            if filter.phone is not None:
                # Searching by phone would reveal a masked number one guess at a time.
                info.context.require_principal()
                if not info.context.permissions.anywhere("Person.phone", "read"):
                    raise Forbidden("You may not search by phone.")
                statement = statement.where(models.Person.phone == filter.phone)
        return await scoped_connection(info, models.Person, statement, first=first, after=after)
