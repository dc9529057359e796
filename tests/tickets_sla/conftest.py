"""Fixtures of the dispatch and SLA tests: two fresh offices under branch North, each with an
estate, technicians, a service desk and a manager — removed afterwards with everything the
tests made there."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sla_support import Dispatch, Office
from sqlalchemy import delete, or_, select, text

from authz.models import CasbinRule
from backend.accounts.models import User, UserKind
from backend.audit.models import AuditEntry
from backend.notifications.models import Notification, SmsMessage
from backend.outbox import OutboxMessage
from backend.people.models import Person
from backend.property.models import Estate, OrgUnit, OrgUnitKind
from backend.tickets.models import (
    TechnicianSkill,
    Ticket,
    TicketCategory,
    TicketEscalation,
    TicketEvent,
)
from backend.tickets.service import company_id_of, ensure_categories


async def _office(session: Any, parent: OrgUnit, tag: str, *, auto_assign: bool) -> Office:
    unit = OrgUnit(parent_id=parent.id, kind=OrgUnitKind.OFFICE, code=tag, name=f"派单测试{tag}", path="/pending/")
    session.add(unit)
    await session.flush()
    unit.path = f"{parent.path}{unit.id}/"
    estate = Estate(org_unit_id=unit.id, org_path=unit.path, code=tag, name=f"派单小区{tag[-4:]}")
    estate.auto_assign_tickets = auto_assign
    session.add(estate)
    await session.flush()
    return Office(unit, estate)


async def _staff(session: Any, tag: str, name: str, role: str, office: OrgUnit, phone: str | None) -> int:
    person = Person(org_path=office.path, name=f"员工{name}", phone=phone)
    session.add(person)
    await session.flush()
    user = User(username=f"{tag.lower()}.{name}", password_hash="!", kind=UserKind.STAFF, person_id=person.id)
    session.add(user)
    await session.flush()
    session.add(CasbinRule(ptype="g", v0=f"u:{user.id}", v1=role, v2=office.path))
    return user.id


@pytest_asyncio.fixture(loop_scope="session")
async def dispatch(runtime: Any) -> AsyncIterator[Dispatch]:
    tag = f"SLA{uuid.uuid4().hex[:8].upper()}"
    phones: dict[str, str] = {}
    async with runtime.sessionmaker() as session, session.begin():
        north = await session.scalar(select(OrgUnit).where(OrgUnit.code == "NORTH"))
        assert north is not None
        x = await _office(session, north, f"{tag}X", auto_assign=True)
        y = await _office(session, north, f"{tag}Y", auto_assign=False)
        users: dict[str, int] = {}
        staff = (("t1", "technician", x), ("t2", "technician", x), ("t3", "technician", x),
                 ("cs", "customer_service", x), ("mx", "manager", x), ("ty", "technician", y))  # fmt: skip
        for number, (name, role, office) in enumerate(staff):
            phones[name] = f"1390000{number:04d}"
            users[name] = await _staff(session, tag, name, role, office.unit, phones[name])
        company_id = company_id_of(x.estate)
        await ensure_categories(session, company_id)
        categories = {
            c.code: c.id
            for c in await session.scalars(select(TicketCategory).where(TicketCategory.company_id == company_id))
        }
        skills = (("t1", "plumbing"), ("t1", "electrical"), ("t2", "plumbing"), ("ty", "plumbing"))
        session.add_all(TechnicianSkill(user_id=users[u], category_id=categories[c]) for u, c in skills)
        branch_manager_id = await session.scalar(select(User.id).where(User.username == "manager.north"))
        assert branch_manager_id is not None
    yield Dispatch(x, y, users, phones, branch_manager_id)
    async with runtime.sessionmaker() as session, session.begin():
        # The tickets' append-only history stands aside for this transaction only.
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        estate_ids = [x.estate.id, y.estate.id]
        user_ids = list(users.values())
        ticket_ids = list((await session.scalars(select(Ticket.id).where(Ticket.estate_id.in_(estate_ids)))).all())
        numbers = select(Ticket.number).where(Ticket.id.in_(ticket_ids))
        note_ids = list(
            (
                await session.scalars(
                    select(Notification.id).where(
                        or_(Notification.user_id.in_(user_ids), Notification.data["number"].astext.in_(numbers))
                    )
                )
            ).all()
        )
        sms_ids = list((await session.scalars(select(SmsMessage.id).where(SmsMessage.user_id.in_(user_ids)))).all())
        jobs = [f"notification:{n}" for n in note_ids] + [f"sms:{m}" for m in sms_ids]
        await session.execute(delete(OutboxMessage).where(OutboxMessage.job_id.in_(jobs)))
        await session.execute(delete(Notification).where(Notification.id.in_(note_ids)))
        await session.execute(delete(SmsMessage).where(SmsMessage.id.in_(sms_ids)))
        await session.execute(delete(TicketEscalation).where(TicketEscalation.ticket_id.in_(ticket_ids)))
        await session.execute(delete(TicketEvent).where(TicketEvent.ticket_id.in_(ticket_ids)))
        await session.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))
        await session.execute(delete(AuditEntry).where(AuditEntry.actor_user_id.in_(user_ids)))
        await session.execute(delete(TechnicianSkill).where(TechnicianSkill.user_id.in_(user_ids)))
        await session.execute(delete(CasbinRule).where(CasbinRule.v0.in_([f"u:{u}" for u in user_ids])))
        person_ids = list((await session.scalars(select(User.person_id).where(User.id.in_(user_ids)))).all())
        await session.execute(delete(User).where(User.id.in_(user_ids)))
        await session.execute(delete(Person).where(Person.id.in_(person_ids)))
        await session.execute(delete(Estate).where(Estate.id.in_(estate_ids)))
        await session.execute(delete(OrgUnit).where(OrgUnit.id.in_([x.unit.id, y.unit.id])))
