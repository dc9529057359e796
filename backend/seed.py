"""The demo company of CONTRACT.md: org tree, estates, units, people, accounts and role grants.

``seed_demo`` is idempotent. Everything is first *planned* in memory from one seeded
``random.Random`` (so the plan is the same on every run, whatever the database holds), then
only what is missing is inserted, looked up by natural keys: org-unit code, estate code,
(estate, building code), (building, entrance code), (estate, unit code), username, the Casbin
line. Persons have no natural key, so an estate's people are inserted only while none of its
units has an occupancy yet. Existing rows are never changed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

import backend.models  # noqa: F401  (every mapper: `wuye seed` runs without the app)
from authz.models import CasbinRule
from backend import demo_names
from backend.access.models import Credential, CredentialKind
from backend.accounts.models import User, UserKind
from backend.accounts.passwords import hash_password
from backend.billing.models import Bill, BillingCycle, ChargeMethod, FeeBinding, FeeItem, FeeKind, FeeRate, Payment
from backend.billing.service import generate_bills
from backend.db import local_today
from backend.devices.models import Device, DeviceKind
from backend.people.models import Occupancy, OccupancyRole, Person
from backend.property.models import (
    Building,
    Entrance,
    Estate,
    OrgUnit,
    OrgUnitKind,
    Unit,
    UnitStatus,
    UnitUsage,
)
from backend.seed_dispatch import ensure_demo_dispatch
from backend.seed_tickets import ensure_demo_tickets
from backend.tickets.models import Ticket

RANDOM_SEED = 20261123
DEMO_PASSWORD = "demo1234"

# Every generated date lies on or before this day, so "in the past" holds whenever the demo runs.
LATEST_DATE = dt.date(2025, 10, 31)

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"

CENT = Decimal("0.01")
WHOLE_SHARE = Decimal("100.00")
HALF_SHARE = Decimal("50.00")


class SeedError(Exception):
    """The database holds demo rows that contradict the plan (e.g. a demo unit with no owner)."""


# --- the report -----------------------------------------------------------------------------


@dataclass
class SeedCount:
    created: int = 0
    existing: int = 0


@dataclass
class SeedReport:
    org_units: SeedCount = field(default_factory=SeedCount)
    estates: SeedCount = field(default_factory=SeedCount)
    buildings: SeedCount = field(default_factory=SeedCount)
    entrances: SeedCount = field(default_factory=SeedCount)
    units: SeedCount = field(default_factory=SeedCount)
    persons: SeedCount = field(default_factory=SeedCount)
    occupancies: SeedCount = field(default_factory=SeedCount)
    users: SeedCount = field(default_factory=SeedCount)
    role_grants: SeedCount = field(default_factory=SeedCount)
    devices: SeedCount = field(default_factory=SeedCount)
    credentials: SeedCount = field(default_factory=SeedCount)
    fee_items: SeedCount = field(default_factory=SeedCount)
    bills: SeedCount = field(default_factory=SeedCount)
    payments: SeedCount = field(default_factory=SeedCount)
    tickets: SeedCount = field(default_factory=SeedCount)

    def counts(self) -> dict[str, SeedCount]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def created(self) -> int:
        return sum(count.created for count in self.counts().values())

    @property
    def existing(self) -> int:
        return sum(count.existing for count in self.counts().values())

    def summary(self) -> str:
        parts = (f"{name} {count.created} new/{count.existing} kept" for name, count in self.counts().items())
        return "demo data: " + ", ".join(parts)


# --- what the demo contains -----------------------------------------------------------------


@dataclass(frozen=True)
class OrgSpec:
    code: str
    name: str
    kind: OrgUnitKind
    parent_code: str | None


ORG_TREE: tuple[OrgSpec, ...] = (  # parents before children
    OrgSpec("DEMO", "Demo Property Group", OrgUnitKind.COMPANY, None),
    OrgSpec("NORTH", "North", OrgUnitKind.BRANCH, "DEMO"),
    OrgSpec("N1", "N1", OrgUnitKind.OFFICE, "NORTH"),
    OrgSpec("N2", "N2", OrgUnitKind.OFFICE, "NORTH"),
    OrgSpec("SOUTH", "South", OrgUnitKind.BRANCH, "DEMO"),
    OrgSpec("S1", "S1", OrgUnitKind.OFFICE, "SOUTH"),
)


@dataclass(frozen=True)
class TowerSpec:
    """A residential building: ``per_floor`` units on each floor of each entrance."""

    code: str
    entrances: int
    floors: int
    per_floor: int
    areas: tuple[float, ...]  # building area of the unit at each position on a floor
    shops_on_floor_1: bool = False


@dataclass(frozen=True)
class EstateSpec:
    code: str
    name: str
    address: str
    office_code: str
    delivered: dt.date  # keys handed over: the first owners move in from here
    towers: tuple[TowerSpec, ...]
    parking_spaces: int
    storage_rooms: int
    local_regions: tuple[str, ...]


ESTATES: tuple[EstateSpec, ...] = (
    EstateSpec(
        code="DEMO-A",
        name="翠湖花园",
        address="北京市朝阳区望京街道翠湖路88号",
        office_code="N1",
        delivered=dt.date(2012, 6, 30),
        towers=tuple(
            TowerSpec(str(b), 2, 18, 3, (89.56, 118.32, 136.75), shops_on_floor_1=b == 6) for b in range(1, 7)
        ),
        parking_spaces=100,
        storage_rooms=30,
        local_regions=demo_names.BEIJING_REGIONS,
    ),
    EstateSpec(
        code="DEMO-B",
        name="锦绣华庭",
        address="北京市海淀区学院路街道锦绣路16号",
        office_code="N2",
        delivered=dt.date(2016, 9, 1),
        towers=(
            *(TowerSpec(str(b), 3, 26, 2, (98.40, 126.85)) for b in range(1, 4)),
            *(TowerSpec(str(b), 2, 6, 2, (143.20, 168.66)) for b in range(4, 6)),
        ),
        parking_spaces=150,
        storage_rooms=40,
        local_regions=demo_names.BEIJING_REGIONS,
    ),
    EstateSpec(
        code="DEMO-C",
        name="海悦湾",
        address="广东省深圳市南山区粤海街道海悦路9号",
        office_code="S1",
        delivered=dt.date(2019, 12, 20),
        towers=(
            *(TowerSpec(str(b), 2, 32, 2, (88.92, 112.47)) for b in range(1, 5)),
            TowerSpec("5", 1, 33, 4, (59.80, 76.35, 76.35, 59.80), shops_on_floor_1=True),
        ),
        parking_spaces=80,
        storage_rooms=0,
        local_regions=demo_names.SHENZHEN_REGIONS,
    ),
)

PARKING_BUILDING = ("P", "地下停车场")
STORAGE_BUILDING = ("S", "地下储藏室")


@dataclass(frozen=True)
class StaffSpec:
    username: str
    display_name: str
    role: str
    org_code: str
    phone: str  # their work phone: alarm texts and escalations reach it (the local SMS channel)


@dataclass(frozen=True)
class ResidentSpec:
    username: str
    estate_code: str
    unit_code: str


STAFF: tuple[StaffSpec, ...] = (
    StaffSpec("admin", "系统管理员", "admin", "DEMO", "13800000001"),
    StaffSpec("manager.north", "刘建国", "manager", "NORTH", "13800000002"),
    StaffSpec("cs.a", "陈晓丽", "customer_service", "N1", "13800000003"),
    StaffSpec("finance.north", "赵敏", "finance", "NORTH", "13800000004"),
    StaffSpec("tech.a", "王志强", "technician", "N1", "13800000005"),
    StaffSpec("guard.a", "周海涛", "security_guard", "N1", "13800000006"),
    StaffSpec("supervisor.north", "孙立新", "supervisor", "NORTH", "13800000007"),
    StaffSpec("supervisor.south", "黄文静", "supervisor", "SOUTH", "13800000008"),
)

RESIDENTS: tuple[ResidentSpec, ...] = (
    ResidentSpec("owner.a1", "DEMO-A", "1-1-101"),
    ResidentSpec("owner.a2", "DEMO-A", "1-1-102"),
    ResidentSpec("owner.c1", "DEMO-C", "1-1-101"),
)
RESIDENT_ROLE = "resident"

# Units that demo accounts log into: always a sole owner living there.
RESIDENT_UNITS = frozenset((r.estate_code, r.unit_code) for r in RESIDENTS)
# One of them also shows an ownership transfer in its history.
TRANSFERRED_RESIDENT_UNITS = frozenset({("DEMO-A", "1-1-102")})


# --- the plan ---------------------------------------------------------------------------------


@dataclass
class PlannedPerson:
    name: str
    surname: str
    gender: str
    birth: dt.date
    region: str
    phone: str | None
    id_number: str
    email: str | None


@dataclass(frozen=True)
class PlannedUnit:
    building_code: str
    entrance_code: str | None
    code: str
    floor: int
    building_area: Decimal
    inner_area: Decimal
    usage: UnitUsage


@dataclass(frozen=True)
class PlannedOccupancy:
    unit_code: str
    person: int  # index into EstatePlan.persons
    role: OccupancyRole
    share: Decimal | None
    start_date: dt.date
    end_date: dt.date | None = None


@dataclass
class EstatePlan:
    spec: EstateSpec
    buildings: list[tuple[str, str, int | None]] = field(default_factory=list)  # code, name, floors
    entrances: list[tuple[str, str]] = field(default_factory=list)  # building code, entrance code
    units: list[PlannedUnit] = field(default_factory=list)
    statuses: dict[str, UnitStatus] = field(default_factory=dict)
    persons: list[PlannedPerson] = field(default_factory=list)
    occupancies: list[PlannedOccupancy] = field(default_factory=list)


def id_check_char(first17: str) -> str:
    """The GB 11643 check character of an ID number's first seventeen digits."""
    return ID_CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def _era(birth_year: int) -> str:
    if birth_year < 1965:
        return "before_1965"
    return "before_1988" if birth_year < 1988 else "since_1988"


