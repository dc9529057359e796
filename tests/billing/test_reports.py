"""billingSummary (收缴率) and arrearsAging (账龄分析): exact figures, and who may see them."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from billing_support import Ledger
from sqlalchemy import select

from backend.accounts.models import User
from backend.billing import reports
from backend.billing.models import Bill, BillLine, BillLineKind, PaymentMethod
from backend.billing.payments import pay_bills
from backend.billing.service import generate_bills
from backend.db import local_today, to_global_id

SUMMARY = """
query($estate: ID!, $period: String!) {
  billingSummary(estateId: $estate, period: $period) {
    period billed collected waived outstanding collectionRate
    buildings { building { code } billed collected outstanding }
  }
}
"""
AGING = "query($estate: ID!) { arrearsAging(estateId: $estate) { asOf buckets { label amount units } } }"
ESTATES = 'query { estates(first: 5, filter: {codePrefix: "DEMO-"}) { edges { node { id code } } } }'


async def _prepare(runtime: Any, ledger: Ledger) -> None:
    """October and November billed; 100.00 paid on the flat's November fee; 20.00 waived
    on the big flat's."""
    async with runtime.sessionmaker() as session, session.begin():
        for month in (dt.date(2026, 10, 1), dt.date(2026, 11, 1)):
            await generate_bills(session=session, estate=ledger.estate, month=month, actor_id=None, request_id=None)
    flat, big, _parking = ledger.units
    async with runtime.sessionmaker() as session, session.begin():
        pf = ledger.items["PF"].id
        november = {
            b.unit_id: b
            for b in await session.scalars(select(Bill).where(Bill.fee_item_id == pf, Bill.period == "2026-11"))
        }
        admin = await session.scalar(select(User.id).where(User.username == "admin"))
        assert admin is not None
        await pay_bills(
            session=session,
            bill_ids=[november[flat.id].id],
            amount=Decimal("100.00"),
            method=PaymentMethod.CARD,
            idempotency_key=uuid.uuid4().hex,
            actor_id=admin,
            request_id=None,
        )
        session.add(BillLine(bill_id=november[big.id].id, kind=BillLineKind.WAIVER, amount=Decimal("20.00")))


async def test_the_months_summary_is_exact(runtime: Any, ledger: Ledger) -> None:
    # given
    await _prepare(runtime, ledger)
    # when
    async with runtime.sessionmaker() as session:
        total, buildings = await reports.billing_summary(
            session, estate_id=ledger.estate.id, month=dt.date(2026, 11, 1)
        )
    # then: 223.90 + 300.00 (property fee) + 150.00 (parking)
    assert (total.billed, total.collected, total.waived, total.outstanding) == (
        Decimal("673.90"),
        Decimal("100.00"),
        Decimal("20.00"),
        Decimal("553.90"),
    )
    assert total.collection_rate == Decimal("0.1529")  # 100.00 / 653.90
    assert [b.summary for b in buildings] == [total]
    # a month without waivers or payments still reads in cents
    async with runtime.sessionmaker() as session:
        october, _ = await reports.billing_summary(session, estate_id=ledger.estate.id, month=dt.date(2026, 10, 1))
    assert (str(october.waived), str(october.collected)) == ("0.00", "0.00")


async def test_arrears_are_bucketed_by_days_past_due(runtime: Any, ledger: Ledger) -> None:
    # given
    await _prepare(runtime, ledger)
    # when: as of 24 November 2026
    async with runtime.sessionmaker() as session:
        buckets = await reports.arrears_aging(session, estate_id=ledger.estate.id, today=dt.date(2026, 11, 24))
    # then: October's property fees (due 28 Oct) and November's parking (due 5 Nov) are
    # under 30 days; October's garbage (due 10 Oct) and parking (due 5 Oct) 31-60
    assert [(b.label, b.amount, b.units) for b in buckets] == [
        ("0-30", Decimal("673.90"), 3),
        ("31-60", Decimal("210.00"), 3),
        ("61-90", Decimal("0.00"), 0),
        ("91-180", Decimal("0.00"), 0),
        (">180", Decimal("0.00"), 0),
    ]


@pytest.mark.parametrize(
    ("username", "estate", "verdict"),
    [
        ("finance.north", "DEMO-A", "seen"),
        ("manager.north", "DEMO-B", "seen"),
        ("cs.a", "DEMO-A", "seen"),
        ("admin", "DEMO-C", "seen"),
        ("finance.north", "DEMO-C", "null"),
        ("tech.a", "DEMO-A", "FORBIDDEN"),
        ("supervisor.north", "DEMO-A", "FORBIDDEN"),
        ("owner.a1", "DEMO-A", "FORBIDDEN"),
        (None, "DEMO-A", "UNAUTHENTICATED"),
    ],
)
async def test_reports_by_role(as_user: Any, username: str | None, estate: str, verdict: str) -> None:
    # given
    admin = await as_user("admin")
    estates = {e["node"]["code"]: e["node"]["id"] for e in (await admin.data(ESTATES))["estates"]["edges"]}
    client = await as_user(username)
    month = local_today().replace(day=1) - dt.timedelta(days=1)  # last month: billed in the demo
    # when
    summary = await client.execute(SUMMARY, {"estate": estates[estate], "period": f"{month:%Y-%m}"})
    aging = await client.execute(AGING, {"estate": estates[estate]})
    # then
    if verdict == "seen":
        assert Decimal(summary["data"]["billingSummary"]["billed"]) > 0
        assert len(summary["data"]["billingSummary"]["buildings"]) > 1
        assert [b["label"] for b in aging["data"]["arrearsAging"]["buckets"]] == [
            "0-30",
            "31-60",
            "61-90",
            "91-180",
            ">180",
        ]
    elif verdict == "null":
        assert summary == {"data": {"billingSummary": None}}
        assert aging == {"data": {"arrearsAging": None}}
    else:
        assert summary["errors"][0]["extensions"]["code"] == verdict
        assert aging["errors"][0]["extensions"]["code"] == verdict


async def test_a_malformed_period_is_bad_input(as_user: Any) -> None:
    finance = await as_user("finance.north")
    body = await finance.execute(SUMMARY, {"estate": to_global_id("Estate", 1), "period": "2026-13"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
