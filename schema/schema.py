"""The one GraphQL schema: root types merged from every domain, limits and error masking."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.extensions.disable_introspection import DisableIntrospection
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from backend.access.models import AccessEvent, AccessPoint, Credential, VisitorPass
from backend.accounts.models import User
from backend.alarms.models import Alarm
from backend.assets.models import Asset, MaintenancePlan, MaintenanceRecord
from backend.billing.models import Bill, FeeItem, Meter, MeterReading, Payment
from backend.notifications.models import Announcement, Notification
from backend.people.models import Occupancy, Person
from backend.property.models import Building, Entrance, Estate, OrgUnit, Unit
from backend.settings import Settings
from backend.tickets.models import Ticket
from schema.access.schema import AccessMutation, AccessQuery, AccessSubscription
from schema.access.types import AccessEventType, AccessPointType, CredentialType, VisitorPassType
from schema.accounts.mutations import AccountsMutation
from schema.accounts.queries import AccountsQuery
from schema.accounts.types import NotificationType, UserType, ViewerType
from schema.alarms.schema import AlarmsMutation, AlarmsQuery, AlarmsSubscription
from schema.alarms.types import AlarmType
from schema.assets.schema import AssetsMutation, AssetsQuery
from schema.assets.types import AssetType, MaintenancePlanType, MaintenanceRecordType
from schema.billing.meters import MeterMutation, MeterQuery, MeterReadingType, MeterType
from schema.billing.mutations import BillingMutation, FeeItemMutation, RefundMutation
from schema.billing.queries import BillingQuery
from schema.billing.types import BillType, FeeItemType
from schema.core.context import OperationScope
from schema.core.errors import ErrorMasking, WuyeError
from schema.core.execution import SharedEventExecutor
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
from schema.tickets.mutations import TicketsMutation
from schema.tickets.queries import TicketsQuery
from schema.tickets.subscription import TicketsSubscription
from schema.tickets.types import TicketType
from schema.tickets_admin.mutations import TicketsAdminMutation
from schema.tickets_admin.queries import TicketsAdminQuery

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
    "Bill": Bill,
    "FeeItem": FeeItem,
    "Payment": Payment,
    "Meter": Meter,
    "MeterReading": MeterReading,
    "Ticket": Ticket,
    "Asset": Asset,
    "MaintenancePlan": MaintenancePlan,
    "MaintenanceRecord": MaintenanceRecord,
    "AccessPoint": AccessPoint,
    "AccessEvent": AccessEvent,
    "VisitorPass": VisitorPass,
    "Credential": Credential,
    "Alarm": Alarm,
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
        info.context.require_principal()
        type_name, pk = from_global_id(str(id))
        model = NODE_MODELS.get(type_name)
        if model is None or not pk.isdigit():
            return None
        return await get_scoped(info, model, int(pk))  # type: ignore[no-any-return]


Query = merge_types(
    "Query",
    (
        CoreQuery,
        AccountsQuery,
        PropertyQuery,
        PeopleQuery,
        BillingQuery,
        MeterQuery,
        NotificationsQuery,
        TicketsAdminQuery,
        TicketsQuery,
        AssetsQuery,
        AccessQuery,
        AlarmsQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AccountsMutation,
        PropertyMutation,
        PropertyImportMutation,
        PeopleMutation,
        BillingMutation,
        FeeItemMutation,
        RefundMutation,
        MeterMutation,
        NotificationsMutation,
        TicketsAdminMutation,
        TicketsMutation,
        AssetsMutation,
        AccessMutation,
        AlarmsMutation,
    ),
)
Subscription = merge_types(
    "Subscription", (NotificationsSubscription, TicketsSubscription, AccessSubscription, AlarmsSubscription)
)

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
    UserType,
    BillType,
    FeeItemType,
    MeterType,
    MeterReadingType,
    TicketType,
    AssetType,
    MaintenancePlanType,
    MaintenanceRecordType,
    AccessPointType,
    AccessEventType,
    VisitorPassType,
    CredentialType,
    AlarmType,
]


class WuyeSchema(strawberry.Schema):
    """Logs unexpected errors only: a refused token or a FORBIDDEN is not worth a traceback."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        unexpected = [e for e in errors if not isinstance(e.original_error, WuyeError)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(settings: Settings) -> strawberry.Schema:
    # The limiters' rule classes are made once: each QueryDepthLimiter/MaxAliasesLimiter
    # creates new classes, and the validation cache is keyed by the rules, so per-request
    # limiters would make every request miss it (and fill it with dead entries).
    limits = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    extensions: list[Any] = [
        OperationScope,
        ErrorMasking,
        lambda: AddValidationRules(limits),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
    ]
    if settings.production:
        extensions.append(DisableIntrospection)
    return WuyeSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=TYPES,
        extensions=extensions,
        config=StrawberryConfig(default_resolver=resolve_attribute),
        execution_context_class=SharedEventExecutor,
    )
