"""Ticket figures for a manager's dashboard, in one statement.

Over the tickets opened in a period (by ``created_at``) in a set of estates:

- counts by status and by kind;
- mean response time: opened → first started (``created_at`` → ``started_at``), in minutes,
  over the tickets started — what the reporter waits for someone on site, measured the way
  the response deadline is (it runs from the opening, not from the assignment);
- mean resolution time: opened → resolved (``created_at`` → ``resolved_at``, the latest
  resolution of a reopened ticket), in minutes, over resolved and closed tickets;
- on-time rate (维修及时率): tickets resolved by their ``resolve_due_at`` ÷ tickets resolved;
  the response on-time rate likewise for starts by ``response_due_at``;
- mean rating over the rated tickets;
- open tickets overdue now (not started past the response deadline, or past the resolution one).

Rates have four places, means two; a figure over no tickets is None.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.tickets.lifecycle import OPEN_STATUSES
from backend.tickets.models import Ticket, TicketKind, TicketStatus

RATE_PLACES = Decimal("0.0001")
MEAN_PLACES = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class TicketFigures:
    total: int
    by_status: dict[TicketStatus, int]
    by_kind: dict[TicketKind, int]
    started: int
    started_on_time: int
    resolved: int
    resolved_on_time: int
    rated: int
    overdue_open: int
    mean_response_minutes: Decimal | None
    mean_resolution_minutes: Decimal | None
    mean_rating: Decimal | None

    @property
    def response_on_time_rate(self) -> Decimal | None:
        return _rate(self.started_on_time, self.started)

    @property
    def on_time_rate(self) -> Decimal | None:
        return _rate(self.resolved_on_time, self.resolved)


def _rate(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) / Decimal(whole)).quantize(RATE_PLACES) if whole else None


def _mean(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(MEAN_PLACES)


def _count(condition: ColumnElement[bool]) -> Any:
    return func.count().filter(condition)


def _minutes(later: Any, earlier: Any) -> Any:
    return extract("epoch", later - earlier) / 60


async def ticket_figures(
    session: AsyncSession,
    *,
    estate_ids: Select[Any],
    opened_from: dt.datetime | None,
    opened_before: dt.datetime | None,
    now: dt.datetime,
) -> TicketFigures:
    """The figures of the tickets of ``estate_ids`` (a select of estate ids) opened in
    [``opened_from``, ``opened_before``)."""
    statuses = list(TicketStatus)
    kinds = list(TicketKind)
    overdue = and_(
        Ticket.status.in_(OPEN_STATUSES),
        or_(
            Ticket.resolve_due_at < now,
            and_(Ticket.started_at.is_(None), Ticket.response_due_at < now),
        ),
    )
    statement = select(
        func.count(),
        *(_count(Ticket.status == status) for status in statuses),
        *(_count(Ticket.kind == kind) for kind in kinds),
        _count(Ticket.started_at.is_not(None)),
        _count(Ticket.started_at <= Ticket.response_due_at),
        _count(Ticket.resolved_at.is_not(None)),
        _count(Ticket.resolved_at <= Ticket.resolve_due_at),
        func.count(Ticket.rating),
        _count(overdue),
        func.avg(_minutes(Ticket.started_at, Ticket.created_at)),
        func.avg(_minutes(Ticket.resolved_at, Ticket.created_at)),
        func.avg(Ticket.rating),
    ).where(Ticket.estate_id.in_(estate_ids))
    if opened_from is not None:
        statement = statement.where(Ticket.created_at >= opened_from)
    if opened_before is not None:
        statement = statement.where(Ticket.created_at < opened_before)
    row = list((await session.execute(statement)).one())
    total = row.pop(0)
    by_status = {status: row.pop(0) for status in statuses}
    by_kind = {kind: row.pop(0) for kind in kinds}
    started, started_on_time, resolved, resolved_on_time, rated, overdue_open = (int(row.pop(0)) for _ in range(6))
    mean_response, mean_resolution, mean_rating = row
    return TicketFigures(
        total=int(total),
        by_status=by_status,
        by_kind=by_kind,
        started=started,
        started_on_time=started_on_time,
        resolved=resolved,
        resolved_on_time=resolved_on_time,
        rated=rated,
        overdue_open=overdue_open,
        mean_response_minutes=_mean(mean_response),
        mean_resolution_minutes=_mean(mean_resolution),
        mean_rating=_mean(mean_rating),
    )