class PeopleFactory:
    """Plausible, unique-looking persons: name by cohort, mobile number, ID number, some emails."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.phones: set[str] = set()
        self.id_numbers: set[str] = set()
        self._surnames = [s for s, _ in demo_names.SURNAMES]
        self._surname_weights = list(itertools.accumulate(w for _, w in demo_names.SURNAMES))

    def person(self, *, birth_year: int, gender: str, region: str, surname: str | None = None) -> PlannedPerson:
        rng = self.rng
        surname = surname or rng.choices(self._surnames, cum_weights=self._surname_weights)[0]
        given = rng.choice(demo_names.GIVEN_NAMES[(_era(birth_year), gender)])
        birth = dt.date(birth_year, 1, 1) + dt.timedelta(days=rng.randrange(365))
        # Children under sixteen have no phone of their own.
        phone = self._phone() if LATEST_DATE.year - birth_year >= 16 else None
        email = self._email(phone) if phone and rng.random() < 0.3 else None
        return PlannedPerson(
            name=surname + given,
            surname=surname,
            gender=gender,
            birth=birth,
            region=region,
            phone=phone,
            id_number=self._id_number(region, birth, gender),
            email=email,
        )

    def _phone(self) -> str:
        while True:
            phone = self.rng.choice(demo_names.MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def _id_number(self, region: str, birth: dt.date, gender: str) -> str:
        while True:
            # The sequence number's last digit is odd for men, even for women.
            sequence = self.rng.randrange(499) * 2 + (1 if gender == "male" else 2)
            first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
            id_number = first17 + id_check_char(first17)
            if id_number not in self.id_numbers:
                self.id_numbers.add(id_number)
                return id_number

    def _email(self, phone: str) -> str:
        domain = self.rng.choice(demo_names.EMAIL_DOMAINS)
        if domain in ("qq.com", "foxmail.com"):
            return f"{self.rng.randrange(10**5, 3 * 10**9)}@{domain}"
        return f"{phone}@{domain}"


class EstatePlanner:
    """Lays out one estate and decides who owns, rents and lives in each unit."""

    def __init__(self, spec: EstateSpec, people: PeopleFactory) -> None:
        self.spec = spec
        self.people = people
        self.rng = people.rng
        self.plan = EstatePlan(spec)
        # Owners living here, with the day they moved in: they may also buy a parking space.
        self.resident_owners: dict[int, dt.date] = {}

    def build(self) -> EstatePlan:
        self._lay_out()
        for unit in self.plan.units:
            if unit.usage is UnitUsage.RESIDENTIAL:
                self._occupy_home(unit.code)
            elif unit.usage is UnitUsage.COMMERCIAL:
                self._occupy_shop(unit.code)
        for unit in self.plan.units:
            if unit.usage in (UnitUsage.PARKING, UnitUsage.STORAGE):
                self._occupy_ancillary(unit.code, unit.usage)
        return self.plan

    # layout

    def _lay_out(self) -> None:
        for tower in self.spec.towers:
            self.plan.buildings.append((tower.code, f"{tower.code}号楼", tower.floors))
            inner_ratios = [self.rng.uniform(0.76, 0.80) for _ in tower.areas]
            for entrance in range(1, tower.entrances + 1):
                self.plan.entrances.append((tower.code, str(entrance)))
                for floor in range(1, tower.floors + 1):
                    shop = tower.shops_on_floor_1 and floor == 1
                    for position, (area, ratio) in enumerate(zip(tower.areas, inner_ratios, strict=True), start=1):
                        if shop:
                            area, ratio = area * 1.3, 0.85
                        self.plan.units.append(
                            PlannedUnit(
                                building_code=tower.code,
                                entrance_code=str(entrance),
                                code=f"{tower.code}-{entrance}-{floor}{position:02d}",
                                floor=floor,
                                building_area=_area(area),
                                inner_area=_area(area * ratio),
                                usage=UnitUsage.COMMERCIAL if shop else UnitUsage.RESIDENTIAL,
                            )
                        )
        self._lay_out_basement(PARKING_BUILDING, self.spec.parking_spaces, UnitUsage.PARKING)
        self._lay_out_basement(STORAGE_BUILDING, self.spec.storage_rooms, UnitUsage.STORAGE)

    def _lay_out_basement(self, building: tuple[str, str], count: int, usage: UnitUsage) -> None:
        if count == 0:
            return
        code, name = building
        self.plan.buildings.append((code, name, 1))
        for number in range(1, count + 1):
            if usage is UnitUsage.PARKING:
                area, inner = 13.20 if number % 10 else 16.50, 12.50 if number % 10 else 15.00
            else:
                area = self.rng.choice((6.80, 8.40, 10.20))
                inner = area * 0.90
            self.plan.units.append(
                PlannedUnit(code, None, f"{code}-1-{number:03d}", -1, _area(area), _area(inner), usage)
            )

    # occupancy

    def _occupy_home(self, unit_code: str) -> None:
        rng = self.rng
        resident_unit = (self.spec.code, unit_code) in RESIDENT_UNITS
        if not resident_unit and rng.random() < 0.14:
            self.plan.statuses[unit_code] = UnitStatus.UNSOLD
            return
        if (self.spec.code, unit_code) in TRANSFERRED_RESIDENT_UNITS or (not resident_unit and rng.random() < 0.07):
            moved_in = self._transfer(unit_code)
        else:
            moved_in = _between(rng, self.spec.delivered, self.spec.delivered + dt.timedelta(days=540))
        owner = self._adult(1950, 1992)
        if not resident_unit:  # the demo accounts' data stays simple: one home each
            self.resident_owners[owner] = moved_in
        if not resident_unit and rng.random() < 0.15:
            spouse = self._spouse_of(owner)
            self._occupancy(unit_code, owner, OccupancyRole.OWNER, HALF_SHARE, moved_in)
            self._occupancy(unit_code, spouse, OccupancyRole.OWNER, HALF_SHARE, moved_in)
        else:
            spouse = None
            self._occupancy(unit_code, owner, OccupancyRole.OWNER, WHOLE_SHARE, moved_in)

        status = UnitStatus.OCCUPIED
        if not resident_unit:
            status = rng.choices(
                (UnitStatus.OCCUPIED, UnitStatus.RENTED, UnitStatus.VACANT, UnitStatus.RENOVATING),
                weights=(74, 14, 9, 3),
            )[0]
        self.plan.statuses[unit_code] = status
        if status is UnitStatus.OCCUPIED:
            self._family(unit_code, owner, spouse, moved_in)
        elif status is UnitStatus.RENTED:
            self._tenants(unit_code, moved_in)

    def _transfer(self, unit_code: str) -> dt.date:
        """A first owner who sold: their ended occupancy; returns the day the buyer took over."""
        rng = self.rng
        bought = _between(rng, self.spec.delivered, self.spec.delivered + dt.timedelta(days=365))
        sold = min(bought + dt.timedelta(days=rng.randint(700, 2500)), LATEST_DATE - dt.timedelta(days=60))
        seller = self._adult(1950, 1985)
        self._occupancy(unit_code, seller, OccupancyRole.OWNER, WHOLE_SHARE, bought, sold)
        return sold

    def _family(self, unit_code: str, owner: int, spouse: int | None, moved_in: dt.date) -> None:
        rng = self.rng
        if rng.random() >= 0.6:
            return
        household: list[int] = []
        if spouse is None and rng.random() < 0.7:
            household.append(self._spouse_of(owner))
        for _ in range(rng.choice((0, 1, 1, 2))):
            child = self._child_of(owner)
            if child is not None:
                household.append(child)
        if rng.random() < 0.15:
            household.append(self._parent_of(owner))
        for member in household:
            born = self.plan.persons[member].birth
            self._occupancy(unit_code, member, OccupancyRole.FAMILY, None, max(moved_in, born))

    def _tenants(self, unit_code: str, owner_since: dt.date) -> None:
        rng = self.rng
        start = _between(rng, owner_since + dt.timedelta(days=30), LATEST_DATE)
        if rng.random() < 0.35 and (start - owner_since).days > 400:
            earlier = _between(rng, owner_since, start - dt.timedelta(days=365))
            self._occupancy(unit_code, self._adult(1975, 2000), OccupancyRole.TENANT, None, earlier, start)
        for _ in range(2 if rng.random() < 0.2 else 1):
            self._occupancy(unit_code, self._adult(1975, 2002), OccupancyRole.TENANT, None, start)

    def _occupy_shop(self, unit_code: str) -> None:
        rng = self.rng
        owned_since = _between(rng, self.spec.delivered, self.spec.delivered + dt.timedelta(days=365))
        self._occupancy(unit_code, self._adult(1960, 1985), OccupancyRole.OWNER, WHOLE_SHARE, owned_since)
        if rng.random() < 0.65:
            self.plan.statuses[unit_code] = UnitStatus.RENTED
            self._tenants(unit_code, owned_since)
        else:
            self.plan.statuses[unit_code] = UnitStatus.OCCUPIED

    def _occupy_ancillary(self, unit_code: str, usage: UnitUsage) -> None:
        rng = self.rng
        sold_share = 0.6 if usage is UnitUsage.PARKING else 0.5
        if not self.resident_owners or rng.random() >= sold_share:
            self.plan.statuses[unit_code] = UnitStatus.UNSOLD
            return
        buyer, since = rng.choice(list(self.resident_owners.items()))
        bought = _between(rng, since, min(since + dt.timedelta(days=720), LATEST_DATE))
        self._occupancy(unit_code, buyer, OccupancyRole.OWNER, WHOLE_SHARE, bought)
        self.plan.statuses[unit_code] = UnitStatus.OCCUPIED

    # people

    def _region(self) -> str:
        pool = self.spec.local_regions if self.rng.random() < 0.5 else demo_names.ELSEWHERE_REGIONS
        return self.rng.choice(pool)

    def _add(self, person: PlannedPerson) -> int:
        self.plan.persons.append(person)
        return len(self.plan.persons) - 1

    def _adult(self, born_from: int, born_until: int) -> int:
        gender = self.rng.choice(("male", "female"))
        birth_year = self.rng.randint(born_from, born_until)
        return self._add(self.people.person(birth_year=birth_year, gender=gender, region=self._region()))

    def _spouse_of(self, index: int) -> int:
        partner = self.plan.persons[index]
        gender = "female" if partner.gender == "male" else "male"
        birth_year = min(partner.birth.year + self.rng.randint(-4, 4), 2000)
        return self._add(self.people.person(birth_year=birth_year, gender=gender, region=self._region()))

    def _child_of(self, index: int) -> int | None:
        parent = self.plan.persons[index]
        birth_year = parent.birth.year + self.rng.randint(24, 36)
        if birth_year > 2022:
            return None
        gender = self.rng.choice(("male", "female"))
        child = self.people.person(birth_year=birth_year, gender=gender, region=parent.region, surname=parent.surname)
        return self._add(child)

    def _parent_of(self, index: int) -> int:
        child = self.plan.persons[index]
        birth_year = child.birth.year - self.rng.randint(24, 32)
        gender = self.rng.choice(("male", "female"))
        surname = child.surname if gender == "male" else None
        return self._add(self.people.person(birth_year=birth_year, gender=gender, region=child.region, surname=surname))

    def _occupancy(
        self,
        unit_code: str,
        person: int,
        role: OccupancyRole,
        share: Decimal | None,
        start: dt.date,
        end: dt.date | None = None,
    ) -> None:
        self.plan.occupancies.append(PlannedOccupancy(unit_code, person, role, share, start, end))


def _area(value: float) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _between(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    last = min(last, LATEST_DATE)
    if last <= first:
        return first
    return first + dt.timedelta(days=rng.randint(0, (last - first).days))


def plan_demo() -> list[EstatePlan]:
    """The whole demo, in memory. Pure and deterministic: the same on every call."""
    people = PeopleFactory(random.Random(RANDOM_SEED))
    return [EstatePlanner(spec, people).build() for spec in ESTATES]


# --- writing it -------------------------------------------------------------------------------


async def seed_demo(session: AsyncSession) -> SeedReport:
    """Create whatever of the demo data is missing, in the caller's transaction."""
    report = SeedReport()
    org_units = await _ensure_org_tree(session, report)
    estate_paths: dict[str, str] = {}
    for plan in plan_demo():
        estate = await _ensure_estate(session, plan.spec, org_units[plan.spec.office_code], report)
        estate_paths[estate.code] = estate.org_path
        unit_ids = await _ensure_property(session, estate, plan, report)
        await _ensure_people(session, estate, plan, unit_ids, report)
    bills_before = await _all_bills(session)
    users = await _ensure_users(session, report)
    await _ensure_staff_persons(session, users, org_units, report)
    await _ensure_role_grants(session, users, org_units, estate_paths, report)
    await _ensure_devices(session, report)
    await _ensure_credentials(session, users, report)
    await _ensure_billing(session, report)
    from backend.seed_assets import ensure_demo_assets  # it reads this module's demo devices

    await ensure_demo_assets(session)
    from backend.seed_alarms import ensure_demo_rules

    await ensure_demo_rules(session)
    from backend.seed_access import ensure_demo_access

    await ensure_demo_access(session)
    report.tickets.existing = await _ticket_count(session)
    await ensure_demo_tickets(session)
    report.tickets.created = await _ticket_count(session) - report.tickets.existing
    await ensure_demo_dispatch(session)
    # The demo's history is not news: what it would have pushed live (notifications of its
    # old tickets) is already in the users' lists, and is not delivered again at start-up.
    # Rows this transaction wrote carry its start time, now().
    await session.execute(
        text("UPDATE outbox SET dispatched_at = now() WHERE dispatched_at IS NULL AND created_at = now()")
    )
    # Nor are the texts they would have sent staff (who have work phones): kept, never sent.
    await session.execute(
        text(
            "UPDATE sms_messages SET status = 'SKIPPED', last_error = 'demo history: not sent' "
            "WHERE status = 'QUEUED' AND created_at = now()"
        )
    )
    # Bills come from billing and from the demo's paid repairs: counted once, here.
    report.bills.existing = bills_before
    report.bills.created = await _all_bills(session) - bills_before
    return report


