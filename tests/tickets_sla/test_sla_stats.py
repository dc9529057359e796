"""ticketStats: the dashboard figures on a handcrafted set of tickets, and who may see them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sla_support import Dispatch, step, submit
from sqlalchemy import update

from backend.db import local_timezone, to_global_id, utcnow
from backend.tickets.lifecycle import Action
from backend.tickets.models import Ticket, TicketKind, TicketPriority

STATS = """
query($filter: TicketStatsFilter) {
  ticketStats(filter: $filter) {
    total byStatus { status count } byKind { kind count }
    meanResponseMinutes meanResolutionMinutes responseOnTimeRate onTimeRate meanRating
    resolvedCount ratedCount overdueOpenCount
  }
}
"""


async def _rate(runtime: Any, ticket_id: int, rating: int) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(rating=rating))


async def _handcrafted(runtime: Any, dispatch: Dispatch) -> dt.datetime:
    """Office Y's estate: four tickets opened at t0 and one five days earlier; returns t0."""
    estate, ty = dispatch.y.estate, dispatch.users["ty"]
    t0 = utcnow() - dt.timedelta(days=10)
    h = dt.timedelta(hours=1)
    # A: urgent repair, started after 20 min, resolved after 2 h (on time both ways), rated 5
    a = await submit(runtime, estate, priority=TicketPriority.URGENT, now=t0)
    await step(runtime, a.id, Action.ASSIGN, t0 + h / 12, assignee_id=ty)
    await step(runtime, a.id, Action.START, t0 + h / 3)
    await step(runtime, a.id, Action.RESOLVE, t0 + 2 * h)
    await _rate(runtime, a.id, 5)
    # B: normal repair, started after 5 h (late: 4 h), resolved after 80 h (late: 72 h), rated 3, closed
    b = await submit(runtime, estate, now=t0)
    await step(runtime, b.id, Action.ASSIGN, t0 + h, assignee_id=ty)
    await step(runtime, b.id, Action.START, t0 + 5 * h)
    await step(runtime, b.id, Action.RESOLVE, t0 + 80 * h)
    await _rate(runtime, b.id, 3)
    await step(runtime, b.id, Action.CLOSE, t0 + 81 * h)
    # C: a complaint nobody took: open and overdue. D: an inquiry cancelled at once.
    await submit(runtime, estate, kind=TicketKind.COMPLAINT, category="noise", now=t0)
    d = await submit(runtime, estate, kind=TicketKind.INQUIRY, category="other", priority=TicketPriority.LOW, now=t0)
    await step(runtime, d.id, Action.CANCEL, t0 + h / 60)
    # E: opened five days before the others, still new (overdue too)
    await submit(runtime, estate, now=t0 - dt.timedelta(days=5))
    return t0


def _counts(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    return {r[key]: r["count"] for r in rows if r["count"]}


async def test_the_figures_of_a_period(runtime: Any, dispatch: Dispatch, as_user: Any) -> None:
    # given
    t0 = await _handcrafted(runtime, dispatch)
    manager = await as_user("manager.north")
    estate_id = to_global_id("Estate", dispatch.y.estate.id)
    since = t0.astimezone(local_timezone()).date()
    # when
    stats = (await manager.data(STATS, {"filter": {"estateId": estate_id, "from": since.isoformat()}}))["ticketStats"]
    # then
    assert stats["total"] == 4
    assert len(stats["byStatus"]) == 7
    assert _counts(stats["byStatus"], "status") == {"NEW": 1, "RESOLVED": 1, "CLOSED": 1, "CANCELLED": 1}
    assert _counts(stats["byKind"], "kind") == {"REPAIR": 2, "COMPLAINT": 1, "INQUIRY": 1}
    assert Decimal(stats["meanResponseMinutes"]) == Decimal("160.00")  # (20 + 300) / 2
    assert Decimal(stats["meanResolutionMinutes"]) == Decimal("2460.00")  # (120 + 4800) / 2
    assert Decimal(stats["responseOnTimeRate"]) == Decimal("0.5000")
    assert Decimal(stats["onTimeRate"]) == Decimal("0.5000")
    assert Decimal(stats["meanRating"]) == Decimal("4.00")
    assert (stats["resolvedCount"], stats["ratedCount"], stats["overdueOpenCount"]) == (2, 2, 1)
    # when the period is open-ended, and when it ends before t0
    everything = (await manager.data(STATS, {"filter": {"estateId": estate_id}}))["ticketStats"]
    before = (
        await manager.data(STATS, {"filter": {"estateId": estate_id, "to": (since - dt.timedelta(days=1)).isoformat()}})
    )["ticketStats"]
    # then
    assert (everything["total"], everything["overdueOpenCount"]) == (5, 2)
    assert (before["total"], before["overdueOpenCount"], before["onTimeRate"], before["meanRating"]) == (
        1, 1, None, None)  # fmt: skip


async def test_the_figures_take_two_statements_besides_the_login(
    runtime: Any, dispatch: Dispatch, as_user: Any, count_statements: Any
) -> None:
    # given
    manager = await as_user("manager.north")
    await manager.data(STATS, {"filter": {}})
    count_statements.statements.clear()
    # when
    await manager.data(STATS, {"filter": {"estateId": to_global_id("Estate", dispatch.y.estate.id)}})
    # then: the estate (scope-checked) and the figures
    assert count_statements.count <= 3, count_statements.statements


# admin mgr.n cs.a fin tech guard sup.n sup.s owner anon
SEES_OFFICE_Y = {"admin": True, "manager.north": True, "cs.a": None}  # cs.a: N1 only → null
FORBIDDEN = ["finance.north", "tech.a", "guard.a", "supervisor.north", "supervisor.south", "owner.a1"]


@pytest.mark.parametrize("username", ["admin", "manager.north", "cs.a"])
async def test_managers_and_the_service_desk_see_the_figures_of_their_estates(
    runtime: Any, dispatch: Dispatch, as_user: Any, username: str
) -> None:
    # given a ticket in office Y (under North, not N1) and the demo estates
    await submit(runtime, dispatch.y.estate)
    client = await as_user(username)
    demo = await (await as_user("admin")).data('query { estates(first: 5, filter: {codePrefix: "DEMO-A"}) { edges { node { id } } } }')  # fmt: skip
    demo_a = demo["estates"]["edges"][0]["node"]["id"]
    # when
    office_y = await client.data(STATS, {"filter": {"estateId": to_global_id("Estate", dispatch.y.estate.id)}})
    own = await client.data(STATS, {"filter": {"estateId": demo_a}})
    # then
    if SEES_OFFICE_Y[username]:
        assert office_y["ticketStats"]["total"] == 1
    else:
        assert office_y["ticketStats"] is None
    assert own["ticketStats"] is not None


@pytest.mark.parametrize("username", [*FORBIDDEN, None])
async def test_everyone_else_is_refused_the_figures(as_user: Any, dispatch: Dispatch, username: str | None) -> None:
    # given
    client = await as_user(username)
    # when
    body = await client.execute(STATS, {"filter": {"estateId": to_global_id("Estate", dispatch.y.estate.id)}})
    # then
    assert body["data"] == {"ticketStats": None}
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [
        ("UNAUTHENTICATED" if username is None else "FORBIDDEN", ["ticketStats"])
    ]
