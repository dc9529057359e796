"""Dunning (催缴): each step on its day, only for bills that owe, once however often the job
runs, grouped per unit, to the people who pay — in-app and by text message.

Bills here fall due in 2001, long before the demo's: a run on a 2001 day reminds only them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from billing_support import Ledger
from sqlalchemy import delete, func, or_, select
from structlog.testing import capture_logs

from authz.models import CasbinRule
from authz.rules import subject
from backend.accounts.models import User, UserKind
from backend.accounts.passwords import hash_password
from backend.billing.adjustments import void_bill, waive_bill
from backend.billing.dunning import DunningReport, remind_payers
from backend.billing.models import Bill, BillStatus, DunningNotice, DunningStep, PaymentMethod
from backend.billing.payments import pay_bills
from backend.db import to_global_id
from backend.notifications.models import Notification, SmsMessage
from backend.outbox import OutboxMessage
from backend.people.models import Occupancy, OccupancyRole, Person
from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings
from workers.tasks import run_dunning, send_sms

DUE = dt.date(2001, 3, 20)
DAYS_BEFORE_DUE = 3
DEMO_PASSWORD = "demo1234"

BILL_REMINDERS = """
query($id: ID!) { node(id: $id) { ... on Bill { id reminders { step outstanding inApp sms createdAt } } } }
"""
ESTATE_BILLS_WITH_REMINDERS = """
query($estate: ID!) { bills(first: 50, filter: {estateId: $estate}) { edges { node { id reminders { step } } } } }
"""


@dataclasses.dataclass
class Payer:
    person_id: int
    phone: str
    user_id: int
    username: str


@dataclasses.dataclass
class Household:
    """Unit 1-1-101: an owner (who also owns the parking space), family, a tenant and a former
    owner. Unit 1-1-102: let to a tenant, no owner on record."""

    owner: Payer
    family: Payer
    tenant_of_owner: Payer
    former_owner: Payer
    tenant_only: Payer

    @property
    def everyone(self) -> list[Payer]:
        return [self.owner, self.family, self.tenant_of_owner, self.former_owner, self.tenant_only]


@pytest_asyncio.fixture(loop_scope="session")
async def household(runtime: Any, ledger: Ledger) -> AsyncIterator[Household]:
    tag = uuid.uuid4().hex[:8]
    made: list[Payer] = []
    async with runtime.sessionmaker() as session, session.begin():

        async def payer(name: str, unit: int, role: OccupancyRole, start: dt.date, end: dt.date | None = None) -> Payer:
            person = Person(org_path=ledger.estate.org_path, name=name, phone=f"139{random.randrange(10**8):08d}")
            session.add(person)
            await session.flush()
            user = User(
                username=f"dun.{tag}.{len(made)}",
                password_hash=hash_password(DEMO_PASSWORD),
                kind=UserKind.RESIDENT,
                person_id=person.id,
                display_name=name,
            )
            session.add(user)
            session.add(Occupancy(unit_id=ledger.units[unit].id, person_id=person.id, role=role, start_date=start,
                                  end_date=end))  # fmt: skip
            await session.flush()
            made.append(Payer(person.id, person.phone or "", user.id, user.username))
            return made[-1]

        since = dt.date(2000, 7, 1)
        owner = await payer("业主", 0, OccupancyRole.OWNER, since)
        session.add(Occupancy(unit_id=ledger.units[2].id, person_id=owner.person_id, role=OccupancyRole.OWNER,
                              start_date=since))  # fmt: skip
        found = Household(
            owner=owner,
            family=await payer("家属", 0, OccupancyRole.FAMILY, since),
            tenant_of_owner=await payer("租户甲", 0, OccupancyRole.TENANT, since),
            former_owner=await payer("原业主", 0, OccupancyRole.OWNER, dt.date(1998, 1, 1), since),
            tenant_only=await payer("租户乙", 1, OccupancyRole.TENANT, since),
        )
    yield found
    users = [p.user_id for p in made]
    async with runtime.sessionmaker() as session, session.begin():
        notifications = select(Notification.id).where(Notification.user_id.in_(users))
        texts = select(SmsMessage.id).where(SmsMessage.phone.in_([p.phone for p in made]))
        jobs = [f"notification:{i}" for i in (await session.scalars(notifications)).all()]
        jobs += [f"sms:{i}" for i in (await session.scalars(texts)).all()]
        await session.execute(delete(OutboxMessage).where(OutboxMessage.job_id.in_(jobs)))
        await session.execute(delete(SmsMessage).where(SmsMessage.phone.in_([p.phone for p in made])))
        await session.execute(delete(Notification).where(Notification.user_id.in_(users)))
        await session.execute(delete(User).where(User.id.in_(users)))
        persons = [p.person_id for p in made]
        await session.execute(delete(Occupancy).where(Occupancy.person_id.in_(persons)))
        await session.execute(delete(Person).where(Person.id.in_(persons)))


@pytest_asyncio.fixture(loop_scope="session")
async def residents_signed_up(runtime: Any, ledger: Ledger, household: Household) -> AsyncIterator[None]:
    """The household's owner and family hold the resident role, as the app's residents do."""
    subjects = [subject(p.user_id) for p in (household.owner, household.family)]
    async with runtime.sessionmaker() as session, session.begin():
        session.add_all(CasbinRule(ptype="g", v0=s, v1="resident", v2=ledger.estate.org_path) for s in subjects)
    await runtime.policy_changed()
    yield
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(CasbinRule).where(CasbinRule.ptype == "g", CasbinRule.v0.in_(subjects)))
    await runtime.policy_changed()


async def _bill(runtime: Any, ledger: Ledger, unit: int, item: str, month: int, amount: str, due: dt.date = DUE) -> int:
    """A bill of 2001 (a quarter's for GB), issued as bill generation issues them."""
    fee_item = ledger.items[item]
    start = dt.date(2001, month, 1)
    period = f"2001-Q{(month - 1) // 3 + 1}" if item == "GB" else f"2001-{month:02d}"
    async with runtime.sessionmaker() as session, session.begin():
        bill = Bill(estate_id=ledger.estate.id, unit_id=ledger.units[unit].id, fee_item_id=fee_item.id, period=period,
                    period_start=start, period_end=start + dt.timedelta(days=27), quantity=Decimal(1),
                    rate=Decimal(amount), amount=Decimal(amount), due_date=due, status=BillStatus.UNPAID)  # fmt: skip
        session.add(bill)
        await session.flush()
        return bill.id


async def _run(runtime: Any, ledger: Ledger, today: dt.date) -> DunningReport:
    async with runtime.sessionmaker() as session, session.begin():
        return await remind_payers(
            session=session, estate_id=ledger.estate.id, today=today, days_before_due=DAYS_BEFORE_DUE
        )


async def _notices(runtime: Any, ledger: Ledger) -> list[DunningNotice]:
    async with runtime.sessionmaker() as session:
        bills = select(Bill.id).where(Bill.estate_id == ledger.estate.id)
        return list(
            (await session.scalars(select(DunningNotice).where(DunningNotice.bill_id.in_(bills)).order_by(DunningNotice.id))).all()
        )  # fmt: skip


async def _texts(runtime: Any, payer: Payer) -> list[SmsMessage]:
    async with runtime.sessionmaker() as session:
        return list(
            (await session.scalars(select(SmsMessage).where(SmsMessage.phone == payer.phone).order_by(SmsMessage.id))).all()
        )  # fmt: skip


async def _in_app(runtime: Any, payer: Payer) -> list[Notification]:
    async with runtime.sessionmaker() as session:
        return list(
            (await session.scalars(select(Notification).where(Notification.user_id == payer.user_id).order_by(Notification.id))).all()
        )  # fmt: skip


async def _footprint(runtime: Any, ledger: Ledger, household: Household) -> tuple[int, int, int, int]:
    """(notices, notifications, text messages, outbox jobs) of this ledger and household."""
    phones = [p.phone for p in household.everyone]
    users = [p.user_id for p in household.everyone]
    async with runtime.sessionmaker() as session:
        bills = select(Bill.id).where(Bill.estate_id == ledger.estate.id)
        notices = await session.scalar(select(func.count()).where(DunningNotice.bill_id.in_(bills)))
        notification_ids = (await session.scalars(select(Notification.id).where(Notification.user_id.in_(users)))).all()
        sms_ids = (await session.scalars(select(SmsMessage.id).where(SmsMessage.phone.in_(phones)))).all()
        jobs = await session.scalar(
            select(func.count()).where(
                or_(
                    OutboxMessage.job_id.in_([f"notification:{i}" for i in notification_ids]),
                    OutboxMessage.job_id.in_([f"sms:{i}" for i in sms_ids]),
                )
            )
        )
    return int(notices or 0), len(notification_ids), len(sms_ids), int(jobs or 0)


async def _admin(runtime: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(User.id).where(User.username == "admin")) or 0)


