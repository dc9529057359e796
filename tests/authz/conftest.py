"""Fixtures of the authorisation suite: the demo objects by name, and tagged scratch data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from authz_factories import Scratch, gid
from sqlalchemy import select

from backend.accounts.models import User
from backend.app import Runtime
from backend.people.models import Occupancy, Person
from backend.property.models import Building, Entrance, Estate, OrgUnit, Unit


@dataclass(frozen=True)
class DemoResident:
    username: str
    user_id: int
    person_id: int
    name: str
    phone: str
    id_number: str
    unit_id: int
    occupancy_id: int


@dataclass(frozen=True)
class Demo:
    """Primary keys of the demo data of CONTRACT.md, looked up by their natural names."""

    orgs: dict[str, OrgUnit]  # by code: DEMO, NORTH, N1, N2, SOUTH, S1
    estates: dict[str, int]  # by code
    buildings: dict[tuple[str, str], int]  # (estate code, building code)
    entrances: dict[tuple[str, str, str], int]  # (estate code, building code, entrance code)
    users: dict[str, int]  # by username
    residents: dict[str, DemoResident]  # owner.a1, owner.a2, owner.c1
    b_resident: DemoResident  # an owner living in DEMO-B (no account)

    def org_gid(self, code: str) -> str:
        return gid("OrgUnit", self.orgs[code].id)


async def _resident(session: Any, username: str, user_id: int | None, person_id: int) -> DemoResident:
    person = await session.get(Person, person_id)
    occupancy = (
        await session.scalars(
            select(Occupancy)
            .where(Occupancy.person_id == person_id, Occupancy.end_date.is_(None))
            .order_by(Occupancy.id)
            .limit(1)
        )
    ).one()
    return DemoResident(
        username=username,
        user_id=user_id or 0,
        person_id=person_id,
        name=person.name,
        phone=person.phone,
        id_number=person.id_number,
        unit_id=occupancy.unit_id,
        occupancy_id=occupancy.id,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def demo(runtime: Runtime) -> Demo:
    async with runtime.sessionmaker() as session:
        orgs = {org.code: org for org in (await session.scalars(select(OrgUnit))).all()}
        estates = dict((await session.execute(select(Estate.code, Estate.id).where(Estate.code.like("DEMO-%")))).all())
        buildings = {
            (code, building.code): building.id
            for code, building in (
                await session.execute(select(Estate.code, Building).join(Building, Building.estate_id == Estate.id))
            ).all()
            if code in estates
        }
        entrances = {
            (code, building_code, entrance.code): entrance.id
            for code, building_code, entrance in (
                await session.execute(
                    select(Estate.code, Building.code, Entrance)
                    .join(Building, Building.estate_id == Estate.id)
                    .join(Entrance, Entrance.building_id == Building.id)
                )
            ).all()
            if code in estates
        }
        users = dict((await session.execute(select(User.username, User.id))).all())
        residents = {}
        for username in ("owner.a1", "owner.a2", "owner.c1"):
            user = (await session.scalars(select(User).where(User.username == username))).one()
            residents[username] = await _resident(session, username, user.id, user.person_id)
        b_person = await session.scalar(
            select(Occupancy.person_id)
            .join(Unit, Unit.id == Occupancy.unit_id)
            .join(Person, Person.id == Occupancy.person_id)
            .where(Unit.estate_id == estates["DEMO-B"], Occupancy.end_date.is_(None), Person.phone.is_not(None))
            .order_by(Occupancy.id)
            .limit(1)
        )
        b_resident = await _resident(session, "(DEMO-B owner)", None, b_person)
    return Demo(orgs, estates, buildings, entrances, users, residents, b_resident)


@pytest_asyncio.fixture(loop_scope="session")
async def scratch(runtime: Runtime) -> AsyncIterator[Scratch]:
    made = Scratch(runtime)
    try:
        yield made
    finally:
        await made.cleanup()
