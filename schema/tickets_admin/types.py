"""GraphQL types of ticket dispatch settings and ticket figures."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from backend.tickets import models
from backend.tickets.sla_rules import EffectiveSlaRule
from backend.tickets.stats import TicketFigures

# The same Python enums as the tickets API's: one GraphQL enum each, whoever wraps them.
TicketPriority = strawberry.enum(models.TicketPriority, name="TicketPriority")
TicketStatus = strawberry.enum(models.TicketStatus, name="TicketStatus")
TicketKind = strawberry.enum(models.TicketKind, name="TicketKind")


@strawberry.type(description="Response and resolution deadlines of tickets of a priority (and category).")
class SlaRule:
    priority: TicketPriority
    category_code: str | None = strawberry.field(description="Null: the rule of the priority for every category.")
    category_name: str | None
    response_minutes: int = strawberry.field(description="From the opening to the first start on site.")
    resolve_minutes: int = strawberry.field(description="From the opening to the resolution.")
    is_default: bool = strawberry.field(description="The product's default: the company has set no rule.")

    @classmethod
    def of(cls, rule: EffectiveSlaRule) -> SlaRule:
        return cls(
            priority=rule.priority,
            category_code=rule.category.code if rule.category else None,
            category_name=rule.category.name if rule.category else None,
            response_minutes=rule.response_minutes,
            resolve_minutes=rule.resolve_minutes,
            is_default=rule.is_default,
        )


@strawberry.type
class TicketStatusCount:
    status: TicketStatus
    count: int


@strawberry.type
class TicketKindCount:
    kind: TicketKind
    count: int


@strawberry.type(
    description="Figures of the tickets opened in a period: what a manager's dashboard shows. Times are from the "
    "opening: response = opened → first started, resolution = opened → resolved."
)
class TicketStats:
    total: int
    by_status: list[TicketStatusCount] = strawberry.field(description="Every status, zeros included.")
    by_kind: list[TicketKindCount] = strawberry.field(description="Every kind, zeros included.")
    mean_response_minutes: Decimal | None = strawberry.field(description="Over the tickets started; 2 places.")
    mean_resolution_minutes: Decimal | None = strawberry.field(description="Over the tickets resolved; 2 places.")
    response_on_time_rate: Decimal | None = strawberry.field(
        description="Started by the response deadline ÷ started; 4 places."
    )
    on_time_rate: Decimal | None = strawberry.field(
        description="维修及时率: resolved by the resolution deadline ÷ resolved (closed included); 4 places."
    )
    mean_rating: Decimal | None = strawberry.field(description="Over the rated tickets (1–5); 2 places.")
    resolved_count: int
    rated_count: int
    overdue_open_count: int = strawberry.field(description="Open tickets past a deadline now.")

    @classmethod
    def of(cls, figures: TicketFigures) -> TicketStats:
        return cls(
            total=figures.total,
            by_status=[TicketStatusCount(status=s, count=n) for s, n in figures.by_status.items()],
            by_kind=[TicketKindCount(kind=k, count=n) for k, n in figures.by_kind.items()],
            mean_response_minutes=figures.mean_response_minutes,
            mean_resolution_minutes=figures.mean_resolution_minutes,
            response_on_time_rate=figures.response_on_time_rate,
            on_time_rate=figures.on_time_rate,
            mean_rating=figures.mean_rating,
            resolved_count=figures.resolved,
            rated_count=figures.rated,
            overdue_open_count=figures.overdue_open,
        )
