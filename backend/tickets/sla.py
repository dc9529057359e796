"""SLA enforcement: overdue tickets are escalated step by step, resolved ones close themselves.

Two deadlines per ticket, set when it is opened (backend.tickets.service.deadlines):

- RESPONSE: nobody has started the work (``started_at`` is empty) by ``response_due_at``;
- RESOLUTION: the ticket is still open (NEW, ASSIGNED, IN_PROGRESS, ON_HOLD) at ``resolve_due_at``.

Each missed deadline takes up to three steps, counted from the deadline itself:

    level 1 at the deadline            → OVERDUE event; the assignee is told (unassigned: the
                                         office's customer service)
    level 2 one interval later         → ESCALATED event; the office's manager(s)
    level 3 two intervals later        → ESCALATED event; the branch's manager(s)

(the interval is ``WUYE_TICKET_ESCALATION_INTERVAL_MINUTES``). A step is a
``ticket_escalations`` row, unique per (ticket, deadline, level), inserted with ON CONFLICT DO
NOTHING … RETURNING; only the steps this run inserted are announced, in the same transaction,
so a retried, duplicated or concurrent run takes and announces each step once. A run that
finds a ticket long overdue takes all the steps due at once. Managers are the users holding
the ``manager`` role at exactly that org unit; nobody there → the step is recorded with no
one notified.

Resolved tickets nobody rated close themselves 7 days after their resolution.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, and_, column, exists, or_, select, update, values
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from authz.models import CasbinRule
from backend.accounts.models import User
from backend.db import local_timezone, to_global_id
from backend.notifications import sms
from backend.notifications.service import notify
from backend.people.models import Person
from backend.property.models import Estate, OrgUnit
from backend.tickets.lifecycle import OPEN_STATUSES, Action, transition
from backend.tickets.models import Ticket, TicketEscalation, TicketEvent, TicketEventType, TicketStatus

RESPONSE = "RESPONSE"
RESOLUTION = "RESOLUTION"
LEVELS = (1, 2, 3)
AUTO_CLOSE_AFTER = dt.timedelta(days=7)
AUTO_CLOSE_NOTE = "7天未评价自动关闭"
DEADLINE_WORDS = {RESPONSE: "响应", RESOLUTION: "完成"}
STEPS_PER_RUN = 1000


@dataclass(slots=True)
class EscalationReport:
    overdue: int = 0  # level-1 steps taken
    escalated: int = 0  # level-2 and level-3 steps taken
    notifications: int = 0
    sms: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "overdue": self.overdue,
            "escalated": self.escalated,
            "notifications": self.notifications,
            "sms": self.sms,
        }


@dataclass(frozen=True, slots=True)
class _Step:
    escalation_id: int
    ticket_id: int
    deadline: str
    level: int


@dataclass(frozen=True, slots=True)
class _TicketFacts:
    number: str
    title: str
    place: str
    assignee_id: int | None
    response_due_at: dt.datetime
    resolve_due_at: dt.datetime
    office_path: str
    branch_path: str | None

    def due_at(self, deadline: str) -> dt.datetime:
        return self.response_due_at if deadline == RESPONSE else self.resolve_due_at


async def escalate_overdue(
    session: AsyncSession, *, now: dt.datetime, interval: dt.timedelta, estate_id: int | None = None
) -> EscalationReport:
    """Take the SLA steps due at ``now`` (in one estate, or all) and tell whom each concerns,
    in the caller's transaction."""
    steps = await _take_steps(session, now=now, interval=interval, estate_id=estate_id)
    report = EscalationReport()
    if not steps:
        return report
    facts = await _ticket_facts(session, {s.ticket_id for s in steps})
    staff = await _staff_at(
        session, {f.office_path for f in facts.values()} | {f.branch_path for f in facts.values() if f.branch_path}
    )
    recipients = {step: _recipients(step, facts[step.ticket_id], staff) for step in steps}
    phones = await _phones(session, {u for users in recipients.values() for u in users})
    notified: list[dict[str, Any]] = []
    for step in steps:
        users = recipients[step]
        session.add(_event(step, facts[step.ticket_id], users))
        if step.level == 1:
            report.overdue += 1
        else:
            report.escalated += 1
        await _announce(session, step, facts[step.ticket_id], {u: phones.get(u) for u in users}, report)
        notified.append({"id": step.escalation_id, "notified_user_ids": users})
    await session.execute(update(TicketEscalation), notified)
    return report


