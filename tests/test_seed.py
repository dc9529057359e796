"""The demo data of CONTRACT.md, seeded twice into a throwaway PostgreSQL database."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest_asyncio
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from authz.models import CasbinRule
from backend.access.models import Credential, CredentialKind
from backend.accounts.models import User, UserKind
from backend.accounts.passwords import verify_password
from backend.billing import reports
from backend.billing.models import Bill, BillLine, BillLineKind, BillStatus, Payment
from backend.db import local_today, make_engine, make_sessionmaker, transaction
from backend.devices.models import Device
from backend.migrate import upgrade
from backend.notifications.models import SmsMessage
from backend.people.models import Occupancy, OccupancyRole, Person
from backend.property.models import Building, Entrance, Estate, OrgUnit, OrgUnitKind, Unit, UnitUsage
from backend.seed import SeedReport, plan_demo, seed_demo

STAFF_GRANTS = {
    "admin": ("admin", "DEMO"),
    "manager.north": ("manager", "NORTH"),
    "cs.a": ("customer_service", "N1"),
    "finance.north": ("finance", "NORTH"),
    "tech.a": ("technician", "N1"),
    "guard.a": ("security_guard", "N1"),
    "supervisor.north": ("supervisor", "NORTH"),
    "supervisor.south": ("supervisor", "SOUTH"),
}
RESIDENT_HOMES = {
    "owner.a1": ("DEMO-A", "1-1-101"),
    "owner.a2": ("DEMO-A", "1-1-102"),
    "owner.c1": ("DEMO-C", "1-1-101"),
}
SEEDED_TABLES = (OrgUnit, Estate, Building, Entrance, Unit, Person, Occupancy, User, CasbinRule)


@dataclass
class SeededDemo:
    sessionmaker: async_sessionmaker[AsyncSession]
    first: SeedReport
    second: SeedReport
    first_seconds: float
    rows_after_first: dict[str, int]
    rows_after_second: dict[str, int]


async def _admin(admin_url: str, sql: str) -> None:
    # CREATE / DROP DATABASE cannot run inside a transaction.
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def _row_counts(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessionmaker() as session:
        return {
            model.__tablename__: (await session.scalar(select(func.count()).select_from(model))) or 0
            for model in SEEDED_TABLES
        }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo(services: Any) -> AsyncIterator[SeededDemo]:
    name = f"wuye_seed_test_{secrets.token_hex(4)}"
    admin_url = services.database_admin_url
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    engine = make_engine(url, pool_size=2)
    try:
        await asyncio.to_thread(upgrade, url)
        sessionmaker = make_sessionmaker(engine)
        started = time.perf_counter()
        async with transaction(sessionmaker) as session:
            first = await seed_demo(session)
        first_seconds = time.perf_counter() - started
        rows_after_first = await _row_counts(sessionmaker)
        async with transaction(sessionmaker) as session:
            second = await seed_demo(session)
        rows_after_second = await _row_counts(sessionmaker)
        print(f"\nseed_demo: first run {first_seconds:.2f}s; {first.summary()}")
        yield SeededDemo(sessionmaker, first, second, first_seconds, rows_after_first, rows_after_second)
    finally:
        await engine.dispose()
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _gb11643_valid(id_number: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    if not re.fullmatch(r"\d{17}[\dX]", id_number):
        return False
    total = sum(int(digit) * weight for digit, weight in zip(id_number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == id_number[17]


async def test_org_tree_paths_are_built_from_ids(demo: SeededDemo) -> None:
    # when
    async with demo.sessionmaker() as session:
        org_units = {o.code: o for o in await session.scalars(select(OrgUnit))}

    # then
    company = org_units["DEMO"]
    assert (company.name, company.kind, company.parent_id, company.path) == (
        "Demo Property Group",
        OrgUnitKind.COMPANY,
        None,
        f"/{company.id}/",
    )
    for code, name, kind, parent_code in [
        ("NORTH", "North", OrgUnitKind.BRANCH, "DEMO"),
        ("SOUTH", "South", OrgUnitKind.BRANCH, "DEMO"),
        ("N1", "N1", OrgUnitKind.OFFICE, "NORTH"),
        ("N2", "N2", OrgUnitKind.OFFICE, "NORTH"),
        ("S1", "S1", OrgUnitKind.OFFICE, "SOUTH"),
    ]:
        node, parent = org_units[code], org_units[parent_code]
        assert (node.name, node.kind, node.parent_id) == (name, kind, parent.id)
        assert node.path == f"{parent.path}{node.id}/"


async def test_each_estate_hangs_under_its_office(demo: SeededDemo) -> None:
    # when
    async with demo.sessionmaker() as session:
        rows = (
            await session.execute(
                select(Estate.code, Estate.name, Estate.address, Estate.org_path, OrgUnit.code, OrgUnit.path).join(
                    OrgUnit, OrgUnit.id == Estate.org_unit_id
                )
            )
        ).all()

    # then
    offices = {code: office for code, _, _, _, office, _ in rows}
    assert offices == {"DEMO-A": "N1", "DEMO-B": "N2", "DEMO-C": "S1"}
    for _, name, address, org_path, _, office_path in rows:
        assert org_path == office_path
        assert re.fullmatch(r"[\u4e00-\u9fff]+", name)
        assert address


async def test_there_are_at_least_2000_units_coded_building_entrance_floor_number(demo: SeededDemo) -> None:
    # when
    async with demo.sessionmaker() as session:
        units = (
            await session.execute(
                select(Estate.code, Building.code, Entrance.code, Unit)
                .join(Estate, Estate.id == Unit.estate_id)
                .join(Building, Building.id == Unit.building_id)
                .outerjoin(Entrance, Entrance.id == Unit.entrance_id)
            )
        ).all()

    # then
    assert len(units) >= 2000
    by_usage: dict[UnitUsage, int] = defaultdict(int)
    codes = set()
    for estate_code, building_code, entrance_code, unit in units:
        by_usage[unit.usage] += 1
        codes.add((estate_code, unit.code))
        assert unit.inner_area < unit.building_area
        assert unit.building_area == unit.building_area.quantize(Decimal("0.01"))
        if unit.usage is UnitUsage.PARKING:
            assert re.fullmatch(rf"{building_code}-1-\d{{3}}", unit.code)
        elif unit.usage in (UnitUsage.RESIDENTIAL, UnitUsage.COMMERCIAL):
            assert unit.code == f"{building_code}-{entrance_code}-{unit.floor}{unit.code[-2:]}"
            assert re.fullmatch(r"\d+-\d+-[1-9]\d*\d\d", unit.code)
    assert set(by_usage) == set(UnitUsage)
    assert by_usage[UnitUsage.RESIDENTIAL] > by_usage[UnitUsage.PARKING] > by_usage[UnitUsage.COMMERCIAL]
    assert {("DEMO-A", "1-1-101"), ("DEMO-A", "1-1-102"), ("DEMO-A", "2-1-1503"), ("DEMO-C", "1-1-101")} <= codes


async def test_demo_residents_are_the_current_owners_of_their_units(demo: SeededDemo) -> None:
    for username, (estate_code, unit_code) in RESIDENT_HOMES.items():
        # when
        async with demo.sessionmaker() as session:
            user = await session.scalar(select(User).where(User.username == username))
            owners = (
                await session.execute(
                    select(Occupancy.person_id, Occupancy.share)
                    .join(Unit, Unit.id == Occupancy.unit_id)
                    .join(Estate, Estate.id == Unit.estate_id)
                    .where(
                        Estate.code == estate_code,
                        Unit.code == unit_code,
                        Occupancy.role == OccupancyRole.OWNER,
                        Occupancy.end_date.is_(None),
                    )
                )
            ).all()
            estate_path = await session.scalar(select(Estate.org_path).where(Estate.code == estate_code))
            grants = (
                await session.scalars(select(CasbinRule).where(CasbinRule.v0 == f"u:{user.id if user else 0}"))
            ).all()

        # then
        assert user is not None
        assert user.kind is UserKind.RESIDENT
        assert [(row.person_id, row.share) for row in owners] == [(user.person_id, Decimal("100.00"))]
        assert [(g.ptype, g.v1, g.v2) for g in grants] == [("g", "resident", estate_path)]


async def test_staff_hold_the_roles_of_the_contract_table(demo: SeededDemo) -> None:
    # when
    async with demo.sessionmaker() as session:
        paths = dict((await session.execute(select(OrgUnit.code, OrgUnit.path))).all())
        users = {u.username: u for u in await session.scalars(select(User).where(User.kind == UserKind.STAFF))}
        grants = (await session.scalars(select(CasbinRule).where(CasbinRule.ptype == "g"))).all()

    # then
    assert set(users) == set(STAFF_GRANTS)
    held = {(g.v0, g.v1, g.v2) for g in grants}
    for username, (role, org_code) in STAFF_GRANTS.items():
        assert (f"u:{users[username].id}", role, paths[org_code]) in held
        assert users[username].person_id is not None  # with a work phone (alarm texts)
        assert users[username].display_name


async def test_every_demo_account_logs_in_with_demo1234(demo: SeededDemo) -> None:
    # when
    async with demo.sessionmaker() as session:
        hashes = dict((await session.execute(select(User.username, User.password_hash))).all())

    # then
    assert set(hashes) == set(STAFF_GRANTS) | set(RESIDENT_HOMES)
    assert len(set(hashes.values())) == 1  # hashed once, shared
    assert await verify_password(hashes["admin"], "demo1234")
    assert not await verify_password(hashes["owner.a1"], "demo12345")


async def test_every_id_number_has_a_valid_gb11643_checksum_and_birth_date(demo: SeededDemo) -> None:
    # when (residents: staff persons carry a work phone and nothing else)
    async with demo.sessionmaker() as session:
        id_numbers = (
            await session.scalars(select(Person.id_number).where(Person.id.in_(select(Occupancy.person_id))))
        ).all()
        staff_ids = (
            await session.scalars(
                select(Person.id_number).join(User, User.person_id == Person.id).where(User.kind == UserKind.STAFF)
            )
        ).all()
    assert staff_ids
    assert set(staff_ids) == {None}

    # then
    assert all(id_number is not None and _gb11643_valid(id_number) for id_number in id_numbers)
    assert len(set(id_numbers)) == len(id_numbers)
    for id_number in id_numbers:
        assert id_number is not None
        born = dt.datetime.strptime(id_number[6:14], "%Y%m%d").date()
        assert dt.date(1920, 1, 1) < born < dt.date.today()


async def test_every_phone_is_an_eleven_digit_mobile_number(demo: SeededDemo) -> None:
    # when
    async with demo.sessionmaker() as session:
        phones = (await session.scalars(select(Person.phone))).all()
        emails = (await session.scalars(select(Person.email).where(Person.email.is_not(None)))).all()

    # then
    with_phone = [phone for phone in phones if phone is not None]
    assert len(with_phone) > 0.9 * len(phones)  # only children have none
    assert all(re.fullmatch(r"1(3\d|5\d|8\d|9\d)\d{8}", phone) for phone in with_phone)
    assert len(set(with_phone)) == len(with_phone)
    assert emails
    assert all(re.fullmatch(r"[\w.]+@[\w.]+\.\w+", email or "") for email in emails)


async def test_most_homes_are_owned_and_transfers_keep_history(demo: SeededDemo) -> None:
    # when
    async with demo.sessionmaker() as session:
        homes = (await session.scalar(select(func.count()).where(Unit.usage == UnitUsage.RESIDENTIAL))) or 0
        occupancies = (
            await session.scalars(
                select(Occupancy).join(Unit, Unit.id == Occupancy.unit_id).where(Unit.usage == UnitUsage.RESIDENTIAL)
            )
        ).all()

    # then
    shares: dict[int, Decimal] = defaultdict(Decimal)
    current_owner_since: dict[int, dt.date] = {}
    for o in occupancies:
        assert o.start_date < dt.date.today()
        if o.role is OccupancyRole.OWNER and o.end_date is None:
            shares[o.unit_id] += o.share or Decimal(0)
            current_owner_since[o.unit_id] = o.start_date
    assert 0.80 < len(shares) / homes < 0.90
    assert set(shares.values()) == {Decimal("100.00")}
    assert {o.role for o in occupancies} == set(OccupancyRole)
    sellers = [o for o in occupancies if o.role is OccupancyRole.OWNER and o.end_date is not None]
    assert sellers
    for seller in sellers:
        assert seller.end_date == current_owner_since[seller.unit_id]


async def test_a_second_run_creates_and_changes_nothing(demo: SeededDemo) -> None:
    # then
    assert demo.second.created == 0
    assert demo.rows_after_second == demo.rows_after_first
    first = {name: count.created for name, count in demo.first.counts().items()}
    second = {name: count.existing for name, count in demo.second.counts().items()}
    assert first == second
    assert demo.rows_after_first["units"] == demo.first.units.created
    assert demo.rows_after_first["persons"] == demo.first.persons.created


def test_the_plan_is_deterministic() -> None:
    # when
    first, second = plan_demo(), plan_demo()

    # then
    assert first == second


async def test_contract_devices_and_card_credential_exist(demo: SeededDemo) -> None:
    # given the seeded demo
    async with demo.sessionmaker() as session:
        # when
        devices = {d.device_id: estate for d, estate in await session.execute(select(Device, Estate.code).join(Estate))}
        card = await session.scalar(
            select(Credential).where(Credential.kind == CredentialKind.CARD, Credential.identifier == "A1000001")
        )
        owner = await session.scalar(select(User).where(User.username == "owner.a1"))
    # then
    assert devices == {
        "DEMO-A-SMOKE-01": "DEMO-A",
        "DEMO-A-TEMP-01": "DEMO-A",
        "DEMO-A-GATE-01": "DEMO-A",
        "DEMO-C-LEAK-01": "DEMO-C",
    }
    assert card is not None
    assert owner is not None
    assert card.person_id == owner.person_id
    assert card.reference == "card:A1000001"


async def test_the_demo_has_a_few_waived_bills_each_with_its_waiver_line(demo: SeededDemo) -> None:
    # given the seeded demo
    async with demo.sessionmaker() as session:
        # when
        waived = (await session.scalars(select(Bill).where(Bill.status == BillStatus.WAIVED))).all()
        lines = {
            bill_id: amount
            for bill_id, amount in await session.execute(
                select(BillLine.bill_id, BillLine.amount).where(BillLine.kind == BillLineKind.WAIVER)
            )
        }
    # then a few, each waived in full, owing nothing
    assert 3 <= len(waived) <= 100
    assert all(lines[b.id] == b.amount and b.outstanding == 0 for b in waived)


async def test_the_demo_has_paid_partial_and_overdue_bills_in_every_aging_bucket(demo: SeededDemo) -> None:
    # given the seeded demo
    async with demo.sessionmaker() as session:
        # when
        statuses = set(await session.scalars(select(Bill.status).distinct()))
        receipts = (await session.scalars(select(Payment.receipt_number).order_by(Payment.receipt_number))).all()
        estate_id = await session.scalar(select(Estate.id).where(Estate.code == "DEMO-A"))
        assert estate_id is not None
        buckets = await reports.arrears_aging(session, estate_id=estate_id, today=local_today())
    # then
    assert statuses == {BillStatus.PAID, BillStatus.PARTIAL, BillStatus.UNPAID, BillStatus.WAIVED}
    assert [int(r.rsplit("-", 1)[1]) for r in receipts if r] == list(range(1, len(receipts) + 1))
    assert all(b.amount > 0 and b.units > 0 for b in buckets), buckets


async def test_the_demo_history_owes_no_texts(demo: SeededDemo) -> None:
    # when
    async with demo.sessionmaker() as session:
        rows = await session.execute(select(SmsMessage.status, func.count()).group_by(SmsMessage.status))
        statuses = {status: count for status, count in rows}
    # then its old tickets' texts to staff are kept, but none waits to be sent at start-up
    assert statuses.get("SKIPPED", 0) > 0
    assert "QUEUED" not in statuses