async def test_each_step_fires_on_its_day_and_not_the_day_before(
    runtime: Any, ledger: Ledger, household: Household
) -> None:
    # given
    await _bill(runtime, ledger, 0, "PF", 3, "223.90")
    # when the job runs every day from ten days before the due date to 31 days after
    fired: list[dt.date] = []
    for offset in range(-10, 32):
        day = DUE + dt.timedelta(days=offset)
        if (await _run(runtime, ledger, day)).notices:
            fired.append(day)
    # then
    assert [(day - DUE).days for day in fired] == [-DAYS_BEFORE_DUE, 0, 7, 30]
    notices = await _notices(runtime, ledger)
    assert [n.step for n in notices] == [
        DunningStep.BEFORE_DUE, DunningStep.ON_DUE, DunningStep.OVERDUE_7, DunningStep.OVERDUE_30
    ]  # fmt: skip
    assert {(n.outstanding, n.in_app, n.sms) for n in notices} == {(Decimal("223.90"), 1, 1)}
    assert [t.template for t in await _texts(runtime, household.owner)] == [
        "bill_due_soon", "bill_due", "bill_overdue", "bill_overdue_final"
    ]  # fmt: skip
    assert [n.title for n in await _in_app(runtime, household.owner)] == [
        "账单到期提醒",
        "账单到期提醒",
        "欠费提醒",
        "欠费催缴通知",
    ]