async def _announce(
    session: AsyncSession, step: _Step, ticket: _TicketFacts, users: dict[int, str | None], report: EscalationReport
) -> None:
    """Tell each user (user id → phone) of the step in the app and, with a phone, by SMS."""
    template = "ticket_overdue" if step.level == 1 else "ticket_escalated"
    params = {
        "number": ticket.number,
        "title": ticket.title,
        "place": ticket.place,
        "deadline": DEADLINE_WORDS[step.deadline],
        "due_at": f"{ticket.due_at(step.deadline).astimezone(local_timezone()):%m-%d %H:%M}",
    }
    data = {"ticketId": to_global_id("Ticket", step.ticket_id), "number": ticket.number,
            "deadline": step.deadline, "level": step.level}  # fmt: skip
    for user_id, phone in users.items():
        dedup = f"ticket_escalation:{step.escalation_id}:{user_id}"
        title, body = sms.TEMPLATES[template].title, sms.render(template, params)
        if await notify(session, user_id=user_id, kind=template, title=title, body=body, data=data, dedup_key=dedup):
            report.notifications += 1
        if phone and await sms.queue_sms(
            session, phone=phone, template=template, params=params, dedup_key=dedup, user_id=user_id
        ):
            report.sms += 1


async def _take_steps(
    session: AsyncSession, *, now: dt.datetime, interval: dt.timedelta, estate_id: int | None
) -> list[_Step]:
    """Insert the steps due at ``now`` not taken yet (one statement); the ones this run took."""
    steps = values(column("deadline", String), column("level", Integer), name="steps").data(
        [(deadline, level) for deadline in (RESPONSE, RESOLUTION) for level in LEVELS]
    )
    delay = (steps.c.level - 1) * interval  # level n is due n - 1 intervals after the deadline
    due_at = or_(
        and_(steps.c.deadline == RESPONSE, Ticket.started_at.is_(None), Ticket.response_due_at + delay <= now),
        and_(steps.c.deadline == RESOLUTION, Ticket.resolve_due_at + delay <= now),
    )
    taken = exists().where(
        TicketEscalation.ticket_id == Ticket.id,
        TicketEscalation.deadline == steps.c.deadline,
        TicketEscalation.level == steps.c.level,
    )
    candidates = (
        select(Ticket.id, steps.c.deadline, steps.c.level)
        .join(steps, due_at)
        .where(Ticket.status.in_(OPEN_STATUSES), ~taken)
        .order_by(Ticket.id, steps.c.deadline, steps.c.level)
        .limit(STEPS_PER_RUN)
    )
    if estate_id is not None:
        candidates = candidates.where(Ticket.estate_id == estate_id)
    rows = await session.execute(
        insert(TicketEscalation)
        .from_select(["ticket_id", "deadline", "level"], candidates)
        .on_conflict_do_nothing(index_elements=["ticket_id", "deadline", "level"])
        .returning(TicketEscalation.id, TicketEscalation.ticket_id, TicketEscalation.deadline, TicketEscalation.level)
    )
    return sorted((_Step(*row) for row in rows), key=lambda s: (s.ticket_id, s.deadline, s.level))


