"""The one GraphQL schema: root types merged from every domain, limits and error masking."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.extensions.disable_introspection import DisableIntrospection
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from backend.accounts.models import User
from backend.notifications.models import Announcement, Notification
from backend.people.models import Occupancy, Person
from backend.property.models import Building, Entrance, Estate, OrgUnit, Unit
from backend.settings import Settings
from schema.accounts.mutations import AccountsMutation
from schema.accounts.queries import AccountsQuery
from schema.accounts.types import NotificationType, ViewerType
from schema.core.errors import ErrorMasking
from schema.core.loaders import resolve_attribute
from schema.core.relay import Node, from_global_id
from schema.core.resolving import Info, get_scoped
from schema.notifications.schema import NotificationsMutation, NotificationsQuery, NotificationsSubscription
from schema.notifications.types import AnnouncementType
from schema.people.mutations import PeopleMutation
from schema.people.queries import PeopleQuery
from schema.people.types import OccupancyType, PersonType
from schema.property.mutations import PropertyImportMutation, PropertyMutation
from schema.property.queries import PropertyQuery
from schema.property.types import BuildingType, EntranceType, EstateType, OrgUnitType, UnitType

NODE_MODELS: dict[str, type[Any]] = {
    "OrgUnit": OrgUnit,
    "Estate": Estate,
    "Building": Building,
    "Entrance": Entrance,
    "Unit": Unit,
    "Person": Person,
    "Occupancy": Occupancy,
    "Announcement": Announcement,
    "Notification": Notification,
    "User": User,
}


@strawberry.type
class CoreQuery:
    @strawberry.field(description="The logged-in account; null for anonymous callers.")
    async def viewer(self, info: Info) -> ViewerType | None:
        principal = info.context.principal
        if principal is None:
            return None
        return await info.context.session.get(User, principal.user_id)  # type: ignore[return-value]

    @strawberry.field(description="Any object by its global id, if the caller may see it.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, pk = from_global_id(str(id))
        model = NODE_MODELS.get(type_name)
        if model is None or not pk.isdigit():
            return None
        return await get_scoped(info, model, int(pk))  # type: ignore[no-any-return]


Query = merge_types("Query", (CoreQuery, AccountsQuery, PropertyQuery, PeopleQuery, NotificationsQuery))
Mutation = merge_types(
    "Mutation", (AccountsMutation, PropertyMutation, PropertyImportMutation, PeopleMutation, NotificationsMutation)
)
Subscription = merge_types("Subscription", (NotificationsSubscription,))

TYPES = [
    OrgUnitType,
    EstateType,
    BuildingType,
    EntranceType,
    UnitType,
    PersonType,
    OccupancyType,
    AnnouncementType,
    NotificationType,
]


def build_schema(settings: Settings) -> strawberry.Schema:
    extensions: list[Any] = [
        ErrorMasking,
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
    ]
    if settings.production:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=TYPES,
        extensions=extensions,
        config=StrawberryConfig(default_resolver=resolve_attribute),
    )
