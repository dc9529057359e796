"""Root queries of accounts: the users staff administer."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from backend.accounts import models
from schema.accounts.types import UserKind, UserType
from schema.core.relay import Connection
from schema.core.resolving import Info, scoped_connection


@strawberry.input
class UserFilter:
    username_prefix: str | None = None
    kind: UserKind | None = None


@strawberry.type
class AccountsQuery:
    @strawberry.field(
        description="Accounts in the caller's scope: staff holding a role under the caller's org units and "
        "residents of their estates. Needs `User read` (admin, manager)."
    )
    async def users(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: UserFilter | None = None
    ) -> Connection[UserType]:
        statement = select(models.User)
        if filter is not None:
            if filter.username_prefix:
                statement = statement.where(models.User.username.startswith(filter.username_prefix, autoescape=True))
            if filter.kind is not None:
                statement = statement.where(models.User.kind == filter.kind)
        return await scoped_connection(info, models.User, statement, first=first, after=after)