async def _all_bills(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Bill)) or 0)


async def _ticket_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)


# Fee items of every demo estate: (code, name, kind, method, cycle, usages billed, rate).
# The property fee's rate differs per estate (元/m²/month).
PROPERTY_FEE_RATES = {"DEMO-A": Decimal("2.50"), "DEMO-B": Decimal("1.80"), "DEMO-C": Decimal("3.20")}
FEE_ITEMS = (
    ("PF01", "物业服务费", FeeKind.PROPERTY_FEE, ChargeMethod.PER_AREA, BillingCycle.MONTHLY,
     (UnitUsage.RESIDENTIAL, UnitUsage.COMMERCIAL), None),
    ("PK01", "车位管理费", FeeKind.PARKING, ChargeMethod.FIXED, BillingCycle.MONTHLY,
     (UnitUsage.PARKING,), Decimal("150.00")),
    ("GB01", "生活垃圾处理费", FeeKind.GARBAGE, ChargeMethod.FIXED, BillingCycle.QUARTERLY,
     (UnitUsage.RESIDENTIAL,), Decimal("30.00")),
    ("WA01", "水费", FeeKind.WATER, ChargeMethod.METERED, BillingCycle.MONTHLY,
     (UnitUsage.RESIDENTIAL, UnitUsage.COMMERCIAL), Decimal("5.0000")),
    ("EL01", "电费", FeeKind.ELECTRICITY, ChargeMethod.METERED, BillingCycle.MONTHLY,
     (UnitUsage.RESIDENTIAL, UnitUsage.COMMERCIAL), Decimal("0.5600")),
)  # fmt: skip
# 阶梯电价: monthly consumption up to 200 kWh at 0.56, to 400 at 0.61, above at 0.86.
METERED_TIERS = {
    "EL01": [
        {"upTo": "200.00", "price": "0.5600"},
        {"upTo": "400.00", "price": "0.6100"},
        {"upTo": None, "price": "0.8600"},
    ],
}
BILLING_SINCE = dt.date(2025, 1, 1)
MONTHS_BILLED = 12


