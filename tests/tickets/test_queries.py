"""tickets and ticketCategories: who sees which tickets."""

from __future__ import annotations

from typing import Any

import pytest
from tickets_support import Demo, make_ticket, tid

from backend.db import to_global_id
from backend.tickets.models import TicketStatus

S = TicketStatus

VISIBLE = "query($id: ID!) { node(id: $id) { ... on Ticket { number } } }"
MINE = "query { tickets(first: 100, filter: {mine: true}) { edges { node { id assignee { username } } } } }"
CATEGORIES = "query($estate: ID!) { ticketCategories(estateId: $estate) { code name } }"


@pytest.mark.parametrize(
    ("username", "sees_new", "sees_assigned"),
    [
        ("admin", True, True),
        ("manager.north", True, True),
        ("cs.a", True, True),
        ("tech.a", False, True),  # only tickets assigned to them
        ("finance.north", False, False),
        ("guard.a", False, False),
        ("supervisor.north", True, True),  # follows the estate's work orders, read only
        ("supervisor.south", False, False),  # not their estate
        ("owner.a1", True, True),  # reported it, and lives there
        ("owner.a2", False, False),
        ("owner.c1", False, False),
    ],
)
async def test_who_sees_a_ticket(
    as_user: Any, runtime: Any, demo: Demo, username: str, sees_new: bool, sees_assigned: bool
) -> None:
    new = await make_ticket(runtime, demo, S.NEW)
    assigned = await make_ticket(runtime, demo, S.ASSIGNED)
    client = await as_user(username)
    assert ((await client.data(VISIBLE, {"id": tid(new)}))["node"] is not None) is sees_new
    assert ((await client.data(VISIBLE, {"id": tid(assigned)}))["node"] is not None) is sees_assigned


async def test_a_technicians_list_holds_only_their_tickets(as_user: Any, runtime: Any, demo: Demo) -> None:
    await make_ticket(runtime, demo, S.NEW)
    await make_ticket(runtime, demo, S.IN_PROGRESS)
    tech = await as_user("tech.a")
    listed = (await tech.data("query { tickets(first: 100) { edges { node { assignee { username } } } } }"))["tickets"][
        "edges"
    ]
    assert listed
    assert {e["node"]["assignee"]["username"] for e in listed} == {"tech.a"}
    mine = (await tech.data(MINE))["tickets"]["edges"]
    assert {e["node"]["assignee"]["username"] for e in mine} == {"tech.a"}


async def test_the_category_picker_lists_the_companys_categories(as_user: Any, demo: Demo) -> None:
    owner = await as_user("owner.a1")
    categories = (await owner.data(CATEGORIES, {"estate": to_global_id("Estate", demo.estate.id)}))["ticketCategories"]
    assert [c["code"] for c in categories][:3] == ["plumbing", "electrical", "elevator"]
    outside = await owner.data(CATEGORIES, {"estate": to_global_id("Estate", demo.other_estate.id)})
    assert outside["ticketCategories"] is None
