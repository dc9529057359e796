"""Fresh objects for the authorisation tests, and the clean-up that removes them again.

Every object a test makes carries the test's tag: estate codes start with ``AZ<tag>``, person
names, announcement titles and notification titles contain it, usernames start with
``az.<tag>.``. One teardown finds all of it by the tag — including whatever the mutations
under test wrote — so the shared demo data is left exactly as it was. (The audit log is
append-only by design and keeps its entries.)
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from authz.models import CasbinRule
from authz.rules import subject
from backend.accounts.models import User, UserKind
from backend.accounts.passwords import hash_password
from backend.app import Runtime
from backend.audit.models import AuditEntry
from backend.db import local_today, to_global_id
from backend.notifications.models import Announcement, AnnouncementEstate, Notification
from backend.outbox import OutboxMessage
from backend.people.models import Occupancy, OccupancyRole, Person
from backend.property.models import Building, Entrance, Estate, OrgUnit, Unit, UnitStatus, UnitUsage

DEMO_PASSWORD = "demo1234"
MISSING_PK = 2_000_000_000  # a primary key no row has

gid = to_global_id


@dataclass(frozen=True)
class FreshEstate:
    """An estate with building ``1``, entrance ``1`` and unit ``1-1-101``."""

    id: int
    code: str
    org_path: str
    building_id: int
    entrance_id: int
    unit_id: int


@dataclass
class Scratch:
    runtime: Runtime
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8].upper())
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _policy_lines: list[tuple[str, ...]] = field(default_factory=list)

    # --- names ------------------------------------------------------------------------------

    def code(self) -> str:
        """A unique estate code of this test."""
        return f"AZ{self.tag}-{next(self._serial)}"

    def name(self, base: str) -> str:
        return f"{base} {self.tag}-{next(self._serial)}"

    def phone(self) -> str:
        return "139" + f"{random.randrange(10**8):08d}"

    # --- reading ----------------------------------------------------------------------------

    async def count(self, statement: Select[Any]) -> int:
        async with self.runtime.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(statement.subquery())) or 0)

    async def scalar(self, statement: Select[Any]) -> Any:
        async with self.runtime.sessionmaker() as session:
            return await session.scalar(statement)

    async def audit_entries(self, request_id: str) -> int:
        return await self.count(select(AuditEntry).where(AuditEntry.request_id == request_id))

    async def org(self, code: str) -> OrgUnit:
        async with self.runtime.sessionmaker() as session:
            return (await session.scalars(select(OrgUnit).where(OrgUnit.code == code))).one()

    # --- making -----------------------------------------------------------------------------

    async def estate(self, office_code: str) -> FreshEstate:
        office = await self.org(office_code)
        async with self.runtime.sessionmaker() as session, session.begin():
            code = self.code()
            estate = Estate(org_unit_id=office.id, org_path=office.path, code=code, name=code, address="")
            session.add(estate)
            await session.flush()
            building = Building(estate_id=estate.id, code="1", name="1号楼", floors=6)
            session.add(building)
            await session.flush()
            entrance = Entrance(building_id=building.id, code="1", name="1单元")
            session.add(entrance)
            await session.flush()
            unit = Unit(
                estate_id=estate.id,
                building_id=building.id,
                entrance_id=entrance.id,
                code="1-1-101",
                floor=1,
                building_area=Decimal("90.00"),
                inner_area=Decimal("70.00"),
                usage=UnitUsage.RESIDENTIAL,
                status=UnitStatus.OCCUPIED,
            )
            session.add(unit)
            await session.flush()
            return FreshEstate(estate.id, code, office.path, building.id, entrance.id, unit.id)

    async def person(self, org_path: str, *, phone: str | None = None, id_number: str | None = None) -> int:
        async with self.runtime.sessionmaker() as session, session.begin():
            person = Person(org_path=org_path, name=self.name("住户"), phone=phone, id_number=id_number)
            session.add(person)
            await session.flush()
            return person.id

    async def occupancy(
        self, unit_id: int, person_id: int, role: OccupancyRole = OccupancyRole.OWNER, *, days_ago: int = 30
    ) -> int:
        async with self.runtime.sessionmaker() as session, session.begin():
            occupancy = Occupancy(
                unit_id=unit_id,
                person_id=person_id,
                role=role,
                start_date=local_today() - dt.timedelta(days=days_ago),
            )
            session.add(occupancy)
            await session.flush()
            return occupancy.id

    async def user(self, kind: UserKind, person_id: int | None = None) -> User:
        async with self.runtime.sessionmaker() as session, session.begin():
            user = User(
                username=f"az.{self.tag.lower()}.{next(self._serial)}",
                password_hash=hash_password(DEMO_PASSWORD),
                kind=kind,
                person_id=person_id,
                display_name=self.name("用户"),
            )
            session.add(user)
            await session.flush()
            session.expunge(user)
            return user

    async def grant(self, user_id: int, role: str, path: str) -> None:
        """A role grant written straight into casbin_rule, then the policy reloaded."""
        async with self.runtime.sessionmaker() as session, session.begin():
            session.add(CasbinRule(ptype="g", v0=subject(user_id), v1=role, v2=path))
        await self.runtime.policy_changed()

    async def policy_line(self, *values: str) -> None:
        """A ``p`` line added to the stored policy (and removed again at clean-up)."""
        async with self.runtime.sessionmaker() as session, session.begin():
            session.add(CasbinRule(ptype="p", **dict(zip(("v0", "v1", "v2", "v3", "v4"), values, strict=True))))
        self._policy_lines.append(values)
        await self.runtime.policy_changed()

    async def remove_policy_line(self, *values: str) -> None:
        async with self.runtime.sessionmaker() as session, session.begin():
            await session.execute(delete(CasbinRule).where(*_line_matches(values)))
        self._policy_lines.remove(values)
        await self.runtime.policy_changed()

    async def notification(self, user_id: int) -> int:
        async with self.runtime.sessionmaker() as session, session.begin():
            notification = Notification(user_id=user_id, kind="test", title=self.name("通知"), body="")
            session.add(notification)
            await session.flush()
            return notification.id

    async def announcement(self, estate_ids: list[int], *, expires_at: dt.datetime | None = None) -> int:
        """An announcement in category ``az<tag>`` (so a test can list only its own)."""
        async with self.runtime.sessionmaker() as session, session.begin():
            publisher = await session.scalar(select(User.id).where(User.username == "admin"))
            announcement = Announcement(
                title=self.name("公告"),
                body="停水通知",
                category=self.category,
                published_by_id=publisher,
                expires_at=expires_at,
            )
            session.add(announcement)
            await session.flush()
            session.add_all(AnnouncementEstate(announcement_id=announcement.id, estate_id=e) for e in estate_ids)
            return announcement.id

    @property
    def category(self) -> str:
        return f"az{self.tag.lower()}"

    # --- clean-up ---------------------------------------------------------------------------

    async def cleanup(self) -> None:
        async with self.runtime.sessionmaker() as session, session.begin():
            policy_touched = await self._remove_policy(session)
            await self._remove_notifications_and_announcements(session)
            await self._remove_property(session)
            await session.execute(delete(User).where(User.username.startswith(f"az.{self.tag.lower()}.")))
            await session.execute(delete(Person).where(Person.name.contains(self.tag, autoescape=True)))
        if policy_touched:
            await self.runtime.policy_changed()

    async def _user_ids(self, session: AsyncSession) -> list[int]:
        prefix = f"az.{self.tag.lower()}."
        return list((await session.scalars(select(User.id).where(User.username.startswith(prefix)))).all())

    async def _remove_policy(self, session: AsyncSession) -> bool:
        user_subjects = [subject(user_id) for user_id in await self._user_ids(session)]
        removed = await session.scalars(
            delete(CasbinRule)
            .where(
                or_(
                    CasbinRule.v0.in_(user_subjects),
                    *(and_(*_line_matches(line)) for line in self._policy_lines),
                )
            )
            .returning(CasbinRule.id)
        )
        return bool(removed.all())

    async def _remove_notifications_and_announcements(self, session: AsyncSession) -> None:
        user_ids = await self._user_ids(session)
        notification_ids = (
            await session.scalars(
                select(Notification.id).where(
                    or_(Notification.title.contains(self.tag, autoescape=True), Notification.user_id.in_(user_ids))
                )
            )
        ).all()
        estate_ids = select(Estate.id).where(Estate.code.startswith(f"AZ{self.tag}"))
        announcement_ids = (
            await session.scalars(
                select(Announcement.id).where(
                    or_(
                        Announcement.title.contains(self.tag, autoescape=True),
                        Announcement.id.in_(
                            select(AnnouncementEstate.announcement_id).where(
                                AnnouncementEstate.estate_id.in_(estate_ids)
                            )
                        ),
                    )
                )
            )
        ).all()
        jobs = [f"notification:{i}" for i in notification_ids] + [f"announcement:{i}" for i in announcement_ids]
        await session.execute(delete(OutboxMessage).where(OutboxMessage.job_id.in_(jobs)))
        await session.execute(delete(Notification).where(Notification.id.in_(notification_ids)))
        await session.execute(delete(Announcement).where(Announcement.id.in_(announcement_ids)))

    async def _remove_property(self, session: AsyncSession) -> None:
        estate_ids = select(Estate.id).where(Estate.code.startswith(f"AZ{self.tag}"))
        unit_ids = select(Unit.id).where(Unit.estate_id.in_(estate_ids))
        person_ids = select(Person.id).where(Person.name.contains(self.tag, autoescape=True))
        await session.execute(
            delete(Occupancy).where(or_(Occupancy.unit_id.in_(unit_ids), Occupancy.person_id.in_(person_ids)))
        )
        await session.execute(delete(Unit).where(Unit.estate_id.in_(estate_ids)))
        building_ids = select(Building.id).where(Building.estate_id.in_(estate_ids))
        await session.execute(delete(Entrance).where(Entrance.building_id.in_(building_ids)))
        await session.execute(delete(Building).where(Building.estate_id.in_(estate_ids)))
        await session.execute(delete(Estate).where(Estate.code.startswith(f"AZ{self.tag}")))


def _line_matches(values: tuple[str, ...]) -> list[Any]:
    columns = (CasbinRule.v0, CasbinRule.v1, CasbinRule.v2, CasbinRule.v3, CasbinRule.v4)
    return [CasbinRule.ptype == "p", *(column == value for column, value in zip(columns, values, strict=True))]