async def _ensure_billing(session: AsyncSession, report: SeedReport) -> None:
    """Fee items, rates and bindings per estate, then a year of bills through the same
    generation service the API and the monthly job use (idempotent by its unique key)."""
    estates = (await session.scalars(select(Estate).where(Estate.code.in_(PROPERTY_FEE_RATES)))).all()
    for estate in estates:
        for code, name, kind, method, cycle, usages, rate in FEE_ITEMS:
            item = await session.scalar(select(FeeItem).where(FeeItem.estate_id == estate.id, FeeItem.code == code))
            if item is not None:
                report.fee_items.existing += 1
                continue
            item = FeeItem(
                estate_id=estate.id,
                code=code,
                name=name,
                kind=kind,
                method=method,
                cycle=cycle,
                due_day=15,
                late_fee_daily_rate=Decimal("0.0005"),
                grace_days=15,
            )
            session.add(item)
            await session.flush()
            session.add(
                FeeRate(
                    fee_item_id=item.id,
                    rate=rate or PROPERTY_FEE_RATES[estate.code],
                    tiers=METERED_TIERS.get(code),
                    effective_from=BILLING_SINCE,
                )
            )
            await session.execute(
                insert(FeeBinding).from_select(
                    ["unit_id", "fee_item_id", "start_date"],
                    select(Unit.id, literal(item.id), literal(BILLING_SINCE)).where(
                        Unit.estate_id == estate.id, Unit.usage.in_(usages)
                    ),
                )
            )
            report.fee_items.created += 1
        await session.flush()
        this_month = local_today().replace(day=1)
        await session.execute(_DEMO_METERS, {"estate_id": estate.id, "since": BILLING_SINCE})
        first = this_month.year * 12 + this_month.month - 1 - MONTHS_BILLED
        await session.execute(
            _DEMO_READINGS,
            {"estate_id": estate.id, "since": dt.date(first // 12, first % 12 + 1, 1), "this_month": this_month},
        )
        for back in range(MONTHS_BILLED - 1, -1, -1):
            index = this_month.year * 12 + this_month.month - 1 - back
            month = dt.date(index // 12, index % 12 + 1, 1)
            await generate_bills(session=session, estate=estate, month=month, actor_id=None, request_id="seed")
        report.payments.existing += int(
            await session.scalar(
                select(func.count()).where(Payment.estate_id == estate.id, Payment.idempotency_key.startswith("seed:"))
            )
            or 0
        )
        report.payments.created += await _settle_demo_bills(session, estate, this_month)
        await _waive_demo_bills(session, estate, this_month)


# A water and an electricity meter for every unit billed by them, installed when billing began.
_DEMO_METERS = text(
    """
    INSERT INTO meters (estate_id, unit_id, fee_item_id, serial, multiplier, initial_reading, installed_on)
    SELECT u.estate_id, u.id, i.id, i.code || '-' || u.id, 1, (u.id * 7) % 500, :since
    FROM fee_bindings f
    JOIN fee_items i ON i.id = f.fee_item_id AND i.method = 'METERED'
    JOIN units u ON u.id = f.unit_id
    WHERE i.estate_id = :estate_id
    ON CONFLICT DO NOTHING
    """
)
# Monthly readings from then up to last month (this month is read at its end): a household
# uses 4-19 m³ of water and 80-459 kWh a month, varying by unit and month.
_DEMO_READINGS = text(
    """
    INSERT INTO meter_readings (meter_id, period_start, value, read_on)
    SELECT m.id, month::date,
           m.initial_reading + sum(
               CASE WHEN i.kind = 'WATER' THEN 4 + (m.unit_id * 13 + extract(month FROM month)::int * 7) % 16
                    ELSE 80 + (m.unit_id * 31 + extract(month FROM month)::int * 17) % 380 END
           ) OVER (PARTITION BY m.id ORDER BY month),
           (month + interval '1 month' - interval '2 days')::date
    FROM meters m
    JOIN fee_items i ON i.id = m.fee_item_id
    CROSS JOIN generate_series(CAST(:since AS date), CAST(:this_month AS date) - interval '1 month',
                               interval '1 month') AS month
    WHERE m.estate_id = :estate_id AND m.installed_on <= month
    ON CONFLICT (meter_id, period_start) DO NOTHING
    """
)


# How the demo's payers behave, by a stable hash of the unit id (percent of units):
# 0-79 pay every bill before this month; 80-89 stopped paying 1-8 months ago (arrears in
# every aging bucket); 90-94 pay all but the last two months, the older of those half;
# 95-99 never pay.
_SETTLE_DEMO_BILLS = text(
    """
    WITH profile AS (
        SELECT b.id, b.amount, b.due_date, b.unit_id, b.period_start,
               (b.unit_id * 37) % 100 AS kind, 1 + b.unit_id % 8 AS months_behind
        FROM bills b
        WHERE b.estate_id = :estate_id AND b.period_start < :this_month
          AND NOT EXISTS (SELECT 1 FROM bill_lines l WHERE l.bill_id = b.id)
    ),
    owed AS (
        SELECT id, due_date,
               CASE
                 WHEN kind < 80 THEN amount
                 WHEN kind < 90 AND period_start < (:this_month - make_interval(months => months_behind))::date
                   THEN amount
                 WHEN kind < 95 AND period_start < (:this_month - interval '2 months')::date THEN amount
                 WHEN kind < 95 AND period_start < (:this_month - interval '1 month')::date THEN round(amount / 2, 2)
                 ELSE 0
               END AS paid
        FROM profile
    ),
    numbered AS (
        SELECT id, due_date, paid, row_number() OVER (ORDER BY due_date, id) AS n
        FROM owed WHERE paid > 0
    ),
    paid AS (
        INSERT INTO payments (estate_id, amount, method, status, receipt_number, idempotency_key, request_hash,
                              bill_ids, created_by_id, created_at, settled_at)
        SELECT :estate_id, n.paid, CASE WHEN n.n % 3 = 0 THEN 'CASH' WHEN n.n % 3 = 1 THEN 'BANK_TRANSFER' ELSE 'CARD' END,
               'SETTLED', 'R' || :company_code || '-' || lpad((:first_number + n.n - 1)::text, 8, '0'),
               'seed:' || n.id, md5('seed:' || n.id), ARRAY[n.id], :actor_id, n.due_date - interval '3 days',
               n.due_date - interval '3 days'
        FROM numbered n
        RETURNING id, idempotency_key, amount
    ),
    lines AS (
        INSERT INTO bill_lines (bill_id, kind, amount, note, created_by_id, payment_id, created_at)
        SELECT substr(p.idempotency_key, 6)::int, 'PAYMENT', p.amount, '', :actor_id, p.id, now()
        FROM paid p
        RETURNING bill_id, amount
    ),
    statuses AS (
        UPDATE bills b SET status = CASE WHEN l.amount >= b.amount THEN 'PAID' ELSE 'PARTIAL' END
        FROM lines l WHERE l.bill_id = b.id
        RETURNING b.id
    )
    SELECT count(*) FROM statuses
    """
)


# A few waivers (减免): six months ago, a third of the households that never pay had that
# month's property fee waived in full by finance (hardship). Bills with lines are left alone.
_WAIVE_DEMO_BILLS = text(
    """
    WITH waived AS (
        INSERT INTO bill_lines (bill_id, kind, amount, note, created_by_id, created_at)
        SELECT b.id, 'WAIVER', b.amount, '困难业主减免 hardship waiver', :actor_id, b.due_date + interval '5 days'
        FROM bills b JOIN fee_items i ON i.id = b.fee_item_id
        WHERE b.estate_id = :estate_id AND i.method = 'PER_AREA' AND b.amount > 0
          AND b.period_start = (CAST(:this_month AS date) - interval '6 months')::date
          AND (b.unit_id * 37) % 100 >= 95 AND b.unit_id % 3 = 0
          AND NOT EXISTS (SELECT 1 FROM bill_lines l WHERE l.bill_id = b.id)
        RETURNING bill_id
    )
    UPDATE bills SET status = 'WAIVED' WHERE id IN (SELECT bill_id FROM waived)
    """
)


async def _waive_demo_bills(session: AsyncSession, estate: Estate, this_month: dt.date) -> None:
    actor_id = await session.scalar(select(User.id).where(User.username == "finance.north"))
    await session.execute(_WAIVE_DEMO_BILLS, {"estate_id": estate.id, "this_month": this_month, "actor_id": actor_id})


async def _settle_demo_bills(session: AsyncSession, estate: Estate, this_month: dt.date) -> int:
    """Payments for most of the demo's past bills, in one statement (idempotent: a bill with
    any line is left alone), with receipt numbers continuing the company's sequence."""
    company_id = int(estate.org_path.split("/")[1])
    company_code = await session.scalar(select(OrgUnit.code).where(OrgUnit.id == company_id))
    actor_id = await session.scalar(select(User.id).where(User.username == "finance.north"))
    # The company's receipt counter, locked for this transaction, as payments.py does.
    await session.execute(
        text("INSERT INTO receipt_counters (company_id, next_number) VALUES (:id, 1) ON CONFLICT DO NOTHING"),
        {"id": company_id},
    )
    first_number = await session.scalar(
        text("SELECT next_number FROM receipt_counters WHERE company_id = :id FOR UPDATE"), {"id": company_id}
    )
    settled = int(
        await session.scalar(
            _SETTLE_DEMO_BILLS,
            {
                "estate_id": estate.id,
                "this_month": this_month,
                "company_code": company_code,
                "actor_id": actor_id,
                "first_number": first_number,
            },
        )
        or 0
    )
    await session.execute(
        text("UPDATE receipt_counters SET next_number = next_number + :n WHERE company_id = :id"),
        {"n": settled, "id": company_id},
    )
    return settled


# The demo devices of CONTRACT.md: (device id, estate, kind, name, location).
DEMO_DEVICES = (
    ("DEMO-A-SMOKE-01", "DEMO-A", DeviceKind.SMOKE_DETECTOR, "烟感 1号楼1单元", "1号楼1单元 1层大堂"),
    ("DEMO-A-TEMP-01", "DEMO-A", DeviceKind.TEMPERATURE_SENSOR, "水泵房温度", "地下一层水泵房"),
    ("DEMO-A-GATE-01", "DEMO-A", DeviceKind.GATE_CONTROLLER, "南门门禁", "南门人行通道"),
    ("DEMO-C-LEAK-01", "DEMO-C", DeviceKind.WATER_LEAK_DETECTOR, "水浸 地下车库", "地下车库集水井"),
)
# owner.a1's door card.
DEMO_CREDENTIAL = ("owner.a1", CredentialKind.CARD, "A1000001")


async def _ensure_devices(session: AsyncSession, report: SeedReport) -> None:
    existing = set(
        await session.scalars(select(Device.device_id).where(Device.device_id.in_([d[0] for d in DEMO_DEVICES])))
    )
    estates = {e.code: e.id for e in await session.scalars(select(Estate))}
    for device_id, estate_code, kind, name, location in DEMO_DEVICES:
        if device_id in existing:
            report.devices.existing += 1
            continue
        session.add(
            Device(device_id=device_id, estate_id=estates[estate_code], kind=kind, name=name, location=location)
        )
        report.devices.created += 1
    await session.flush()


async def _ensure_credentials(session: AsyncSession, users: dict[str, User], report: SeedReport) -> None:
    username, kind, identifier = DEMO_CREDENTIAL
    found = await session.scalar(
        select(Credential.id).where(Credential.kind == kind, Credential.identifier == identifier)
    )
    if found is not None:
        report.credentials.existing += 1
        return
    person_id = users[username].person_id
    assert person_id is not None
    session.add(
        Credential(
            person_id=person_id,
            kind=kind,
            identifier=identifier,
            valid_from=dt.datetime.combine(LATEST_DATE, dt.time(), dt.UTC),
        )
    )
    await session.flush()
    report.credentials.created += 1


async def _ensure_org_tree(session: AsyncSession, report: SeedReport) -> dict[str, OrgUnit]:
    codes = [spec.code for spec in ORG_TREE]
    org_units = {o.code: o for o in await session.scalars(select(OrgUnit).where(OrgUnit.code.in_(codes)))}
    report.org_units.existing += len(org_units)
    for spec in ORG_TREE:
        if spec.code in org_units:
            continue
        parent = org_units[spec.parent_code] if spec.parent_code else None
        # The path is made of ids, so it is known only after the insert.
        org_unit = OrgUnit(
            code=spec.code,
            name=spec.name,
            kind=spec.kind,
            parent_id=parent.id if parent else None,
            path=f"/pending-{spec.code}/",
        )
        session.add(org_unit)
        await session.flush()
        org_unit.path = f"{parent.path if parent else '/'}{org_unit.id}/"
        await session.flush()
        org_units[spec.code] = org_unit
        report.org_units.created += 1
    return org_units


async def _ensure_estate(session: AsyncSession, spec: EstateSpec, office: OrgUnit, report: SeedReport) -> Estate:
    estate = await session.scalar(select(Estate).where(Estate.code == spec.code))
    if estate is not None:
        report.estates.existing += 1
        return estate
    estate = Estate(code=spec.code, name=spec.name, address=spec.address, org_unit_id=office.id, org_path=office.path)
    session.add(estate)
    await session.flush()
    report.estates.created += 1
    return estate


async def _ensure_property(
    session: AsyncSession, estate: Estate, plan: EstatePlan, report: SeedReport
) -> dict[str, int]:
    """Buildings, entrances and units of one estate; returns unit ids by code."""
    building_ids = await _building_ids(session, estate.id)
    report.buildings.existing += sum(1 for code, _, _ in plan.buildings if code in building_ids)
    missing_buildings = [
        Building(estate_id=estate.id, code=code, name=name, floors=floors)
        for code, name, floors in plan.buildings
        if code not in building_ids
    ]
    if missing_buildings:
        session.add_all(missing_buildings)
        await session.flush()
        building_ids.update((b.code, b.id) for b in missing_buildings)
        report.buildings.created += len(missing_buildings)

    entrance_ids = await _entrance_ids(session, estate.id)
    report.entrances.existing += sum(1 for key in plan.entrances if key in entrance_ids)
    missing_entrances = {
        key: Entrance(building_id=building_ids[key[0]], code=key[1], name=f"{key[1]}单元")
        for key in plan.entrances
        if key not in entrance_ids
    }
    if missing_entrances:
        session.add_all(missing_entrances.values())
        await session.flush()
        entrance_ids.update((key, e.id) for key, e in missing_entrances.items())
        report.entrances.created += len(missing_entrances)

    unit_ids = await _unit_ids(session, estate.id)
    report.units.existing += sum(1 for unit in plan.units if unit.code in unit_ids)
    rows = [
        {
            "estate_id": estate.id,
            "building_id": building_ids[unit.building_code],
            "entrance_id": entrance_ids[(unit.building_code, unit.entrance_code)] if unit.entrance_code else None,
            "code": unit.code,
            "floor": unit.floor,
            "building_area": unit.building_area,
            "inner_area": unit.inner_area,
            "usage": unit.usage,
            "status": plan.statuses.get(unit.code, UnitStatus.VACANT),
        }
        for unit in plan.units
        if unit.code not in unit_ids
    ]
    if rows:
        await session.execute(insert(Unit), rows)
        report.units.created += len(rows)
        unit_ids = await _unit_ids(session, estate.id)
    return unit_ids


async def _building_ids(session: AsyncSession, estate_id: int) -> dict[str, int]:
    result = await session.execute(select(Building.code, Building.id).where(Building.estate_id == estate_id))
    return {code: id_ for code, id_ in result}


async def _entrance_ids(session: AsyncSession, estate_id: int) -> dict[tuple[str, str], int]:
    result = await session.execute(
        select(Building.code, Entrance.code, Entrance.id)
        .join(Building, Building.id == Entrance.building_id)
        .where(Building.estate_id == estate_id)
    )
    return {(building, entrance): id_ for building, entrance, id_ in result}


async def _unit_ids(session: AsyncSession, estate_id: int) -> dict[str, int]:
    result = await session.execute(select(Unit.code, Unit.id).where(Unit.estate_id == estate_id))
    return {code: id_ for code, id_ in result}


async def _ensure_people(
    session: AsyncSession, estate: Estate, plan: EstatePlan, unit_ids: dict[str, int], report: SeedReport
) -> None:
    populated = await session.scalar(
        select(Occupancy.id).join(Unit, Unit.id == Occupancy.unit_id).where(Unit.estate_id == estate.id).limit(1)
    )
    if populated is not None:
        report.persons.existing += len(plan.persons)
        report.occupancies.existing += len(plan.occupancies)
        return
    person_rows = [
        {"org_path": estate.org_path, "name": p.name, "phone": p.phone, "id_number": p.id_number, "email": p.email}
        for p in plan.persons
    ]
    person_ids: Sequence[int] = []
    if person_rows:
        result = await session.scalars(insert(Person).returning(Person.id, sort_by_parameter_order=True), person_rows)
        person_ids = result.all()
    occupancy_rows = [
        {
            "unit_id": unit_ids[o.unit_code],
            "person_id": person_ids[o.person],
            "role": o.role,
            "share": o.share,
            "start_date": o.start_date,
            "end_date": o.end_date,
        }
        for o in plan.occupancies
    ]
    if occupancy_rows:
        await session.execute(insert(Occupancy), occupancy_rows)
    report.persons.created += len(person_rows)
    report.occupancies.created += len(occupancy_rows)


async def _resident_owner(session: AsyncSession, spec: ResidentSpec) -> tuple[int, str]:
    """The id and name of the person who owns the resident account's unit now."""
    row = (
        await session.execute(
            select(Person.id, Person.name)
            .join(Occupancy, Occupancy.person_id == Person.id)
            .join(Unit, Unit.id == Occupancy.unit_id)
            .join(Estate, Estate.id == Unit.estate_id)
            .where(
                Estate.code == spec.estate_code,
                Unit.code == spec.unit_code,
                Occupancy.role == OccupancyRole.OWNER,
                Occupancy.end_date.is_(None),
            )
            .order_by(Occupancy.share.desc().nulls_last(), Occupancy.id)
            .limit(1)
        )
    ).first()
    if row is None:
        raise SeedError(f"{spec.estate_code} {spec.unit_code} has no current owner for {spec.username}")
    return row[0], row[1]


async def _ensure_users(session: AsyncSession, report: SeedReport) -> dict[str, User]:
    usernames = [s.username for s in STAFF] + [r.username for r in RESIDENTS]
    users = {u.username: u for u in await session.scalars(select(User).where(User.username.in_(usernames)))}
    report.users.existing += len(users)
    if len(users) == len(usernames):
        return users
    # argon2 is slow by design: hash the one shared demo password once, off the event loop.
    password_hash = await asyncio.to_thread(hash_password, DEMO_PASSWORD)
    created: list[User] = [
        User(username=s.username, password_hash=password_hash, kind=UserKind.STAFF, display_name=s.display_name)
        for s in STAFF
        if s.username not in users
    ]
    for resident in RESIDENTS:
        if resident.username in users:
            continue
        person_id, name = await _resident_owner(session, resident)
        created.append(
            User(
                username=resident.username,
                password_hash=password_hash,
                kind=UserKind.RESIDENT,
                person_id=person_id,
                display_name=name,
            )
        )
    session.add_all(created)
    await session.flush()
    users.update((u.username, u) for u in created)
    report.users.created += len(created)
    return users


async def _ensure_staff_persons(
    session: AsyncSession, users: dict[str, User], org_units: dict[str, OrgUnit], report: SeedReport
) -> None:
    """Staff accounts are people too: a person with a work phone (in their org unit), so the
    texts the product sends staff — alarms, escalations, dispatch — have somewhere to go."""
    missing = [s for s in STAFF if users[s.username].person_id is None]
    report.persons.existing += len(STAFF) - len(missing)
    persons = [Person(org_path=org_units[s.org_code].path, name=s.display_name, phone=s.phone) for s in missing]
    if not persons:
        return
    session.add_all(persons)
    await session.flush()
    for spec, person in zip(missing, persons, strict=True):
        users[spec.username].person_id = person.id
    await session.flush()
    report.persons.created += len(persons)


async def _ensure_role_grants(
    session: AsyncSession,
    users: dict[str, User],
    org_units: dict[str, OrgUnit],
    estate_paths: dict[str, str],
    report: SeedReport,
) -> None:
    grants = [(users[s.username], s.role, org_units[s.org_code].path) for s in STAFF]
    # A resident's domain is the office of their estate, the estate's own org_path.
    grants += [(users[r.username], RESIDENT_ROLE, estate_paths[r.estate_code]) for r in RESIDENTS]
    rows: list[dict[str, Any]] = [
        {"ptype": "g", "v0": f"u:{user.id}", "v1": role, "v2": path, "v3": "", "v4": "", "v5": ""}
        for user, role, path in grants
    ]
    statement = (
        pg_insert(CasbinRule)
        .values(rows)
        .on_conflict_do_nothing(constraint="uq_casbin_rule_line")
        .returning(CasbinRule.id)
    )
    created = len((await session.scalars(statement)).all())
    report.role_grants.created += created
    report.role_grants.existing += len(rows) - created
