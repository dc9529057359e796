"""Root queries of work orders."""

from __future__ import annotations

import strawberry
from sqlalchemy import or_, select

from authz.scopes import scoped
from backend.property.models import Estate
from backend.tickets import models
from backend.tickets.service import company_id_of, ensure_categories
from schema.core.relay import Connection, try_decode_id
from schema.core.resolving import Info, scoped_connection, unit_of_work
from schema.tickets.types import TicketCategoryType, TicketKind, TicketStatus, TicketType


@strawberry.input
class TicketFilter:
    estate_id: strawberry.ID | None = None
    unit_id: strawberry.ID | None = None
    status: list[TicketStatus] | None = strawberry.field(default=None, description="Any of these statuses.")
    kind: TicketKind | None = None
    assignee_id: strawberry.ID | None = None
    mine: bool = strawberry.field(default=False, description="Only tickets the viewer reported or is assigned.")


@strawberry.type
class TicketsQuery:
    @strawberry.field(
        description="Tickets in scope, newest first: staff with `Ticket read` in their estates, technicians those "
        "assigned to them (`Ticket read_assigned`), residents those they reported or of their units."
    )
    async def tickets(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: TicketFilter | None = None
    ) -> Connection[TicketType]:
        statement = select(models.Ticket)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(models.Ticket.estate_id == try_decode_id(filter.estate_id, "Estate"))
            if filter.unit_id is not None:
                statement = statement.where(models.Ticket.unit_id == try_decode_id(filter.unit_id, "Unit"))
            if filter.status:
                statement = statement.where(models.Ticket.status.in_(filter.status))
            if filter.kind is not None:
                statement = statement.where(models.Ticket.kind == filter.kind)
            if filter.assignee_id is not None:
                statement = statement.where(models.Ticket.assignee_id == try_decode_id(filter.assignee_id, "User"))
            if filter.mine:
                me = info.context.require_principal().user_id
                statement = statement.where(or_(models.Ticket.reporter_user_id == me, models.Ticket.assignee_id == me))
        return await scoped_connection(info, models.Ticket, statement, first=first, after=after, newest_first=True)

    @strawberry.field(description="The ticket categories of an estate's company, for a picker; null outside scope.")
    async def ticket_categories(self, info: Info, estate_id: strawberry.ID) -> list[TicketCategoryType] | None:
        ctx = info.context
        ctx.require_principal()
        estate = await ctx.session.scalar(
            scoped(select(Estate).where(Estate.id == try_decode_id(estate_id, "Estate")), Estate, ctx.permissions)
        )
        if estate is None:
            return None
        company_id = company_id_of(estate)
        async with unit_of_work(ctx):
            await ensure_categories(ctx.session, company_id)
            categories = (
                await ctx.session.scalars(
                    select(models.TicketCategory)
                    .where(models.TicketCategory.company_id == company_id, models.TicketCategory.active)
                    .order_by(models.TicketCategory.sort_order, models.TicketCategory.id)
                )
            ).all()
        return list(categories)  # type: ignore[arg-type]
