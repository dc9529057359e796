"""setTicketCategory: a company's categories are its own list — added, renamed, retired."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from backend.audit.models import AuditEntry
from backend.tickets.models import TicketCategory

SET = """
mutation($input: SetTicketCategoryInput!) {
  setTicketCategory(input: $input) { category { code name active } errors { field code } }
}
"""
LIST = "query($estate: ID!) { ticketCategories(estateId: $estate) { code name } }"
ESTATES = "{ estates(first: 10) { edges { node { id code } } } }"


async def _demo_a(as_user: Any) -> str:
    edges = (await (await as_user("admin")).data(ESTATES))["estates"]["edges"]
    return str(next(e["node"]["id"] for e in edges if e["node"]["code"] == "DEMO-A"))


async def _remove(runtime: Any, code: str) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(TicketCategory).where(TicketCategory.code == code))


async def test_a_new_category_is_offered_renamed_and_retired(as_user: Any, runtime: Any) -> None:
    # given
    code = f"parking_{uuid.uuid4().hex[:6]}"
    admin = await as_user("admin")
    estate = await _demo_a(as_user)
    try:
        # when it is added, renamed, then retired
        added = (await admin.data(SET, {"input": {"code": code, "name": "停车"}}))["setTicketCategory"]
        offered = (await (await as_user("owner.a1")).data(LIST, {"estate": estate}))["ticketCategories"]
        renamed = (await admin.data(SET, {"input": {"code": code, "name": "停车管理"}}))["setTicketCategory"]
        retired = await admin.data(SET, {"input": {"code": code, "name": "停车管理", "active": False}})
        after = (await (await as_user("owner.a1")).data(LIST, {"estate": estate}))["ticketCategories"]
        # then
        assert added == {"category": {"code": code, "name": "停车", "active": True}, "errors": []}
        assert {"code": code, "name": "停车"} in offered
        assert renamed["category"]["name"] == "停车管理"
        assert retired["setTicketCategory"]["category"]["active"] is False
        assert code not in [c["code"] for c in after]
        assert {"code": "plumbing", "name": "水路管道"} in after  # the defaults stay
        async with runtime.sessionmaker() as session:
            rows = await session.scalar(select(func.count()).where(TicketCategory.code == code))
            audited = await session.scalar(select(func.count()).where(AuditEntry.action == "ticket.category.set",
                                                                      AuditEntry.detail["code"].astext == code))  # fmt: skip
        assert (rows, audited) == (1, 3)
    finally:
        await _remove(runtime, code)


@pytest.mark.parametrize(("username", "code"), [
    ("manager.north", "FORBIDDEN"), ("cs.a", "FORBIDDEN"), ("tech.a", "FORBIDDEN"), ("owner.a1", "FORBIDDEN"),
    (None, "UNAUTHENTICATED"),
])  # fmt: skip
async def test_only_the_company_changes_its_categories(
    as_user: Any, runtime: Any, username: str | None, code: str
) -> None:
    # given
    new = f"x_{uuid.uuid4().hex[:6]}"
    # when
    body = await (await as_user(username)).execute(SET, {"input": {"code": new, "name": "X"}})
    # then
    assert body["errors"][0]["extensions"]["code"] == code
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(TicketCategory.code == new)) == 0


@pytest.mark.parametrize(("value", "field"), [("Plumbing Two", "code"), ("a", "code"), ("", "name")])
async def test_a_bad_category_is_refused(as_user: Any, runtime: Any, value: str, field: str) -> None:
    # given
    variables = {"code": "valid_code_zz", "name": "名字"} | {field: value}
    # when
    body = (await (await as_user("admin")).data(SET, {"input": variables}))["setTicketCategory"]
    # then
    assert body == {"category": None, "errors": [{"field": field, "code": "INVALID_INPUT"}]}
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(TicketCategory.code == "valid_code_zz")) == 0
