"""createFeeItem, setFeeRate, bindFeeItem: what finance sets up before bills can be made."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from backend.audit.models import AuditEntry
from backend.billing.models import Bill, FeeBinding, FeeItem, FeeRate
from backend.billing.service import generate_bills
from backend.property.models import Estate

ESTATES = 'query { estates(first: 5, filter: {codePrefix: "DEMO-"}) { edges { node { id code } } } }'

CREATE = """
mutation($input: CreateFeeItemInput!) {
  createFeeItem(input: $input) {
    feeItem { id code name method cycle currentRate rates { rate effectiveFrom } }
    errors { field code message }
  }
}
"""
SET_RATE = """
mutation($input: SetFeeRateInput!) {
  setFeeRate(input: $input) { feeItem { currentRate rates { rate effectiveFrom } } errors { field code } }
}
"""
BIND = """
mutation($input: BindFeeItemInput!) { bindFeeItem(input: $input) { boundCount skippedCount errors { field code } } }
"""
UNBIND = """
mutation($input: UnbindFeeItemInput!) {
  unbindFeeItem(input: $input) { endedCount skippedCount errors { field code } }
}
"""


async def _estate_ids(as_user: Any) -> dict[str, str]:
    admin = await as_user("admin")
    return {e["node"]["code"]: e["node"]["id"] for e in (await admin.data(ESTATES))["estates"]["edges"]}


def _new_item(estate_id: str, code: str) -> dict[str, Any]:
    return {
        "input": {
            "estateId": estate_id,
            "code": code,
            "name": "电梯运行费",
            "kind": "OTHER",
            "method": "PER_AREA",
            "cycle": "MONTHLY",
            "rate": "0.3500",
            "effectiveFrom": "2026-01-01",
        }
    }


async def _cleanup(runtime: Any, code: str) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        ids = select(FeeItem.id).where(FeeItem.code == code)
        await session.execute(delete(FeeBinding).where(FeeBinding.fee_item_id.in_(ids)))
        await session.execute(delete(FeeRate).where(FeeRate.fee_item_id.in_(ids)))
        await session.execute(delete(FeeItem).where(FeeItem.code == code))


async def test_finance_sets_up_a_fee_item_and_binds_a_usage(as_user: Any, runtime: Any) -> None:
    # given
    estates = await _estate_ids(as_user)
    finance = await as_user("finance.north")
    code = f"EL{uuid.uuid4().hex[:6].upper()}"
    try:
        # when
        created = await finance.data(CREATE, _new_item(estates["DEMO-A"], code))
        item = created["createFeeItem"]["feeItem"]
        rated = await finance.data(
            SET_RATE, {"input": {"feeItemId": item["id"], "rate": "0.4000", "effectiveFrom": "2030-01-01"}}
        )
        again = await finance.data(
            SET_RATE, {"input": {"feeItemId": item["id"], "rate": "0.5000", "effectiveFrom": "2030-01-01"}}
        )
        bound = await finance.data(
            BIND, {"input": {"feeItemId": item["id"], "startDate": "2026-01-01", "usage": "RESIDENTIAL"}}
        )
        rebound = await finance.data(
            BIND, {"input": {"feeItemId": item["id"], "startDate": "2026-06-01", "usage": "RESIDENTIAL"}}
        )
        # then
        assert created["createFeeItem"]["errors"] == []
        assert (item["code"], item["currentRate"]) == (code, "0.3500")
        assert rated["setFeeRate"]["feeItem"]["currentRate"] == "0.3500"  # the new rate starts in 2030
        assert [r["rate"] for r in rated["setFeeRate"]["feeItem"]["rates"]] == ["0.3500", "0.4000"]
        assert [e["code"] for e in again["setFeeRate"]["errors"]] == ["RATE_EXISTS"]
        residential = await _count_units(runtime, "DEMO-A", "RESIDENTIAL")
        assert bound["bindFeeItem"] == {"boundCount": residential, "skippedCount": 0, "errors": []}
        assert rebound["bindFeeItem"] == {"boundCount": 0, "skippedCount": residential, "errors": []}
    finally:
        await _cleanup(runtime, code)


async def _count_units(runtime: Any, estate: str, usage: str) -> int:
    from backend.property.models import Unit, UnitUsage

    async with runtime.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Unit)
                .join(Estate)
                .where(Estate.code == estate, Unit.usage == UnitUsage[usage])
            )
            or 0
        )


@pytest.mark.parametrize(
    ("username", "estate", "verdict"),
    [
        ("manager.north", "DEMO-B", "allowed"),
        ("admin", "DEMO-C", "allowed"),
        ("finance.north", "DEMO-C", "not found"),
        ("cs.a", "DEMO-A", "FORBIDDEN"),
        ("tech.a", "DEMO-A", "FORBIDDEN"),
        ("owner.a1", "DEMO-A", "FORBIDDEN"),
        (None, "DEMO-A", "UNAUTHENTICATED"),
    ],
)
async def test_create_fee_item_by_role(
    as_user: Any, runtime: Any, username: str | None, estate: str, verdict: str
) -> None:
    # given
    estates = await _estate_ids(as_user)
    client = await as_user(username)
    code = f"RL{uuid.uuid4().hex[:6].upper()}"
    request_id = uuid.uuid4().hex
    try:
        # when
        body = (await client.post(CREATE, _new_item(estates[estate], code), **{"x-request-id": request_id})).json()
        # then
        async with runtime.sessionmaker() as session:
            items = await session.scalar(select(func.count()).where(FeeItem.code == code))
            audits = await session.scalar(select(func.count()).where(AuditEntry.request_id == request_id))
        if verdict == "allowed":
            assert body["data"]["createFeeItem"]["errors"] == []
            assert (items, audits) == (1, 1)
        else:
            assert (items, audits) == (0, 0)
            if verdict == "not found":
                assert body["data"]["createFeeItem"]["errors"][0]["code"] == "NOT_FOUND"
            else:
                assert body["errors"][0]["extensions"]["code"] == verdict
    finally:
        await _cleanup(runtime, code)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("code", "pf 01", "INVALID_CODE"),
        ("rate", "-1", "INVALID_RATE"),
        ("rate", "0.12345", "INVALID_RATE"),
        ("dueDay", 31, "INVALID_DUE_DAY"),
        ("cycle", "QUARTERLY", "INVALID_CYCLE"),  # with METERED below: meters are read monthly
        ("tiers", [{"upTo": "20", "price": "3"}, {"price": "4.5"}], "INVALID_TIERS"),  # PER_AREA in tiers
    ],
)
async def test_a_bad_fee_item_is_refused(as_user: Any, field: str, value: Any, code: str) -> None:
    estates = await _estate_ids(as_user)
    finance = await as_user("finance.north")
    variables = _new_item(estates["DEMO-A"], "BAD1")
    variables["input"][field] = value
    if field == "cycle":
        variables["input"]["method"] = "METERED"
    data = await finance.data(CREATE, variables)
    assert [e["code"] for e in data["createFeeItem"]["errors"]] == [code]


FEE_ITEM_OF = """
query($estate: ID!) { feeItems(first: 1, filter: {estateId: $estate}) { edges { node { id } } } }
"""


@pytest.mark.parametrize(
    ("username", "estate", "verdict"),
    [("finance.north", "DEMO-C", "NOT_FOUND"), ("cs.a", "DEMO-A", "FORBIDDEN"), ("tech.a", "DEMO-A", "FORBIDDEN")],
)
async def test_rates_and_bindings_change_only_in_scope(
    as_user: Any, runtime: Any, username: str, estate: str, verdict: str
) -> None:
    # given a demo fee item
    estates = await _estate_ids(as_user)
    admin = await as_user("admin")
    item_id = (await admin.data(FEE_ITEM_OF, {"estate": estates[estate]}))["feeItems"]["edges"][0]["node"]["id"]
    client = await as_user(username)
    async with runtime.sessionmaker() as session:
        rates_before = await session.scalar(select(func.count()).select_from(FeeRate))
        bindings_before = await session.scalar(select(func.count()).select_from(FeeBinding))
        open_before = await session.scalar(select(func.count()).where(FeeBinding.end_date.is_(None)))
    # when
    rate = await client.post(
        SET_RATE, {"input": {"feeItemId": item_id, "rate": "9.0000", "effectiveFrom": "2031-01-01"}}
    )
    bind = await client.post(BIND, {"input": {"feeItemId": item_id, "startDate": "2031-01-01", "usage": "STORAGE"}})
    unbind = await client.post(UNBIND, {"input": {"feeItemId": item_id, "endDate": "2031-01-01"}})
    # then
    for response, field in ((rate, "setFeeRate"), (bind, "bindFeeItem"), (unbind, "unbindFeeItem")):
        body = response.json()
        if verdict == "NOT_FOUND":
            assert body["data"][field]["errors"][0]["code"] == "NOT_FOUND"
        else:
            assert body["errors"][0]["extensions"]["code"] == verdict
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(FeeRate)) == rates_before
        assert await session.scalar(select(func.count()).select_from(FeeBinding)) == bindings_before
        assert await session.scalar(select(func.count()).where(FeeBinding.end_date.is_(None))) == open_before


async def test_an_ended_binding_bills_up_to_its_end_and_no_further(as_user: Any, runtime: Any, ledger: Any) -> None:
    # given the parking space bound to PK since January
    parking = ledger.units[2]
    finance = await as_user("finance.north")
    # when it is given up from December, then again (nothing left to end)
    variables = {"input": {"feeItemId": ledger.items["PK"].gid, "endDate": "2026-12-01", "unitIds": [parking.gid]}}
    ended = (await finance.data(UNBIND, variables))["unbindFeeItem"]
    again = (await finance.data(UNBIND, variables))["unbindFeeItem"]
    for month in (dt.date(2026, 11, 1), dt.date(2026, 12, 1)):
        async with runtime.sessionmaker() as session, session.begin():
            await generate_bills(session=session, estate=ledger.estate, month=month, actor_id=None, request_id=None)
    # then November is billed, December is not
    assert ended == {"endedCount": 1, "skippedCount": 0, "errors": []}
    assert again == {"endedCount": 0, "skippedCount": 1, "errors": []}
    async with runtime.sessionmaker() as session:
        periods = (
            await session.scalars(select(Bill.period).where(Bill.unit_id == parking.id).order_by(Bill.period))
        ).all()
        audited = await session.scalar(
            select(func.count()).where(
                AuditEntry.action == "fee_item.unbind", AuditEntry.target_id == str(ledger.items["PK"].id)
            )
        )
    assert periods == ["2026-11"]
    assert audited == 2
