"""What the owner app shows: viewer.units { bills(filter: {status: UNPAID}) }."""

from __future__ import annotations

from typing import Any

OWNER_UNPAID = """
query {
  viewer {
    units { code bills(filter: {status: UNPAID}) { period amount outstanding status feeItem { name } } }
  }
}
"""

ALL_OWN = "query { viewer { units { code bills { status } } } }"

STAFF_UNITS = """
query { units(first: 50, filter: {codePrefix: "1-1-"}) { edges { node { code bills(filter: {status: UNPAID}) { id } } } } }
"""


async def test_an_owner_sees_their_units_unpaid_bills(as_user: Any) -> None:
    # given
    owner = await as_user("owner.a1")
    # when
    data = await owner.data(OWNER_UNPAID)
    everything = await owner.data(ALL_OWN)
    # then
    (unit,) = data["viewer"]["units"]
    assert unit["code"] == "1-1-101"
    assert all(b["status"] == "UNPAID" and b["outstanding"] == b["amount"] for b in unit["bills"])
    statuses = [b["status"] for b in everything["viewer"]["units"][0]["bills"]]
    assert len(statuses) >= 12
    assert len(unit["bills"]) == statuses.count("UNPAID")


async def test_staff_have_no_units_of_their_own(as_user: Any) -> None:
    data = await (await as_user("cs.a")).data(ALL_OWN)
    assert data["viewer"]["units"] == []


async def test_bills_of_many_units_load_in_one_statement(as_user: Any, count_statements: Any) -> None:
    # given
    finance = await as_user("finance.north")
    count_statements.statements.clear()
    # when
    data = await finance.data(STAFF_UNITS)
    # then: the units page, then one batched bills statement
    assert len(data["units"]["edges"]) == 50
    assert sum("FROM bills" in s for s in count_statements.statements) == 1
    assert count_statements.count <= 3


async def test_a_caller_without_bill_read_sees_no_bills_on_units(as_user: Any) -> None:
    data = await (await as_user("tech.a")).data(STAFF_UNITS)
    assert all(edge["node"]["bills"] == [] for edge in data["units"]["edges"])


async def test_money_is_always_shown_in_cents(as_user: Any) -> None:
    # given
    owner = await as_user("owner.a1")
    # when
    data = await owner.data(
        "query { viewer { units { bills(filter: {status: UNPAID}) { paidAmount waivedAmount } } } }"
    )
    # then: "0.00", never "0"
    bills = data["viewer"]["units"][0]["bills"]
    assert bills
    assert {(b["paidAmount"], b["waivedAmount"]) for b in bills} == {("0.00", "0.00")}