async def test_a_bill_first_seen_ten_days_overdue_is_told_it_is_overdue_only(
    runtime: Any, ledger: Ledger, household: Household
) -> None:
    # given
    await _bill(runtime, ledger, 0, "PF", 3, "223.90")
    # when
    late = await _run(runtime, ledger, DUE + dt.timedelta(days=10))
    until_day_29 = [await _run(runtime, ledger, DUE + dt.timedelta(days=d)) for d in range(11, 30)]
    # then
    assert late.notices == 1
    assert all(report.notices == 0 for report in until_day_29)
    assert [n.step for n in await _notices(runtime, ledger)] == [DunningStep.OVERDUE_7]
    assert [t.template for t in await _texts(runtime, household.owner)] == ["bill_overdue"]
    # and the 30-day step still comes on its day
    assert (await _run(runtime, ledger, DUE + dt.timedelta(days=30))).notices == 1
    assert [n.step for n in await _notices(runtime, ledger)] == [DunningStep.OVERDUE_7, DunningStep.OVERDUE_30]


async def test_paid_waived_and_void_bills_get_nothing_and_a_partly_paid_one_is_reminded_of_the_rest(
    runtime: Any, ledger: Ledger, household: Household
) -> None:
    # given four bills of 223.90, all 30 days overdue
    paid, waived, void, partly = [await _bill(runtime, ledger, 0, "PF", month, "223.90") for month in (1, 2, 3, 4)]
    actor = await _admin(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        for bill_id, amount in ((paid, "223.90"), (partly, "100.00")):
            await pay_bills(session=session, bill_ids=[bill_id], amount=Decimal(amount), method=PaymentMethod.CASH,
                            idempotency_key=f"dunning-{uuid.uuid4()}", actor_id=actor, request_id=None)  # fmt: skip
        await waive_bill(session=session, bill_id=waived, amount=Decimal("223.90"), reason="困难减免", actor_id=actor,
                         request_id=None)  # fmt: skip
        await void_bill(session=session, bill_id=void, reason="错开账单", actor_id=actor, request_id=None)
    # when
    report = await _run(runtime, ledger, DUE + dt.timedelta(days=30))
    # then
    assert (report.notices, report.groups) == (1, 1)
    notices = await _notices(runtime, ledger)
    assert [(n.bill_id, n.step, n.outstanding) for n in notices] == [
        (partly, DunningStep.OVERDUE_30, Decimal("123.90"))
    ]
    (text,) = await _texts(runtime, household.owner)
    assert "您有1笔账单（物业费(2001-04)）合计123.90元" in text.body


async def test_a_second_run_and_a_concurrent_run_remind_nobody_again(
    runtime: Any, ledger: Ledger, household: Household
) -> None:
    # given
    await _bill(runtime, ledger, 0, "PF", 3, "223.90")
    await _bill(runtime, ledger, 1, "PF", 3, "300.00")
    # when a run has taken the steps but not committed yet, a second run on another worker…
    async with runtime.sessionmaker() as session, session.begin():
        first = await remind_payers(session=session, estate_id=ledger.estate.id, today=DUE, days_before_due=3)
        second = asyncio.create_task(_run(runtime, ledger, DUE))
        await asyncio.sleep(0.5)
        # …waits on the first one's notices
        assert not second.done()
    concurrent = await second
    after_two = await _footprint(runtime, ledger, household)
    # and a retry later the same day
    retried = await _run(runtime, ledger, DUE)
    # then
    assert first.notices == 2
    assert first.notifications == first.sms == 2
    assert concurrent == DunningReport() == retried
    assert after_two == (2, 2, 2, 4)
    assert await _footprint(runtime, ledger, household) == after_two


async def test_one_message_per_unit_and_step_lists_the_bills_and_their_total_to_those_who_pay(
    runtime: Any, ledger: Ledger, household: Household
) -> None:
    # given two bills of 1-1-101, one of 1-1-102 and one of the owner's parking space
    property_fee = await _bill(runtime, ledger, 0, "PF", 3, "223.90")
    garbage = await _bill(runtime, ledger, 0, "GB", 1, "30.00")
    await _bill(runtime, ledger, 1, "PF", 3, "300.00")
    await _bill(runtime, ledger, 2, "PK", 3, "150.00")
    # when
    report = await _run(runtime, ledger, DUE)
    # then
    assert (report.notices, report.groups, report.notifications, report.sms) == (4, 3, 3, 3)
    flat, parking = await _texts(runtime, household.owner)
    assert flat.body == (
        "账单测试 1-1-101：您有2笔账单（物业费(2001-03)、垃圾费(2001-Q1)）合计253.90元，到期日为2001年3月20日，请及时缴纳。"
    )
    assert parking.body.startswith("账单测试 P-1-001：您有1笔账单（车位费(2001-03)）合计150.00元")
    assert (flat.status, flat.user_id, flat.params["amount"]) == ("QUEUED", household.owner.user_id, "253.90")
    (tenants,) = await _texts(runtime, household.tenant_only)
    assert "1-1-102" in tenants.body
    assert "合计300.00元" in tenants.body
    # the owner's in-app notifications say the same
    notifications = await _in_app(runtime, household.owner)
    assert [(n.kind, n.body) for n in notifications] == [("bill_reminder", flat.body), ("bill_reminder", parking.body)]
    assert notifications[0].data == {
        "step": "ON_DUE",
        "unitId": to_global_id("Unit", ledger.units[0].id),
        "billIds": [to_global_id("Bill", property_fee), to_global_id("Bill", garbage)],
        "amount": "253.90",
    }
    assert len(await _in_app(runtime, household.tenant_only)) == 1
    # family, a tenant of an owned unit and a former owner do not pay
    for bystander in (household.family, household.tenant_of_owner, household.former_owner):
        assert await _texts(runtime, bystander) == []
        assert await _in_app(runtime, bystander) == []
    assert {(n.step, n.in_app, n.sms) for n in await _notices(runtime, ledger)} == {(DunningStep.ON_DUE, 1, 1)}


async def test_a_long_list_names_three_bills_and_sums_them_all(
    runtime: Any, ledger: Ledger, household: Household
) -> None:
    # given four overdue bills whose total needs carrying into the hundreds
    for month, amount in ((1, "0.01"), (2, "99.99"), (3, "450.00"), (4, "450.00")):
        await _bill(runtime, ledger, 0, "PF", month, amount, due=DUE - dt.timedelta(days=5 - month))
    # when
    await _run(runtime, ledger, DUE + dt.timedelta(days=7))
    # then: one text; the due date given is the earliest
    (text,) = await _texts(runtime, household.owner)
    assert text.body == (
        "账单测试 1-1-101：您有4笔账单（物业费(2001-01)、物业费(2001-02)、物业费(2001-03)等4笔）合计1000.00元"
        "已逾期（到期日2001年3月16日），请尽快缴纳。"
    )


async def test_a_unit_nobody_pays_for_records_the_step_with_nothing_sent(runtime: Any, ledger: Ledger) -> None:
    # given a bill of a unit with no occupants
    bill_id = await _bill(runtime, ledger, 1, "PF", 3, "300.00")
    # when
    report = await _run(runtime, ledger, DUE)
    # then
    assert (report.notices, report.notifications, report.sms) == (1, 0, 0)
    assert [(n.bill_id, n.in_app, n.sms) for n in await _notices(runtime, ledger)] == [(bill_id, 0, 0)]


async def test_the_daily_job_reminds_every_estate_once_and_the_texts_go_out_with_phones_masked_in_logs(
    settings: Any, runtime: Any, ledger: Ledger, household: Household, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    await _bill(runtime, ledger, 0, "PF", 3, "223.90")
    await _bill(runtime, ledger, 1, "PF", 3, "300.00")
    worker = WorkerRuntime.build(settings)
    caplog.set_level(logging.DEBUG)
    try:
        with capture_logs() as logs:
            # when
            first = await run_dunning({"runtime": worker}, today=DUE)
            second = await run_dunning({"runtime": worker}, today=DUE)
            texts = await _texts(runtime, household.owner) + await _texts(runtime, household.tenant_only)
            outcomes = [await send_sms({"runtime": worker, "job_try": 1}, sms_id=t.id) for t in texts]
    finally:
        await worker.close()
    # then
    assert first["estates"] >= 4
    assert {k: v for k, v in first.items() if k != "estates"} == {
        "failed": 0, "notices": 2, "reminders": 2, "notifications": 2, "sms": 2
    }  # fmt: skip
    assert (second["notices"], second["sms"]) == (0, 0)
    assert outcomes == ["SENT", "SENT"]
    assert {t.status for t in await _texts(runtime, household.owner)} == {"SENT"}
    logged = repr(logs) + caplog.text
    assert "dunning.run" in logged
    for payer in household.everyone:
        assert payer.phone not in logged
    assert f"{household.owner.phone[:3]}****{household.owner.phone[-4:]}" in logged


def test_the_job_runs_daily_at_nine_company_time_once_across_workers() -> None:
    (job,) = [j for j in WorkerSettings.cron_jobs if j.name == "cron:run_dunning"]
    assert (job.day, job.hour, job.minute, job.unique) == (None, {9}, {0}, True)
    assert str(WorkerSettings.timezone) == "Asia/Shanghai"


async def test_staff_who_read_the_bill_and_its_payer_see_its_reminders_others_do_not(
    runtime: Any,
    ledger: Ledger,
    household: Household,
    residents_signed_up: None,
    as_user: Any,
    count_statements: Any,
) -> None:
    # given a bill reminded twice
    bill_id = await _bill(runtime, ledger, 0, "PF", 3, "223.90")
    await _run(runtime, ledger, DUE)
    await _run(runtime, ledger, DUE + dt.timedelta(days=7))
    gid = to_global_id("Bill", bill_id)
    # when
    finance = await (await as_user("finance.north")).data(BILL_REMINDERS, {"id": gid})
    owner = await (await as_user(household.owner.username)).data(BILL_REMINDERS, {"id": gid})
    other_owner = await (await as_user("owner.a1")).data(BILL_REMINDERS, {"id": gid})
    family = await (await as_user(household.family.username)).data(BILL_REMINDERS, {"id": gid})
    south = await (await as_user("supervisor.south")).data(BILL_REMINDERS, {"id": gid})
    # then
    reminders = finance["node"]["reminders"]
    assert [(r["step"], r["outstanding"], r["inApp"], r["sms"]) for r in reminders] == [
        ("ON_DUE", "223.90", 1, 1), ("OVERDUE_7", "223.90", 1, 1)
    ]  # fmt: skip
    assert owner["node"]["reminders"] == reminders
    assert family["node"]["reminders"] == reminders  # family see the unit's bills, as residents do
    assert other_owner["node"] is None
    assert south["node"] is None
    # and a list of bills loads every bill's reminders in one statement
    count_statements.statements.clear()
    listed = await (await as_user("finance.north")).data(
        ESTATE_BILLS_WITH_REMINDERS, {"estate": to_global_id("Estate", ledger.estate.id)}
    )
    assert [len(e["node"]["reminders"]) for e in listed["bills"]["edges"]] == [2]
    assert sum("FROM dunning_notices" in s for s in count_statements.statements) == 1
