"""Dunning (催缴): reminders to the people who pay a unit's bills, before the due date, on it,
and 7 and 30 days after.

A daily job calls :func:`remind_payers` per estate. Each bill takes at most one step a run —
the latest one whose day has come — and only if neither that step nor a later one was taken:
a bill first seen ten days overdue is reminded that it is overdue, never that it falls due
soon. The steps taken are ``dunning_notices`` rows, inserted with ON CONFLICT DO NOTHING …
RETURNING; only the rows this run inserted are reminded, in the same transaction, so a
retried or duplicated run (two workers) reminds nobody twice.

Who pays (缴费人): the unit's current owners — under the property service contract the owner
owes the fees, also when the unit is let. A unit with no current owner on record is reminded
through its current tenants. Family members are not payers. Reminders are grouped per unit
and step: one message lists the unit's bills and what they owe in total.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, String, and_, column, exists, literal, or_, select, update, values
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from backend.accounts.models import User, UserKind
from backend.billing.models import Bill, BillStatus, DunningNotice, DunningStep, FeeItem
from backend.db import to_global_id
from backend.notifications import sms
from backend.notifications.service import notify
from backend.people.models import Occupancy, OccupancyRole, Person
from backend.property.models import Estate, Unit

NOTIFICATION_KIND = "bill_reminder"
# The SMS template (and in-app title) of each step.
TEMPLATE_OF_STEP: dict[DunningStep, str] = {
    DunningStep.BEFORE_DUE: "bill_due_soon",
    DunningStep.ON_DUE: "bill_due",
    DunningStep.OVERDUE_7: "bill_overdue",
    DunningStep.OVERDUE_30: "bill_overdue_final",
}
ITEMS_LISTED = 3  # bills named in one message; more are summed up as "等N笔"


def step_offsets(days_before_due: int) -> list[tuple[DunningStep, int]]:
    """Each step, in order, with its day relative to the due date."""
    return [
        (DunningStep.BEFORE_DUE, -days_before_due),
        (DunningStep.ON_DUE, 0),
        (DunningStep.OVERDUE_7, 7),
        (DunningStep.OVERDUE_30, 30),
    ]


@dataclass(slots=True)
class DunningReport:
    notices: int = 0  # bill steps taken
    groups: int = 0  # (unit, step) reminders
    notifications: int = 0
    sms: int = 0


@dataclass(slots=True)
class _Reminder:
    """One unit's bills that reached one step in this run."""

    step: DunningStep
    unit_id: int
    unit_code: str
    estate_name: str
    notice_ids: list[int] = field(default_factory=list)
    bills: list[tuple[int, str, str, dt.date, Decimal]] = field(default_factory=list)  # id, item, period, due, owed

    @property
    def total(self) -> Decimal:
        return sum((owed for *_, owed in self.bills), Decimal("0.00"))

    def params(self) -> dict[str, str]:
        listed = [f"{item}({period})" for _, item, period, _, _ in self.bills[:ITEMS_LISTED]]
        items = "、".join(listed) + (f"等{len(self.bills)}笔" if len(self.bills) > ITEMS_LISTED else "")
        due = min(due for _, _, _, due, _ in self.bills)
        return {
            "estate": self.estate_name,
            "unit": self.unit_code,
            "count": str(len(self.bills)),
            "items": items,
            "amount": f"{self.total:.2f}",
            "due_date": f"{due.year}年{due.month}月{due.day}日",
        }


@dataclass(slots=True)
class _Payers:
    users: set[int] = field(default_factory=set)  # resident accounts
    phones: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # phone → (person, their account)


async def remind_payers(
    *, session: AsyncSession, estate_id: int, today: dt.date, days_before_due: int
) -> DunningReport:
    """Take today's dunning steps for the estate's bills and remind their payers, in the
    caller's transaction."""
    reminders = await _take_steps(session, estate_id=estate_id, today=today, days_before_due=days_before_due)
    report = DunningReport(notices=sum(len(r.notice_ids) for r in reminders), groups=len(reminders))
    if not reminders:
        return report
    payers = await _payers(session, unit_ids={r.unit_id for r in reminders}, today=today)
    counts: list[dict[str, Any]] = []
    for reminder in reminders:
        in_app, texts = await _remind(session, reminder, payers.get(reminder.unit_id, _Payers()))
        report.notifications += in_app
        report.sms += texts
        counts.extend({"id": notice_id, "in_app": in_app, "sms": texts} for notice_id in reminder.notice_ids)
    await session.execute(update(DunningNotice), counts)
    return report


def _steps(days_before_due: int, name: str) -> Any:
    """The steps as a VALUES table (step, rank, offset_days) to join bills with."""
    return values(column("step", String), column("rank", Integer), column("offset_days", Integer), name=name).data(
        [(step.name, rank, offset) for rank, (step, offset) in enumerate(step_offsets(days_before_due))]
    )


