"""bills, feeItems and generateBills through GraphQL: who sees and does what, in how many statements."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.audit.models import AuditEntry
from backend.billing.models import Bill
from backend.property.models import Estate

ESTATES = 'query { estates(first: 5, filter: {codePrefix: "DEMO-"}) { edges { node { id code } } } }'

BILLS_PER_ESTATE = """
query($a: ID!, $b: ID!, $c: ID!) {
  a: bills(first: 1, filter: {estateId: $a}) { totalCount }
  b: bills(first: 1, filter: {estateId: $b}) { totalCount }
  c: bills(first: 1, filter: {estateId: $c}) { totalCount }
}
"""

OWN_BILLS = """
query { bills(first: 100) { totalCount edges { node { period amount outstanding status unit { code } feeItem { code } } } } }
"""

BILL_LIST = """
query($first: Int!) {
  bills(first: $first, filter: {feeItemCode: "PF01"}) {
    totalCount
    edges { node { period amount paidAmount outstanding dueDate unit { code building { name } } feeItem { code name } } }
  }
}
"""

GENERATE = """
mutation($input: GenerateBillsInput!) {
  generateBills(input: $input) { createdCount skippedCount errors { field code message } }
}
"""

SEEN = {
    "admin": {"DEMO-A", "DEMO-B", "DEMO-C"},
    "manager.north": {"DEMO-A", "DEMO-B"},
    "finance.north": {"DEMO-A", "DEMO-B"},
    "cs.a": {"DEMO-A"},
    "tech.a": set(),
    "guard.a": set(),
    "supervisor.north": set(),
    "owner.a1": {"DEMO-A"},
}


async def _estates(as_user: Any) -> dict[str, str]:
    admin = await as_user("admin")
    return {e["node"]["code"]: e["node"]["id"] for e in (await admin.data(ESTATES))["estates"]["edges"]}


@pytest.mark.parametrize(("username", "expected"), SEEN.items())
async def test_bills_are_seen_in_scope_only(as_user: Any, username: str, expected: set[str]) -> None:
    # given
    estates = await _estates(as_user)
    client = await as_user(username)
    # when
    data = await client.data(BILLS_PER_ESTATE, {k: estates[f"DEMO-{k.upper()}"] for k in "abc"})
    # then
    assert {f"DEMO-{k.upper()}" for k in "abc" if data[k]["totalCount"] > 0} == expected


async def test_an_owner_sees_the_bills_of_their_own_unit_only(as_user: Any) -> None:
    # given
    owner = await as_user("owner.a1")
    # when
    data = await owner.data(OWN_BILLS)
    # then: a year of property fee (monthly), garbage fee (quarterly), water and electricity
    # (metered, monthly up to last month) for 1-1-101, and the demo's paid repair
    edges = data["bills"]["edges"]
    assert {e["node"]["unit"]["code"] for e in edges} == {"1-1-101"}
    assert {e["node"]["feeItem"]["code"] for e in edges} == {"PF01", "GB01", "WA01", "EL01", "RP01"}
    assert sum(e["node"]["feeItem"]["code"] == "WA01" for e in edges) == 12
    assert sum(e["node"]["feeItem"]["code"] == "PF01" for e in edges) == 12
    assert {e["node"]["amount"] for e in edges if e["node"]["feeItem"]["code"] == "PF01"} == {"223.90"}


async def test_anonymous_callers_see_no_bills(as_user: Any) -> None:
    body = await (await as_user(None)).execute(OWN_BILLS)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("username", ["finance.north", "owner.a1"])
async def test_the_bill_list_takes_the_same_statements_for_any_page(
    as_user: Any, count_statements: Any, username: str
) -> None:
    # given
    client = await as_user(username)
    counts = []
    for first in (100, 10):
        count_statements.statements.clear()
        # when
        data = await client.data(BILL_LIST, {"first": first})
        counts.append(count_statements.count)
        assert data["bills"]["edges"]
    # then: the count, then bills with unit, building and fee item joined and the line sums
    assert counts[0] == counts[1] <= 2


async def _audit_count(runtime: Any, request_id: str) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).where(AuditEntry.request_id == request_id)) or 0)


async def _bill_count(runtime: Any, estate_code: str) -> int:
    async with runtime.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Bill)
            .join(Estate, Estate.id == Bill.estate_id)
            .where(Estate.code == estate_code)
        )
    return int(count or 0)


@pytest.mark.parametrize(
    ("username", "estate", "verdict"),
    [
        ("admin", "DEMO-C", "allowed"),
        ("finance.north", "DEMO-A", "allowed"),
        ("manager.north", "DEMO-B", "allowed"),
        ("finance.north", "DEMO-C", "not found"),
        ("cs.a", "DEMO-A", "forbidden"),
        ("tech.a", "DEMO-A", "forbidden"),
        ("supervisor.north", "DEMO-A", "forbidden"),
        ("owner.a1", "DEMO-A", "forbidden"),
        (None, "DEMO-A", "unauthenticated"),
    ],
)
async def test_generate_bills_by_role(
    as_user: Any, runtime: Any, username: str | None, estate: str, verdict: str
) -> None:
    # given the demo's current month, billed already by the seed
    estates = await _estates(as_user)
    client = await as_user(username)
    before = await _bill_count(runtime, estate)
    request_id = uuid.uuid4().hex
    period = await _current_period(runtime, estate)
    # when
    response = await client.post(
        GENERATE, {"input": {"estateId": estates[estate], "period": period}}, **{"x-request-id": request_id}
    )
    body = response.json()
    # then: nothing new whoever asks (idempotent), and an audit entry only when allowed
    assert await _bill_count(runtime, estate) == before
    if verdict == "allowed":
        result = body["data"]["generateBills"]
        assert result["errors"] == []
        assert result["createdCount"] == 0
        assert result["skippedCount"] > 0
        assert await _audit_count(runtime, request_id) == 1
        return
    assert await _audit_count(runtime, request_id) == 0
    if verdict == "not found":
        assert body["data"]["generateBills"]["errors"][0]["code"] == "NOT_FOUND"
    else:
        assert body["errors"][0]["extensions"]["code"] == verdict.upper()


async def _current_period(runtime: Any, estate_code: str) -> str:
    async with runtime.sessionmaker() as session:
        period = await session.scalar(
            select(func.max(Bill.period))
            .join(Estate, Estate.id == Bill.estate_id)
            .where(Estate.code == estate_code, Bill.period.regexp_match(r"^\d{4}-\d{2}$"))
        )
    return str(period)


async def test_generate_bills_refuses_a_malformed_period(as_user: Any) -> None:
    # given
    estates = await _estates(as_user)
    finance = await as_user("finance.north")
    # when
    data = await finance.data(GENERATE, {"input": {"estateId": estates["DEMO-A"], "period": "2026-13"}})
    # then
    assert data["generateBills"]["errors"] == [
        {"field": "period", "code": "INVALID_PERIOD", "message": "A period is a month: YYYY-MM."}
    ]


FEE_ITEMS = "query { feeItems(first: 50) { edges { node { code method cycle } } } }"


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("admin", 16),  # five items in each of the three estates, and DEMO-A's repairs (RP01)
        ("finance.north", 11),
        ("cs.a", 6),
        ("tech.a", 0),
        ("supervisor.south", 0),
        ("owner.a1", 5),  # the items their unit is billed: property, garbage, water, electricity, a repair
    ],
)
async def test_fee_items_follow_the_scope(as_user: Any, username: str, expected: int) -> None:
    # given
    client = await as_user(username)
    # when
    data = await client.data(FEE_ITEMS)
    # then
    assert len(data["feeItems"]["edges"]) == expected
