"""The spine end to end through the ASGI app: login, a scoped list, masking."""

from __future__ import annotations

from typing import Any

UNITS = """
query Units($first: Int) {
  units(first: $first) {
    totalCount
    edges { node { id code area building { name estate { code name } } occupants { role person { name phone idNumber } } } }
  }
}
"""


async def test_resident_sees_only_their_own_unit(as_user: Any) -> None:
    # given
    owner = await as_user("owner.a1")
    # when
    data = await owner.data(UNITS, {"first": 100})
    # then
    assert data["units"]["totalCount"] == 1
    (edge,) = data["units"]["edges"]
    assert edge["node"]["code"] == "1-1-101"
    assert edge["node"]["building"]["estate"]["code"] == "DEMO-A"
