"""Nested lists arrive in a fixed number of SQL statements, whatever the page size."""

from __future__ import annotations

import math
from typing import Any

import pytest

UNITS = """
query Units($first: Int!) {
  units(first: $first) {
    totalCount
    edges { node { building { estate { name } } occupants { person { name phone } } } }
  }
}
"""

ESTATES = """
query Estates {
  estates(first: 10, filter: {codePrefix: "DEMO-"}) {
    edges { node { code office { name } buildings { code entrances { code } units { code occupants { role } } } } }
  }
}
"""


@pytest.mark.parametrize("username", ["admin", "cs.a", "owner.a1"])
async def test_units_query_uses_at_most_four_statements_for_any_page_size(
    as_user: Any, count_statements: Any, username: str
) -> None:
    # given
    client = await as_user(username)
    counts = {}
    for first in (100, 10):
        count_statements.statements.clear()
        # when
        data = await client.data(UNITS, {"first": first})
        counts[first] = count_statements.count
        assert len(data["units"]["edges"]) == min(first, data["units"]["totalCount"])
    # then
    assert counts[100] <= 4, count_statements.statements
    assert counts[100] == counts[10]


async def test_nested_estates_buildings_units_are_batched(as_user: Any, count_statements: Any) -> None:
    # given
    admin = await as_user("admin")
    count_statements.statements.clear()
    # when
    data = await admin.data(ESTATES)
    # then: estates (office joined), buildings, entrances, units, and occupancies in
    # SQLAlchemy's IN-batches of 500 units — never a statement per row
    assert len(data["estates"]["edges"]) == 3
    unit_count = sum(len(b["units"]) for e in data["estates"]["edges"] for b in e["node"]["buildings"])
    assert unit_count >= 2000
    assert count_statements.count <= 4 + math.ceil(unit_count / 500), "\n".join(
        s[:150] for s in count_statements.statements
    )


async def test_resident_nested_paths_stay_inside_their_scope(as_user: Any) -> None:
    # given
    owner = await as_user("owner.a1")
    # when
    data = await owner.data(ESTATES)
    # then: their estate, its buildings they live in, and only their own unit
    (estate,) = data["estates"]["edges"]
    units = [u["code"] for b in estate["node"]["buildings"] for u in b["units"]]
    assert units == ["1-1-101"]
