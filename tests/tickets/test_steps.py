"""Steps beyond the matrix: concurrency, the reopen window, required notes, charges, the
contact-phone mask per role, and the statement count of a page of tickets."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from tickets_support import ASSIGN, CLOSE, HOLD, REOPEN, RESOLVE, START, Demo, make_ticket, stored, tid

from backend.billing.models import Bill
from backend.tickets.models import TicketKind, TicketStatus

S = TicketStatus


async def _codes(client: Any, document: str, values: dict[str, Any], field: str) -> list[str]:
    result = (await client.data(document, {"input": values}))[field]
    return [e["code"] for e in result["errors"]]


async def test_two_concurrent_starts_one_wins(as_user: Any, runtime: Any, demo: Demo) -> None:
    # given an ASSIGNED ticket and two requests to start it at once (tech.a and the manager)
    ticket_id = await make_ticket(runtime, demo, S.ASSIGNED)
    before = await stored(runtime, ticket_id)
    tech, manager = await as_user("tech.a"), await as_user("manager.north")
    # when
    answers = await asyncio.gather(
        tech.data(START, {"input": {"ticketId": tid(ticket_id)}}),
        manager.data(START, {"input": {"ticketId": tid(ticket_id)}}),
    )
    # then one succeeded, the other got an error, and one STARTED event was written
    codes = sorted(tuple(e["code"] for e in a["startTicket"]["errors"]) for a in answers)
    assert codes[0] == ()
    assert codes[1] in (("CONCURRENT_UPDATE",), ("ILLEGAL_TRANSITION",))
    after = await stored(runtime, ticket_id)
    assert after.events == [*before.events, "STARTED"]
    assert after.version == before.version + 1


async def test_two_concurrent_assignments_one_wins(as_user: Any, runtime: Any, demo: Demo) -> None:
    ticket_id = await make_ticket(runtime, demo, S.NEW)
    before = await stored(runtime, ticket_id)
    cs, manager = await as_user("cs.a"), await as_user("manager.north")
    values = {"input": {"ticketId": tid(ticket_id), "assigneeId": demo.gid("tech.a")}}
    answers = await asyncio.gather(cs.data(ASSIGN, values), manager.data(ASSIGN, values))
    codes = sorted(tuple(e["code"] for e in a["assignTicket"]["errors"]) for a in answers)
    assert codes == [(), ("CONCURRENT_UPDATE",)]
    after = await stored(runtime, ticket_id)
    assert after.events == [*before.events, "ASSIGNED"]


async def test_the_reporter_reopens_within_seven_days_only(as_user: Any, runtime: Any, demo: Demo) -> None:
    # given one ticket resolved 6 days ago, one 8 days ago
    owner = await as_user("owner.a1")
    now = dt.datetime.now(dt.UTC)
    recent = await make_ticket(runtime, demo, S.RESOLVED, resolved_at=now - dt.timedelta(days=6))
    stale = await make_ticket(runtime, demo, S.RESOLVED, resolved_at=now - dt.timedelta(days=8))
    stale_before = await stored(runtime, stale)
    # when the owner reopens both
    ok = (await owner.data(REOPEN, {"input": {"ticketId": tid(recent), "reason": "还在漏"}}))["reopenTicket"]
    late = await _codes(owner, REOPEN, {"ticketId": tid(stale), "reason": "还在漏"}, "reopenTicket")
    # then the recent one is ASSIGNED again (to the same technician), the stale one unchanged
    assert ok["errors"] == []
    assert (ok["ticket"]["status"], ok["ticket"]["assignee"]) == ("ASSIGNED", {"username": "tech.a"})
    assert late == ["REOPEN_WINDOW_CLOSED"]
    assert await stored(runtime, stale) == stale_before


async def test_a_reason_is_needed_to_hold_or_reopen(as_user: Any, runtime: Any, demo: Demo) -> None:
    in_progress = await make_ticket(runtime, demo, S.IN_PROGRESS)
    resolved = await make_ticket(runtime, demo, S.RESOLVED)
    before = [await stored(runtime, in_progress), await stored(runtime, resolved)]
    tech, owner = await as_user("tech.a"), await as_user("owner.a1")
    assert await _codes(tech, HOLD, {"ticketId": tid(in_progress), "note": " "}, "holdTicket") == ["NOTE_REQUIRED"]
    assert await _codes(owner, REOPEN, {"ticketId": tid(resolved), "reason": ""}, "reopenTicket") == ["NOTE_REQUIRED"]
    assert [await stored(runtime, in_progress), await stored(runtime, resolved)] == before


async def test_a_repair_is_closed_only_after_the_return_visit(as_user: Any, runtime: Any, demo: Demo) -> None:
    ticket_id = await make_ticket(runtime, demo, S.RESOLVED)
    before = await stored(runtime, ticket_id)
    cs = await as_user("cs.a")
    assert await _codes(cs, CLOSE, {"ticketId": tid(ticket_id)}, "closeTicket") == ["RETURN_VISIT_REQUIRED"]
    assert await stored(runtime, ticket_id) == before
    done = (
        await cs.data(
            CLOSE, {"input": {"ticketId": tid(ticket_id), "returnVisitOutcome": "UNREACHABLE", "note": "三次未接"}}
        )
    )["closeTicket"]
    assert done["errors"] == []
    assert done["ticket"]["status"] == "CLOSED"


@pytest.mark.parametrize(
    ("charges", "kind"),
    [
        ([{"description": "人工", "amount": "0"}], TicketKind.REPAIR),
        ([{"description": "人工", "amount": "-5.00"}], TicketKind.REPAIR),
        ([{"description": "人工", "amount": "10.005"}], TicketKind.REPAIR),
        ([{"description": " ", "amount": "10.00"}], TicketKind.REPAIR),
    ],
    ids=["zero", "negative", "fraction_of_a_cent", "no_description"],
)
async def test_invalid_charges_bill_nothing_and_resolve_nothing(
    as_user: Any, runtime: Any, demo: Demo, charges: list[dict[str, str]], kind: TicketKind
) -> None:
    ticket_id = await make_ticket(runtime, demo, S.IN_PROGRESS, kind=kind)
    before = await stored(runtime, ticket_id)
    tech = await as_user("tech.a")
    codes = await _codes(
        tech, RESOLVE, {"ticketId": tid(ticket_id), "resolution": "修好了", "charges": charges}, "resolveTicket"
    )
    assert codes == ["INVALID_CHARGE"]
    assert await stored(runtime, ticket_id) == before
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(Bill.id).where(Bill.ticket_id == ticket_id)) is None


CONTACT = "query($id: ID!) { node(id: $id) { ... on Ticket { contactPhone } } }"


@pytest.mark.parametrize(
    ("username", "seen"),
    [
        ("admin", "13912345678"),
        ("manager.north", "13912345678"),
        ("cs.a", "13912345678"),
        ("tech.a", "13912345678"),  # the assignee
        ("owner.a1", "139****5678"),  # lives there, but someone else reported it
        ("owner.a2", "13912345678"),  # the reporter
        ("owner.c1", None),  # cannot see the ticket at all
        ("finance.north", None),
    ],
)
async def test_the_contact_phone_is_masked_unless_allowed(
    as_user: Any, runtime: Any, demo: Demo, username: str, seen: str | None
) -> None:
    # given a ticket on owner.a1's flat reported by another household member (owner.a2's
    # account stands in: reported on the owner's unit, assigned to tech.a)
    ticket_id = await make_ticket(runtime, demo, S.ASSIGNED, reporter="owner.a2")
    client = await as_user(username)
    node = (await client.data(CONTACT, {"id": tid(ticket_id)}))["node"]
    assert (node["contactPhone"] if node else None) == seen


async def test_the_reporter_sees_their_own_contact_phone(as_user: Any, runtime: Any, demo: Demo) -> None:
    ticket_id = await make_ticket(runtime, demo, S.NEW)
    node = (await (await as_user("owner.a1")).data(CONTACT, {"id": tid(ticket_id)}))["node"]
    assert node["contactPhone"] == "13912345678"


TICKET_PAGE = """
query($first: Int!) {
  tickets(first: $first, filter: {estateId: $estate}) {
    edges { node { number status contactPhone reporter { username } assignee { username } unit { code }
      estate { code } category { code } events { type at actor { username } } } }
  }
}
"""


async def test_a_page_of_tickets_takes_a_fixed_number_of_statements(
    as_user: Any, runtime: Any, demo: Demo, count_statements: Any
) -> None:
    # given at least 100 tickets in DEMO-A with histories
    from tickets_support import count

    from backend.tickets.models import Ticket

    have = await count(runtime, select(Ticket.id).where(Ticket.estate_id == demo.estate.id))
    for _ in range(max(0, 100 - have)):
        await make_ticket(runtime, demo, S.IN_PROGRESS)
    manager = await as_user("manager.north")
    document = TICKET_PAGE.replace("$estate", f'"{_estate_gid(demo)}"')
    statements = {}
    for first in (10, 100):
        count_statements.statements.clear()
        data = await manager.data(document, {"first": first})
        assert len(data["tickets"]["edges"]) == first
        assert all(e["node"]["events"] for e in data["tickets"]["edges"])
        statements[first] = count_statements.count
    assert statements[10] == statements[100]
    assert statements[100] <= 6, count_statements.statements


def _estate_gid(demo: Demo) -> str:
    from backend.db import to_global_id

    return to_global_id("Estate", demo.estate.id)
