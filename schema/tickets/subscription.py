"""The ``ticketUpdates`` subscription: a ticket's steps and comments as they happen."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from sqlalchemy import select
from strawberry.types.nodes import SelectedField

from authz.scopes import scoped
from backend.tickets import models
from backend.tickets.updates import ticket_channel
from schema.core.errors import BadUserInput, Unauthenticated
from schema.core.loaders import load_options
from schema.core.relay import try_decode_id
from schema.core.resolving import Info
from schema.tickets.types import TicketUpdate


def _selections(info: Info) -> list[SelectedField]:
    fields = info.selected_fields[0].selections if info.selected_fields else []
    return [s for s in fields if isinstance(s, SelectedField)]


@strawberry.type
class TicketsSubscription:
    @strawberry.subscription(
        description="Each step, rating and comment of a ticket as it happens, with the ticket as it is then. For "
        "whoever may see the ticket (reporter, assignee, staff in scope); checked again for every event."
    )
    async def ticket_updates(self, info: Info, ticket_id: strawberry.ID) -> AsyncGenerator[TicketUpdate, None]:
        ctx = info.context
        if ctx.principal is None:
            raise Unauthenticated()
        pk = try_decode_id(ticket_id, "Ticket") or 0
        async with ctx.runtime.sessionmaker() as session:
            visible = await session.scalar(
                scoped(select(models.Ticket.id).where(models.Ticket.id == pk), models.Ticket, ctx.permissions)
            )
        if visible is None:
            raise BadUserInput("No such ticket.", argument="ticketId")
        selected = {s.name: s.selections for s in _selections(info)}
        ticket_options = load_options(ctx, models.Ticket, selected.get("ticket", []))
        event_options = load_options(ctx, models.TicketEvent, selected.get("event", []))
        async for message in ctx.runtime.bus.subscribe(ticket_channel(pk)):
            ctx.loaders.reset()
            async with ctx.runtime.sessionmaker() as session:
                ticket = (
                    (
                        await session.scalars(
                            scoped(
                                select(models.Ticket).where(models.Ticket.id == pk), models.Ticket, ctx.permissions
                            ).options(*ticket_options)
                        )
                    )
                    .unique()
                    .one_or_none()
                )
                event = (
                    (
                        await session.scalars(
                            select(models.TicketEvent)
                            .where(models.TicketEvent.id == message.get("eventId"), models.TicketEvent.ticket_id == pk)
                            .options(*event_options)
                        )
                    )
                    .unique()
                    .one_or_none()
                )
            if ticket is not None and event is not None:
                yield TicketUpdate(event=event, ticket=ticket)  # type: ignore[arg-type]
