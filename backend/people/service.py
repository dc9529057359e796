"""Business rules for persons and occupancies. Ending an occupancy keeps it as history."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.people.errors import PeopleError, PeopleErrorCode
from backend.people.models import Occupancy, OccupancyRole, Person
from backend.property.models import Unit

_PHONE = re.compile(r"^1[3-9]\d{9}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_number(value: str) -> bool:
    """GB 11643: 17 digits and a check character over weighted digits mod 11."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return value[17].upper() == _ID_CHECK[total % 11]


async def create_person(
    *,
    session: AsyncSession,
    org_path: str,
    name: str,
    phone: str | None,
    id_number: str | None,
    email: str | None,
    actor_id: int,
    request_id: str | None,
) -> Person:
    name = name.strip()
    if not name:
        raise PeopleError(PeopleErrorCode.NOT_FOUND, "A name is required.", "name")
    if phone is not None and not _PHONE.fullmatch(phone):
        raise PeopleError(PeopleErrorCode.INVALID_PHONE, "An 11-digit mainland mobile number.", "phone")
    if id_number is not None:
        id_number = id_number.upper()
        if not valid_id_number(id_number):
            raise PeopleError(PeopleErrorCode.INVALID_ID_NUMBER, "Not a valid 18-character ID number.", "idNumber")
    if email is not None and not _EMAIL.fullmatch(email):
        raise PeopleError(PeopleErrorCode.INVALID_EMAIL, "Not an email address.", "email")
    person = Person(org_path=org_path, name=name, phone=phone, id_number=id_number, email=email)
    session.add(person)
    await session.flush()
    # Never the personal data itself in the audit log.
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="person.create",
        target_type="Person",
        target_id=person.id,
        request_id=request_id,
    )
    return person


async def add_occupancy(
    *,
    session: AsyncSession,
    unit: Unit,
    person: Person,
    role: OccupancyRole,
    share: Decimal | None,
    start_date: dt.date,
    actor_id: int,
    request_id: str | None,
) -> Occupancy:
    if share is not None and not Decimal(0) < share <= Decimal(100):
        raise PeopleError(PeopleErrorCode.INVALID_SHARE, "A share is between 0 and 100 percent.", "share")
    duplicate = await session.scalar(
        select(Occupancy.id).where(
            Occupancy.unit_id == unit.id,
            Occupancy.person_id == person.id,
            Occupancy.role == role,
            Occupancy.end_date.is_(None),
        )
    )
    if duplicate:
        raise PeopleError(PeopleErrorCode.DUPLICATE_OCCUPANCY, "This person already holds that role here.")
    occupancy = Occupancy(unit_id=unit.id, person_id=person.id, role=role, share=share, start_date=start_date)
    session.add(occupancy)
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="occupancy.add",
        target_type="Occupancy",
        target_id=occupancy.id,
        request_id=request_id,
        detail={"unit": unit.id, "person": person.id, "role": role.name},
    )
    return occupancy


async def end_occupancy(
    *, session: AsyncSession, occupancy: Occupancy, end_date: dt.date, actor_id: int, request_id: str | None
) -> Occupancy:
    if occupancy.end_date is not None:
        raise PeopleError(PeopleErrorCode.ALREADY_ENDED, "This occupancy has ended already.")
    if end_date < occupancy.start_date:
        raise PeopleError(PeopleErrorCode.INVALID_PERIOD, "The end lies before the start.", "endDate")
    occupancy.end_date = end_date
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="occupancy.end",
        target_type="Occupancy",
        target_id=occupancy.id,
        request_id=request_id,
        detail={"endDate": end_date.isoformat()},
    )
    return occupancy
