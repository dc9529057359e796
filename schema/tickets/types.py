"""GraphQL types of work orders: tickets, their history, categories."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from authz.fields import mask_phone
from authz.principal import FieldAccess
from backend.tickets import models
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Node
from schema.core.types import orm_type

if TYPE_CHECKING:
    from schema.accounts.types import UserType
    from schema.assets.types import AssetType
    from schema.billing.types import BillType
    from schema.core.context import Context
    from schema.property.types import EstateType, UnitType

TicketKind = strawberry.enum(models.TicketKind, name="TicketKind")
TicketStatus = strawberry.enum(models.TicketStatus, name="TicketStatus")
TicketPriority = strawberry.enum(models.TicketPriority, name="TicketPriority")
TicketChannel = strawberry.enum(models.TicketChannel, name="TicketChannel")
TicketEventKind = strawberry.enum(models.TicketEventType, name="TicketEventType")
ReturnVisitOutcome = strawberry.enum(models.ReturnVisitOutcome, name="ReturnVisitOutcome")


@orm_type(models.TicketCategory, name="TicketCategory", description="A company's ticket category (plumbing, …).")
class TicketCategoryType:
    code: str
    name: str
    active: bool = strawberry.field(description="Offered to reporters; a retired category stays on old tickets.")
    sort_order: int


@orm_type(models.TicketEvent, name="TicketEvent", description="One step of a ticket's history; never edited.")
class TicketEventType:
    type: TicketEventKind
    from_status: TicketStatus | None
    to_status: TicketStatus | None
    note: str
    actor: Annotated[UserType, strawberry.lazy("schema.accounts.types")] | None = strawberry.field(
        description="Who took the step; null for the system (jobs)."
    )

    @strawberry.field(description="When it happened.")
    @staticmethod
    def at(root: strawberry.Parent[models.TicketEvent]) -> dt.datetime:
        return root.created_at

    @strawberry.field(description="Details of the step, e.g. `{assigneeId}`, `{charges}`, `{rating}`.")
    @staticmethod
    def data(root: strawberry.Parent[models.TicketEvent]) -> JSON:
        return root.data


@orm_type(
    models.Ticket,
    name="Ticket",
    description="A work order (工单): repair, complaint, inquiry, maintenance or alarm, and its history. Seen by "
    "staff with `Ticket read` in the estate, by the technician it is assigned to, and by residents who reported "
    "it or occupy its unit.",
)
class TicketType(Node):
    number: str = strawberry.field(description="Human-readable, unique per company, e.g. `DPG-260105-000042`.")
    kind: TicketKind
    status: TicketStatus
    priority: TicketPriority
    channel: TicketChannel
    title: str
    description: str
    location: str = strawberry.field(description="Where in the unit or the public area.")
    photo_urls: list[str]
    category: TicketCategoryType
    unit: Annotated[UnitType, strawberry.lazy("schema.property.types")] | None = strawberry.field(
        description="The reporter's unit; null for a public area of the estate."
    )
    estate: Annotated[EstateType, strawberry.lazy("schema.property.types")]
    asset: Annotated[AssetType, strawberry.lazy("schema.assets.types")] | None = strawberry.field(
        description="The equipment concerned, if any (null for callers who may not see assets)."
    )
    reporter: Annotated[UserType, strawberry.lazy("schema.accounts.types")] | None = strawberry.field(
        description="The account that reported it (staff reporting on someone's behalf: that person's account, if any)."
    )
    assignee: Annotated[UserType, strawberry.lazy("schema.accounts.types")] | None
    appointment_start: dt.datetime | None = strawberry.field(name="appointmentAt")
    appointment_end: dt.datetime | None
    response_due_at: dt.datetime
    resolve_due_at: dt.datetime
    created_at: dt.datetime
    assigned_at: dt.datetime | None
    started_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    resolution: str
    rating: int | None
    rating_comment: str
    return_visit_outcome: ReturnVisitOutcome | None
    reopen_count: int
    version: int = strawberry.field(description="Bumped by every step.")
    events: list[TicketEventType] = strawberry.field(description="The ticket's history, oldest first.")

    @strawberry.field(
        description="Needs `Ticket.contactPhone read` (customer service, managers), or being the assignee or the "
        "reporter; masked for everyone else."
    )
    @staticmethod
    def contact_phone(root: strawberry.Parent[models.Ticket], info: strawberry.Info[Context, None]) -> str | None:
        ctx = info.context
        principal = ctx.principal
        if ctx.permissions.field_access("Ticket.contactPhone") is FieldAccess.FULL or (
            principal is not None and principal.user_id in (root.assignee_id, root.reporter_user_id)
        ):
            return root.contact_phone
        return mask_phone(root.contact_phone)

    @strawberry.field(description="The REPAIR bill of a paid repair, if the caller may see bills.")
    @staticmethod
    async def bill(
        root: strawberry.Parent[models.Ticket], info: strawberry.Info[Context, None]
    ) -> Annotated[BillType, strawberry.lazy("schema.billing.types")] | None:
        return await info.context.loaders.bill_by_ticket.load(root.id)  # type: ignore[no-any-return]


@strawberry.type(description="A step or comment on a ticket, as it happens.")
class TicketUpdate:
    event: TicketEventType
    ticket: TicketType


register_relation(models.Ticket, "category", Relation("category"))
register_relation(models.Ticket, "unit", Relation("unit"))
register_relation(models.Ticket, "estate", Relation("estate"))
register_relation(models.Ticket, "asset", Relation("asset"))
register_relation(models.Ticket, "reporter", Relation("reporter"))
register_relation(models.Ticket, "assignee", Relation("assignee"))
register_relation(models.Ticket, "events", Relation("events"))
register_relation(models.TicketEvent, "actor", Relation("actor"))
