"""Root queries of ticket dispatch: the SLA rules in force and the ticket figures."""

from __future__ import annotations

import datetime as dt

import strawberry
from sqlalchemy import select

from authz.scopes import estates_under
from backend.db import local_timezone, utcnow
from backend.property.models import Estate
from backend.tickets import sla_rules, stats
from schema.core.errors import BadUserInput, Forbidden
from schema.core.resolving import Info, authorised_target, estate_own_path
from schema.tickets_admin.types import SlaRule, TicketStats

SETTINGS = "TicketSettings"
STATS = "TicketStats"


def caller_company_path(info: Info, obj: str, act: str) -> str:
    """The company whose settings the caller works on: the root of their grants for ``obj act``
    (FORBIDDEN without any). A deployment serves one company; with several, the lowest id."""
    domains = info.context.permissions.domains(obj, act)
    if not domains:
        raise Forbidden()
    return f"/{min(company_id(domain) for domain in domains)}/"


def company_id(path: str) -> int:
    """The company of an org path ``/company/branch/office/``."""
    return int(path.split("/")[1])


@strawberry.input
class TicketStatsFilter:
    estate_id: strawberry.ID | None = strawberry.field(default=None, description="Null: every estate in scope.")
    from_: dt.date | None = strawberry.field(
        default=None, name="from", description="Tickets opened on or after this day (company time zone)."
    )
    to: dt.date | None = strawberry.field(default=None, description="… and on or before this day.")


@strawberry.type
class TicketsAdminQuery:
    @strawberry.field(
        description="The SLA rules of the caller's company: each priority's general rule (the company's or the "
        "default), then the category rules. Needs `TicketSettings read` (customer_service, manager, admin)."
    )
    async def sla_rules(self, info: Info) -> list[SlaRule]:
        info.context.require_principal()
        path = caller_company_path(info, SETTINGS, "read")
        rules = await sla_rules.sla_rules(info.context.session, company_id(path))
        return [SlaRule.of(rule) for rule in rules]

    @strawberry.field(
        description="Ticket figures of an estate (or every estate in scope) over the tickets opened in a period: "
        "counts by status and kind, mean response and resolution times, on-time rates (维修及时率), mean rating. "
        "Needs `TicketStats read` (customer_service, manager, admin); null for an estate out of scope."
    )
    async def ticket_stats(self, info: Info, filter: TicketStatsFilter | None = None) -> TicketStats | None:
        ctx = info.context
        ctx.require_principal()
        if not ctx.permissions.anywhere(STATS, "read"):
            raise Forbidden()
        filter = filter or TicketStatsFilter()
        if filter.from_ and filter.to and filter.from_ > filter.to:
            raise BadUserInput("`from` is after `to`.", argument="filter")
        if filter.estate_id is not None:
            estate = await authorised_target(
                info, Estate, filter.estate_id, type_name="Estate", obj=STATS, act="read", path_of=estate_own_path
            )
            if estate is None:
                return None
            estate_ids = select(Estate.id).where(Estate.id == estate.id)
        else:
            estate_ids = estates_under(ctx.permissions.domains(STATS, "read"))
        figures = await stats.ticket_figures(
            ctx.session,
            estate_ids=estate_ids,
            opened_from=_start_of(filter.from_),
            opened_before=_start_of(filter.to + dt.timedelta(days=1)) if filter.to else None,
            now=utcnow(),
        )
        return TicketStats.of(figures)


def _start_of(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time(), tzinfo=local_timezone())
