"""The ticket state machine and ticket opening, below the API: legal paths, illegal steps
that change nothing, version checks, concurrent steps, numbering and SLA deadlines."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select, text

from backend.db import utcnow
from backend.property.models import Estate
from backend.tickets.errors import TicketError, TicketErrorCode
from backend.tickets.lifecycle import TRANSITIONS, Action, transition
from backend.tickets.models import (
    SlaRule,
    Ticket,
    TicketCategory,
    TicketChannel,
    TicketEvent,
    TicketEventType,
    TicketKind,
    TicketPriority,
    TicketStatus,
)
from backend.tickets.service import NewTicket, company_id_of, open_ticket

S = TicketStatus


@pytest_asyncio.fixture(loop_scope="session")
async def opened(runtime: Any) -> AsyncIterator[list[int]]:
    """Ids of the tickets a test opens; they and their events are removed afterwards."""
    ids: list[int] = []
    yield ids
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(delete(TicketEvent).where(TicketEvent.ticket_id.in_(ids)))
        await session.execute(delete(Ticket).where(Ticket.id.in_(ids)))


async def _estate(runtime: Any, code: str = "DEMO-A") -> Estate:
    async with runtime.sessionmaker() as session:
        estate = await session.scalar(select(Estate).where(Estate.code == code))
    assert estate is not None
    return estate


async def _open(runtime: Any, opened: list[int], priority: TicketPriority = TicketPriority.NORMAL,
                category: str = "plumbing", now: dt.datetime | None = None) -> Ticket:  # fmt: skip
    estate = await _estate(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        ticket = await open_ticket(session, NewTicket(estate=estate, kind=TicketKind.REPAIR, category_code=category,
                                                      title="厨房水管漏水", channel=TicketChannel.PHONE, priority=priority),
                                   actor_id=None, now=now)  # fmt: skip
    opened.append(ticket.id)
    return ticket


async def _step(runtime: Any, ticket_id: int, action: Action, **kwargs: Any) -> Ticket:
    async with runtime.sessionmaker() as session, session.begin():
        ticket, _ = await transition(session, ticket_id, action, actor_id=None, **kwargs)
    return ticket


async def _history(
    runtime: Any, ticket_id: int
) -> list[tuple[TicketEventType, TicketStatus | None, TicketStatus | None]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(TicketEvent.type, TicketEvent.from_status, TicketEvent.to_status)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.id)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_the_whole_path_writes_one_event_per_step(runtime: Any, opened: list[int]) -> None:
    # given
    ticket = await _open(runtime, opened)
    # when
    for action in (Action.ASSIGN, Action.START, Action.HOLD, Action.START, Action.RESOLVE, Action.CLOSE):
        await _step(runtime, ticket.id, action)
    # then
    E = TicketEventType
    assert await _history(runtime, ticket.id) == [
        (E.SUBMITTED, None, S.NEW), (E.ASSIGNED, S.NEW, S.ASSIGNED), (E.STARTED, S.ASSIGNED, S.IN_PROGRESS),
        (E.HELD, S.IN_PROGRESS, S.ON_HOLD), (E.RESUMED, S.ON_HOLD, S.IN_PROGRESS),
        (E.RESOLVED, S.IN_PROGRESS, S.RESOLVED), (E.CLOSED, S.RESOLVED, S.CLOSED),
    ]  # fmt: skip
    async with runtime.sessionmaker() as session:
        final = await session.get(Ticket, ticket.id)
    assert final is not None
    assert (final.status, final.version) == (S.CLOSED, 7)
    assert None not in (final.assigned_at, final.started_at, final.resolved_at, final.closed_at)


ILLEGAL = [(status, action) for action in Action for status in TicketStatus if status not in TRANSITIONS[action][0]]


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
async def test_a_step_from_a_status_it_does_not_start_from_changes_nothing(
    runtime: Any, opened: list[int], status: TicketStatus, action: Action
) -> None:
    # given a ticket in ``status``
    ticket = await _open(runtime, opened)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE tickets SET status = :s WHERE id = :id"), {"s": status.name, "id": ticket.id}
        )
    # when
    with pytest.raises(TicketError) as caught:
        await _step(runtime, ticket.id, action)
    # then
    assert caught.value.code is TicketErrorCode.ILLEGAL_TRANSITION
    async with runtime.sessionmaker() as session:
        after = await session.get(Ticket, ticket.id)
    assert after is not None
    assert (after.status, after.version) == (status, 1)
    assert len(await _history(runtime, ticket.id)) == 1


async def test_a_step_on_a_stale_version_is_refused(runtime: Any, opened: list[int]) -> None:
    # given a ticket read at version 1, then assigned by someone else
    ticket = await _open(runtime, opened)
    await _step(runtime, ticket.id, Action.ASSIGN)
    # when
    with pytest.raises(TicketError) as caught:
        await _step(runtime, ticket.id, Action.ASSIGN, expected_version=1)
    # then
    assert caught.value.code is TicketErrorCode.CONCURRENT_UPDATE
    assert len(await _history(runtime, ticket.id)) == 2


async def test_of_two_concurrent_steps_one_wins(runtime: Any, opened: list[int]) -> None:
    # given an assigned ticket
    ticket = await _open(runtime, opened)
    await _step(runtime, ticket.id, Action.ASSIGN)

    async def start() -> Any:
        try:
            return await _step(runtime, ticket.id, Action.START, expected_version=2)
        except TicketError as exc:
            return exc.code

    # when two people start it at once
    results = await asyncio.gather(start(), start())
    # then one started it; the other was told, and one event was written
    assert sorted(r.name if isinstance(r, TicketErrorCode) else "OK" for r in results) == ["CONCURRENT_UPDATE", "OK"]
    assert [t for t, _, _ in await _history(runtime, ticket.id)].count(TicketEventType.STARTED) == 1


async def test_a_reopen_is_possible_for_seven_days(runtime: Any, opened: list[int]) -> None:
    # given two tickets resolved 6 and 8 days ago
    tickets = [await _open(runtime, opened) for _ in range(2)]
    for ticket, days in zip(tickets, (6, 8), strict=True):
        for action in (Action.ASSIGN, Action.START, Action.RESOLVE):
            await _step(runtime, ticket.id, action, now=utcnow() - dt.timedelta(days=days))
    # when
    reopened = await _step(runtime, tickets[0].id, Action.REOPEN)
    with pytest.raises(TicketError) as caught:
        await _step(runtime, tickets[1].id, Action.REOPEN)
    # then
    assert (reopened.status, reopened.reopen_count) == (S.ASSIGNED, 1)
    assert caught.value.code is TicketErrorCode.REOPEN_WINDOW_CLOSED


async def test_the_history_cannot_be_edited(runtime: Any, opened: list[int]) -> None:
    # given
    ticket = await _open(runtime, opened)
    # when / then
    for statement in ("UPDATE ticket_events SET note = 'x' WHERE ticket_id = :id",
                      "DELETE FROM ticket_events WHERE ticket_id = :id"):  # fmt: skip
        with pytest.raises(Exception, match="never edited or deleted"):
            async with runtime.sessionmaker() as session, session.begin():
                await session.execute(text(statement), {"id": ticket.id})
    assert len(await _history(runtime, ticket.id)) == 1


async def test_numbers_are_unique_per_company_and_readable(runtime: Any, opened: list[int]) -> None:
    # when ten tickets are opened at once
    tickets = await asyncio.gather(*(_open(runtime, opened) for _ in range(10)))
    # then
    numbers = [t.number for t in tickets]
    assert len(set(numbers)) == 10
    assert all(re.fullmatch(r"[A-Z0-9]+-\d{6}-\d{6}", n) for n in numbers), numbers


async def test_deadlines_follow_the_defaults_then_the_companys_rules(runtime: Any, opened: list[int]) -> None:
    # given
    opened_at = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    urgent = await _open(runtime, opened, TicketPriority.URGENT, now=opened_at)
    estate = await _estate(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        company = company_id_of(estate)
        elevator = await session.scalar(
            select(TicketCategory.id).where(TicketCategory.company_id == company, TicketCategory.code == "elevator")
        )
        rules = [
            SlaRule(company_id=company, priority=TicketPriority.HIGH, category_id=None, response_minutes=60,
                    resolve_minutes=600),
            SlaRule(company_id=company, priority=TicketPriority.HIGH, category_id=elevator, response_minutes=15,
                    resolve_minutes=120),
        ]  # fmt: skip
        session.add_all(rules)
    try:
        # when
        high = await _open(runtime, opened, TicketPriority.HIGH, now=opened_at)
        high_elevator = await _open(runtime, opened, TicketPriority.HIGH, category="elevator", now=opened_at)
    finally:
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(delete(SlaRule).where(SlaRule.id.in_([r.id for r in rules])))
    # then: URGENT 30 min / 4 h by default; the category's rule beats the priority's
    minutes = [
        ((t.response_due_at - opened_at).total_seconds() / 60, (t.resolve_due_at - opened_at).total_seconds() / 60)
        for t in (urgent, high, high_elevator)
    ]
    assert minutes == [(30, 240), (60, 600), (15, 120)]


async def test_an_unknown_category_opens_nothing(runtime: Any, opened: list[int]) -> None:
    # given
    async with runtime.sessionmaker() as session:
        before = await session.scalar(select(func.count()).select_from(Ticket))
    # when
    with pytest.raises(TicketError) as caught:
        await _open(runtime, opened, category="astrology")
    # then
    assert caught.value.code is TicketErrorCode.INVALID_CATEGORY
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == before
