"""GraphQL types of the equipment register: assets, maintenance plans and records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON

from authz.scopes import predicate
from backend.assets import models
from backend.db import to_global_id
from backend.tickets.lifecycle import OPEN_STATUSES
from backend.tickets.models import Ticket
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Node
from schema.core.resolving import Info
from schema.core.types import orm_type

if TYPE_CHECKING:
    from schema.accounts.types import UserType
    from schema.property.types import BuildingType, EstateType
    from schema.tickets.types import TicketType

AssetKind = strawberry.enum(models.AssetType, name="AssetType", description="The kind of equipment.")
AssetStatus = strawberry.enum(models.AssetStatus, name="AssetStatus")


@strawberry.type(description="One checklist item's result in a maintenance record.")
class ChecklistResultType:
    item: str
    ok: bool
    note: str


@orm_type(models.MaintenanceRecord, name="MaintenanceRecord", description="Maintenance done (保养记录).")
class MaintenanceRecordType(Node):
    performed_at: dt.datetime
    notes: str
    performed_by: Annotated[UserType, strawberry.lazy("schema.accounts.types")] | None
    plan: MaintenancePlanType | None
    asset: AssetType | None

    @strawberry.field(description="The ticket whose resolution recorded it (a Ticket id).")
    @staticmethod
    def ticket_id(root: strawberry.Parent[models.MaintenanceRecord]) -> strawberry.ID | None:
        return None if root.ticket_id is None else strawberry.ID(to_global_id("Ticket", root.ticket_id))

    @strawberry.field
    @staticmethod
    def checklist_results(root: strawberry.Parent[models.MaintenanceRecord]) -> list[ChecklistResultType]:
        return [
            ChecklistResultType(item=str(r.get("item", "")), ok=bool(r.get("ok")), note=str(r.get("note") or ""))
            for r in root.checklist_results
        ]


async def _tickets_by_asset(info: Info, asset_ids: Sequence[int]) -> list[list[tuple[int, bool, bool]]]:
    """(ticket id, open, visible to the caller) per asset: the count of open tickets is the
    equipment's state, the ids are tickets and go through the Ticket row scope."""
    session = info.context.session
    rows = await session.execute(
        select(
            Ticket.asset_id,
            Ticket.id,
            Ticket.status.in_(OPEN_STATUSES),
            predicate(Ticket, info.context.permissions),
        )
        .where(Ticket.asset_id.in_(asset_ids))
        .order_by(Ticket.id.desc())
    )
    grouped: dict[int, list[tuple[int, bool, bool]]] = {asset_id: [] for asset_id in asset_ids}
    for asset_id, ticket_id, is_open, visible in rows:
        grouped[int(asset_id)].append((ticket_id, bool(is_open), bool(visible)))
    return [grouped[asset_id] for asset_id in asset_ids]


def _ticket_loader(info: Info) -> Any:
    async def load(keys: Sequence[int]) -> list[list[tuple[int, bool, bool]]]:
        return await _tickets_by_asset(info, keys)

    return info.context.loaders.keyed("asset_tickets", load)


@orm_type(models.Asset, name="Asset", description="A piece of equipment (设施设备) of an estate.")
class AssetType(Node):
    code: str = strawberry.field(description="Unique per company.")
    tag: str | None = strawberry.field(description="The QR / RFID text on the equipment (unique per company).")
    type: AssetKind
    name: str
    model: str
    manufacturer: str
    location: str
    install_date: dt.date | None
    warranty_until: dt.date | None
    status: AssetStatus
    parameters: JSON
    device_id: str | None = strawberry.field(description="The MQTT device id of a sensor reporting by itself.")
    retired_at: dt.datetime | None
    created_at: dt.datetime
    estate: Annotated[EstateType, strawberry.lazy("schema.property.types")]
    building: Annotated[BuildingType, strawberry.lazy("schema.property.types")] | None
    parent: AssetType | None
    children: list[AssetType] = strawberry.field(description="Assets that are part of this one, by id.")
    maintenance_records: list[MaintenanceRecordType] = strawberry.field(description="Newest first.")

    @strawberry.field(description="Its tickets' ids (Ticket ids), newest first: the asset's repair history.")
    @staticmethod
    async def ticket_ids(root: strawberry.Parent[models.Asset], info: Info) -> list[strawberry.ID]:
        return [
            strawberry.ID(to_global_id("Ticket", pk))
            for pk, _, visible in await _ticket_loader(info).load(root.id)
            if visible
        ]

    @strawberry.field(description="How many of its tickets are not resolved, closed or cancelled yet.")
    @staticmethod
    async def open_ticket_count(root: strawberry.Parent[models.Asset], info: Info) -> int:
        return sum(1 for _, is_open, _ in await _ticket_loader(info).load(root.id) if is_open)

    tickets: list[Annotated[TicketType, strawberry.lazy("schema.tickets.types")]] = strawberry.field(
        description="Its tickets the caller may see, newest first: the asset's repair and maintenance history."
    )


@orm_type(models.MaintenancePlan, name="MaintenancePlan", description="Planned maintenance (保养计划).")
class MaintenancePlanType(Node):
    name: str
    asset_type: AssetKind | None = strawberry.field(description="Set when the plan covers every asset of a type.")
    interval_days: int | None
    interval_months: int | None
    cron: str | None
    lead_days: int = strawberry.field(description="Its ticket opens this many days before the due date.")
    next_due_date: dt.date
    last_completed_at: dt.datetime | None
    active: bool
    created_at: dt.datetime
    estate: Annotated[EstateType, strawberry.lazy("schema.property.types")]
    asset: AssetType | None = strawberry.field(description="Set when the plan covers one asset.")
    assignee: Annotated[UserType, strawberry.lazy("schema.accounts.types")] | None

    @strawberry.field
    @staticmethod
    def checklist(root: strawberry.Parent[models.MaintenancePlan]) -> list[str]:
        return [str(entry["item"]) for entry in root.checklist]


register_relation(models.Asset, "estate", Relation("estate"))
register_relation(models.Asset, "building", Relation("building"))
register_relation(models.Asset, "parent", Relation("parent"))
register_relation(models.Asset, "children", Relation("children"))
register_relation(models.Asset, "tickets", Relation("tickets"))
register_relation(models.Asset, "maintenanceRecords", Relation("maintenance_records"))
register_relation(models.MaintenancePlan, "estate", Relation("estate"))
register_relation(models.MaintenancePlan, "asset", Relation("asset"))
register_relation(models.MaintenancePlan, "assignee", Relation("assignee"))
register_relation(models.MaintenanceRecord, "plan", Relation("plan"))
register_relation(models.MaintenanceRecord, "asset", Relation("asset"))
register_relation(models.MaintenanceRecord, "performedBy", Relation("performed_by"))