async def _ticket_facts(session: AsyncSession, ticket_ids: set[int]) -> dict[int, _TicketFacts]:
    office = aliased(OrgUnit, name="office")
    branch = aliased(OrgUnit, name="branch")
    rows = await session.execute(
        select(
            Ticket.id,
            Ticket.number,
            Ticket.title,
            Estate.name,
            Ticket.location,
            Ticket.assignee_id,
            Ticket.response_due_at,
            Ticket.resolve_due_at,
            office.path,
            branch.path,
        )
        .join(Estate, Estate.id == Ticket.estate_id)
        .join(office, office.id == Estate.org_unit_id)
        .outerjoin(branch, branch.id == office.parent_id)
        .where(Ticket.id.in_(ticket_ids))
    )
    return {
        ticket_id: _TicketFacts(
            number=number,
            title=title,
            place=estate_name + (f" {location}" if location else ""),
            assignee_id=assignee_id,
            response_due_at=respond_by,
            resolve_due_at=resolve_by,
            office_path=office_path,
            branch_path=branch_path,
        )
        for ticket_id, number, title, estate_name, location, assignee_id, respond_by, resolve_by, office_path, branch_path in rows
    }


async def _staff_at(session: AsyncSession, paths: set[str]) -> dict[tuple[str, str], list[int]]:
    """(role, org path) → active users holding customer_service or manager exactly there."""
    rows = await session.execute(
        select(CasbinRule.v1, CasbinRule.v2, User.id)
        .join(User, CasbinRule.v0 == "u:" + User.id.cast(String))
        .where(
            CasbinRule.ptype == "g",
            CasbinRule.v1.in_(("customer_service", "manager")),
            CasbinRule.v2.in_(paths),
            User.is_active,
        )
        .order_by(User.id)
    )
    staff: dict[tuple[str, str], list[int]] = defaultdict(list)
    for role, path, user_id in rows:
        staff[(role, path)].append(user_id)
    return staff


def _recipients(step: _Step, ticket: _TicketFacts, staff: dict[tuple[str, str], list[int]]) -> list[int]:
    if step.level == 1:
        return (
            [ticket.assignee_id]
            if ticket.assignee_id
            else list(staff.get(("customer_service", ticket.office_path), []))
        )
    if step.level == 2:
        return list(staff.get(("manager", ticket.office_path), []))
    return list(staff.get(("manager", ticket.branch_path), [])) if ticket.branch_path else []


async def _phones(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(User.id, Person.phone).join(Person, Person.id == User.person_id).where(User.id.in_(user_ids))
    )
    return {user_id: phone for user_id, phone in rows if phone}


def _event(step: _Step, ticket: _TicketFacts, users: list[int]) -> TicketEvent:
    word = DEADLINE_WORDS[step.deadline]
    note = (
        f"超过{word}时限"
        if step.level == 1
        else f"超过{word}时限，升级至{'服务中心' if step.level == 2 else '分公司'}经理"
    )
    return TicketEvent(
        ticket_id=step.ticket_id,
        type=TicketEventType.OVERDUE if step.level == 1 else TicketEventType.ESCALATED,
        actor_id=None,
        note=note,
        data={
            "deadline": step.deadline,
            "level": step.level,
            "dueAt": ticket.due_at(step.deadline).isoformat(),
            "notifiedUserIds": users,
        },
    )


async def close_unrated(
    session: AsyncSession, *, now: dt.datetime, estate_id: int | None = None, limit: int = 500
) -> int:
    """Close RESOLVED tickets nobody rated within 7 days of their resolution (in one estate, or
    all), in the caller's transaction. Tickets another run holds are left to it (skip locked);
    returns how many closed."""
    statement = (
        select(Ticket.id)
        .where(
            Ticket.status == TicketStatus.RESOLVED,
            Ticket.rating.is_(None),
            Ticket.resolved_at <= now - AUTO_CLOSE_AFTER,
        )
        .order_by(Ticket.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if estate_id is not None:
        statement = statement.where(Ticket.estate_id == estate_id)
    ticket_ids = (await session.scalars(statement)).all()
    for ticket_id in ticket_ids:  # locked above: still RESOLVED and unrated
        await transition(
            session, ticket_id, Action.CLOSE, actor_id=None, note=AUTO_CLOSE_NOTE, data={"auto": True}, now=now
        )
    return len(ticket_ids)