async def _take_steps(
    session: AsyncSession, *, estate_id: int, today: dt.date, days_before_due: int
) -> list[_Reminder]:
    """Insert the notices due today (one statement) and return them grouped per unit and step."""
    steps = _steps(days_before_due, "steps")
    taken_steps = _steps(days_before_due, "taken_steps")
    owed = Bill.amount + Bill.charged_amount - Bill.paid_amount - Bill.waived_amount
    owing = (
        select(Bill.id.label("bill_id"), Bill.due_date, owed.label("outstanding"))
        .where(
            Bill.estate_id == estate_id,
            Bill.status.in_((BillStatus.UNPAID, BillStatus.PARTIAL)),
            Bill.due_date <= today + dt.timedelta(days=days_before_due),
        )
        .subquery("owing")
    )
    latest = (  # the latest step each owing bill has reached today
        select(owing.c.bill_id, steps.c.step, steps.c.rank, owing.c.outstanding)
        .ext(distinct_on(owing.c.bill_id))
        .join(steps, owing.c.due_date + steps.c.offset_days <= literal(today))
        .where(owing.c.outstanding > 0)
        .order_by(owing.c.bill_id, steps.c.rank.desc())
        .subquery("latest")
    )
    already_there = exists().where(
        DunningNotice.bill_id == latest.c.bill_id,
        DunningNotice.step == taken_steps.c.step,
        taken_steps.c.rank >= latest.c.rank,
    )
    due = (
        select(latest.c.bill_id, latest.c.step, latest.c.outstanding, literal(0), literal(0))
        .where(~already_there)
        .order_by(latest.c.bill_id)  # one insertion order: concurrent runs wait, never deadlock
    )
    inserted = (
        insert(DunningNotice)
        .from_select(["bill_id", "step", "outstanding", "in_app", "sms"], due)
        .on_conflict_do_nothing(index_elements=["bill_id", "step"])
        .returning(DunningNotice.id, DunningNotice.bill_id, DunningNotice.step, DunningNotice.outstanding)
        .cte("inserted")
    )
    rows = await session.execute(
        select(
            inserted.c.id,
            inserted.c.step,
            inserted.c.outstanding,
            Bill.id,
            Bill.unit_id,
            Bill.period,
            Bill.due_date,
            FeeItem.name,
            Unit.code,
            Estate.name,
        )
        .join(Bill, Bill.id == inserted.c.bill_id)
        .join(FeeItem, FeeItem.id == Bill.fee_item_id)
        .join(Unit, Unit.id == Bill.unit_id)
        .join(Estate, Estate.id == Bill.estate_id)
        .order_by(Bill.unit_id, inserted.c.step, Bill.due_date, Bill.id)
    )
    grouped: dict[tuple[int, DunningStep], _Reminder] = {}
    for notice_id, step, outstanding, bill_id, unit_id, period, due_date, item, unit_code, estate in rows:
        reminder = grouped.setdefault((unit_id, step), _Reminder(step, unit_id, unit_code, estate))
        reminder.notice_ids.append(notice_id)
        reminder.bills.append((bill_id, item, period, due_date, Decimal(outstanding)))
    return list(grouped.values())


async def _payers(session: AsyncSession, *, unit_ids: set[int], today: dt.date) -> dict[int, _Payers]:
    """The payers of each unit on ``today``: their resident accounts and phone numbers."""

    def current(occupancy: type[Occupancy] | Any) -> Any:
        return and_(occupancy.start_date <= today, or_(occupancy.end_date.is_(None), occupancy.end_date > today))

    owner = aliased(Occupancy)
    has_owner = exists().where(owner.unit_id == Occupancy.unit_id, owner.role == OccupancyRole.OWNER, current(owner))
    rows = await session.execute(
        select(Occupancy.unit_id, Person.id, Person.phone, User.id)
        .join(Person, Person.id == Occupancy.person_id)
        .outerjoin(User, and_(User.person_id == Person.id, User.kind == UserKind.RESIDENT, User.is_active))
        .where(
            Occupancy.unit_id.in_(unit_ids),
            current(Occupancy),
            or_(
                Occupancy.role == OccupancyRole.OWNER,
                and_(Occupancy.role == OccupancyRole.TENANT, ~has_owner),
            ),
        )
        .order_by(Occupancy.unit_id, Person.id, User.id)
    )
    payers: dict[int, _Payers] = defaultdict(_Payers)
    for unit_id, person_id, phone, user_id in rows:
        unit = payers[unit_id]
        if user_id is not None:
            unit.users.add(user_id)
        if phone:  # two payers sharing a number get one text
            unit.phones.setdefault(phone, (person_id, user_id))
    return payers


async def _remind(session: AsyncSession, reminder: _Reminder, payers: _Payers) -> tuple[int, int]:
    """One in-app notification per payer account and one text per payer phone; returns how
    many of each were written. Keys hang on the group's first notice: new for every run."""
    template = TEMPLATE_OF_STEP[reminder.step]
    params = reminder.params()
    body = sms.render(template, params)
    data = {
        "step": reminder.step.name,
        "unitId": to_global_id("Unit", reminder.unit_id),
        "billIds": [to_global_id("Bill", bill_id) for bill_id, *_ in reminder.bills],
        "amount": params["amount"],
    }
    key = f"dunning:{reminder.notice_ids[0]}"
    in_app = texts = 0
    for account in sorted(payers.users):
        written = await notify(
            session,
            user_id=account,
            kind=NOTIFICATION_KIND,
            title=sms.TEMPLATES[template].title,
            body=body,
            data=data,
            dedup_key=f"{key}:user:{account}",
        )
        in_app += written is not None
    for phone, (person_id, user_id) in payers.phones.items():
        queued = await sms.queue_sms(
            session,
            phone=phone,
            template=template,
            params=params,
            dedup_key=f"{key}:person:{person_id}",
            user_id=user_id,
        )
        texts += queued is not None
    return in_app, texts
