"""GraphQL types of alarms: the alarm, its history, its rule, and the live event."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import inspect
from strawberry.scalars import JSON

from backend.alarms import models
from backend.db import to_global_id
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Node
from schema.core.types import orm_type

if TYPE_CHECKING:
    from schema.accounts.types import UserType
    from schema.assets.types import AssetType
    from schema.core.context import Context
    from schema.property.types import EstateType
    from schema.tickets.types import TicketType

AlarmSeverity = strawberry.enum(models.AlarmSeverity, name="AlarmSeverity")
AlarmStatus = strawberry.enum(models.AlarmStatus, name="AlarmStatus")
AlarmEventKind = strawberry.enum(models.AlarmEventKind, name="AlarmEventKind")
RuleOperator = strawberry.enum(models.RuleOperator, name="AlarmRuleOperator")


async def relation(info: strawberry.Info[Context, None], root: Any, attribute: str) -> Any:
    """A relation of ``root``: as preloaded (look-ahead, or the live hub's shared alarm), or
    through the request's batched loader."""
    loaded = inspect(root).dict
    if attribute in loaded:
        return loaded[attribute]
    return await info.context.loaders.for_relation(type(root), attribute).load(root.id)


@orm_type(models.AlarmRule, name="AlarmRule", description="The telemetry threshold that raised an alarm.")
class AlarmRuleType:
    metric: str
    operator: RuleOperator
    raise_threshold: Decimal
    clear_threshold: Decimal = strawberry.field(description="Hysteresis: the alarm clears at this value.")
    duration_seconds: int
    alarm_type: str


@orm_type(models.AlarmEvent, name="AlarmHistoryEntry", description="One step of an alarm's history; never edited.")
class AlarmHistoryEntryType:
    kind: AlarmEventKind
    note: str
    actor: Annotated[UserType, strawberry.lazy("schema.accounts.types")] | None = strawberry.field(
        description="Who took the step; null for the device or the system (jobs)."
    )

    @strawberry.field(description="When it happened.")
    @staticmethod
    def at(root: strawberry.Parent[models.AlarmEvent]) -> dt.datetime:
        return root.created_at

    @strawberry.field(description="Details, e.g. `{severity}` of a repeat, `{step, notifiedUserIds}` of an escalation.")
    @staticmethod
    def data(root: strawberry.Parent[models.AlarmEvent]) -> JSON:
        return root.data


@orm_type(
    models.Alarm,
    name="Alarm",
    description="A device alarm (ThingsBoard's model): one open alarm per (device, type); repeats count "
    "`occurrences`; ACTIVE → ACKNOWLEDGED → CLEARED. Seen by staff with `Alarm read` in the estate "
    "(supervisors, guards, customer service, technicians, managers); never by residents.",
)
class AlarmType(Node):
    type: str = strawberry.field(description="e.g. `smoke`, `water_leak`, `over_temperature`, `device_offline`.")
    severity: AlarmSeverity
    status: AlarmStatus
    message: str
    occurrences: int
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    device_id: str
    acknowledged_at: dt.datetime | None
    cleared_at: dt.datetime | None
    version: int = strawberry.field(description="Bumped by every change.")

    @strawberry.field(description="What the device or the rule reported (values, thresholds).")
    @staticmethod
    def details(root: strawberry.Parent[models.Alarm]) -> JSON:
        return root.details

    @strawberry.field(description="The access point whose device raised it (e.g. `access_denied_burst`).")
    @staticmethod
    def access_point_id(root: strawberry.Parent[models.Alarm]) -> strawberry.ID | None:
        return (
            None if root.access_point_id is None else strawberry.ID(to_global_id("AccessPoint", root.access_point_id))
        )

    @strawberry.field
    @staticmethod
    async def estate(
        root: strawberry.Parent[models.Alarm], info: strawberry.Info[Context, None]
    ) -> Annotated[EstateType, strawberry.lazy("schema.property.types")]:
        return await relation(info, root, "estate")  # type: ignore[no-any-return]

    @strawberry.field(description="The equipment concerned, if any (null for callers who may not see assets).")
    @staticmethod
    async def asset(
        root: strawberry.Parent[models.Alarm], info: strawberry.Info[Context, None]
    ) -> Annotated[AssetType, strawberry.lazy("schema.assets.types")] | None:
        if root.asset_id is None:
            return None
        estate = await relation(info, root, "estate")
        if not info.context.permissions.allows_at("Asset", "read", estate.org_path):
            return None
        return await relation(info, root, "asset")  # type: ignore[no-any-return]

    @strawberry.field(
        description="The ALARM work order a CRITICAL or MAJOR alarm opened (null for callers who may not see it)."
    )
    @staticmethod
    async def ticket(
        root: strawberry.Parent[models.Alarm], info: strawberry.Info[Context, None]
    ) -> Annotated[TicketType, strawberry.lazy("schema.tickets.types")] | None:
        if root.ticket_id is None:
            return None
        permissions = info.context.permissions
        estate = await relation(info, root, "estate")
        ticket = await relation(info, root, "ticket")
        if ticket is None:
            return None
        principal = permissions.principal
        assigned = (
            principal is not None
            and ticket.assignee_id == principal.user_id
            and permissions.anywhere("Ticket", "read_assigned")
        )
        if permissions.allows_at("Ticket", "read", estate.org_path) or assigned:
            return ticket  # type: ignore[no-any-return]
        return None

    @strawberry.field(description="The telemetry rule that raised it; null for a device event.")
    @staticmethod
    async def rule(root: strawberry.Parent[models.Alarm], info: strawberry.Info[Context, None]) -> AlarmRuleType | None:
        if root.rule_id is None:
            return None
        return await relation(info, root, "rule")  # type: ignore[no-any-return]

    @strawberry.field(description="The alarm's history, oldest first: raised, repeats, acknowledgement, comments, …")
    @staticmethod
    async def events(
        root: strawberry.Parent[models.Alarm], info: strawberry.Info[Context, None]
    ) -> list[AlarmHistoryEntryType]:
        return await relation(info, root, "events")  # type: ignore[no-any-return]


@strawberry.enum(name="AlarmChangeKind", description="What happened to the alarm.")
class AlarmChangeKind(enum.Enum):
    RAISED = "RAISED"
    UPDATED = "UPDATED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    CLEARED = "CLEARED"


@strawberry.type(name="AlarmEvent", description="An alarm as it changes: raised, repeated, acknowledged, cleared.")
class AlarmEventType:
    kind: AlarmChangeKind
    alarm: AlarmType


register_relation(models.Alarm, "estate", Relation("estate"))
register_relation(models.Alarm, "asset", Relation("asset"))
register_relation(models.Alarm, "ticket", Relation("ticket"))
register_relation(models.Alarm, "rule", Relation("rule"))
register_relation(models.Alarm, "events", Relation("events"))
register_relation(models.AlarmEvent, "actor", Relation("actor"))
