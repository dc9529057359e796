"""Every root field × every demo role: allowed, denied (and nothing written), or out of scope.

The expected verdicts are read off authz/policy.csv with the demo grants of CONTRACT.md:
admin at the company (/1/); manager, finance and supervisor.north at branch North (/1/2/);
cs.a, tech.a and guard.a at office N1 (/1/2/3/, estate DEMO-A); supervisor.south at branch
South (/1/5/, estate DEMO-C); owner.a1 a resident of DEMO-A. "North" targets are fresh objects
under office N1, "South" ones under office S1, so every cell starts from the same state.

    allowed   — the payload has no errors and the row exists afterwards
    forbidden — a top-level FORBIDDEN error (UNAUTHENTICATED for anonymous) and nothing
                written: no row, no audit entry for the request, no casbin_rule line
    out_of_scope — NOT_FOUND in the payload (queries: null / not listed), nothing written
"""

from __future__ import annotations

from typing import Any

import pytest
from authz_calls import ROLES, Reply, Verdict, case, cases, role_id, row, send, send_upload
from authz_factories import FreshEstate, Scratch, gid
from sqlalchemy import select

from authz.models import CasbinRule
from authz.rules import subject
from backend.accounts.models import RefreshToken, UserKind
from backend.audit.models import AuditEntry
from backend.db import local_today
from backend.notifications.models import Announcement, Notification
from backend.people.models import Occupancy, Person
from backend.property.models import Building, Estate, Unit

A = Verdict.ALLOWED
F = Verdict.FORBIDDEN
U = Verdict.UNAUTHENTICATED
N = Verdict.OUT_OF_SCOPE  # not found: out of scope

# --- documents --------------------------------------------------------------------------------

VIEWER = """
query Viewer { viewer { id username kind roles { role orgUnit { id } } } }
"""

NODE = """
query Node($id: ID!) { node(id: $id) { __typename id ... on Unit { code } } }
"""

ESTATES = """
query Estates { estates(first: 100, filter: {codePrefix: "DEMO-"}) { totalCount edges { node { code } } } }
"""

UNITS_PER_ESTATE = """
query UnitsPerEstate($a: ID!, $b: ID!, $c: ID!) {
  a: units(first: 1, filter: {estateId: $a}) { totalCount }
  b: units(first: 1, filter: {estateId: $b}) { totalCount }
  c: units(first: 1, filter: {estateId: $c}) { totalCount }
}
"""

PEOPLE_BY_NAME = """
query PeopleByName($a1: String!, $a2: String!, $b: String!, $c1: String!) {
  a1: people(first: 100, filter: {nameContains: $a1}) { edges { node { id } } }
  a2: people(first: 100, filter: {nameContains: $a2}) { edges { node { id } } }
  b: people(first: 100, filter: {nameContains: $b}) { edges { node { id } } }
  c1: people(first: 100, filter: {nameContains: $c1}) { edges { node { id } } }
}
"""

ORG_UNITS = """
query OrgUnits { orgUnits(first: 50) { edges { node { code } } } }
"""

USERS = """
query Users { users(first: 100) { edges { node { username } } } }
"""

ANNOUNCEMENTS = """
query Announcements($category: String!) {
  announcements(first: 100, filter: {category: $category}) { totalCount edges { node { id } } }
}
"""

CREATE_ESTATE = """
mutation CreateEstate($input: CreateEstateInput!) {
  createEstate(input: $input) { estate { id code } errors { field code message } }
}
"""

CREATE_BUILDING = """
mutation CreateBuilding($input: CreateBuildingInput!) {
  createBuilding(input: $input) { building { id code } errors { field code message } }
}
"""

GENERATE_UNITS = """
mutation GenerateUnits($input: GenerateUnitsInput!) {
  generateUnits(input: $input) { createdCount units { code } errors { field code message } }
}
"""

IMPORT_UNITS = """
mutation ImportUnits($input: ImportUnitsInput!) {
  importUnits(input: $input) { createdCount errors { field code message } }
}
"""

CREATE_PERSON = """
mutation CreatePerson($input: CreatePersonInput!) {
  createPerson(input: $input) { person { id name } errors { field code message } }
}
"""

ADD_OCCUPANCY = """
mutation AddOccupancy($input: AddOccupancyInput!) {
  addOccupancy(input: $input) { occupancy { id role } errors { field code message } }
}
"""

END_OCCUPANCY = """
mutation EndOccupancy($input: EndOccupancyInput!) {
  endOccupancy(input: $input) { occupancy { id endDate } errors { field code message } }
}
"""

GRANT_ROLE = """
mutation GrantRole($input: RoleInput!) {
  grantRole(input: $input) { roleAssignment { role orgUnit { id } } errors { field code message } }
}
"""

REVOKE_ROLE = """
mutation RevokeRole($input: RoleInput!) {
  revokeRole(input: $input) { errors { field code message } }
}
"""

PUBLISH_ANNOUNCEMENT = """
mutation PublishAnnouncement($input: PublishAnnouncementInput!) {
  publishAnnouncement(input: $input) { announcement { id title } errors { field code message } }
}
"""

MARK_NOTIFICATIONS_READ = """
mutation MarkNotificationsRead($input: MarkNotificationsReadInput!) {
  markNotificationsRead(input: $input) { markedCount errors { field code message } }
}
"""

LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) { accessToken refreshToken expiresAt viewer { username } errors { field code message } }
}
"""

REFRESH_TOKEN = """
mutation RefreshToken($input: RefreshTokenInput!) {
  refreshToken(input: $input) { accessToken refreshToken expiresAt errors { field code message } }
}
"""

LOGOUT = """
mutation Logout($input: LogoutInput!) { logout(input: $input) { errors { field code message } } }
"""

# --- expectations, read off policy.csv ---------------------------------------------------------
#                         admin mgr.n cs.a fin  tech guard sup.n sup.s owner anon

# Estate/Building/Unit create: admin and manager only (manager's `*` row).
PROPERTY_WRITE = row(A, A, F, F, F, F, F, F, F, U)
# Person create, Occupancy create/update: admin, manager, customer_service.
PEOPLE_WRITE = row(A, A, A, F, F, F, F, F, F, U)
# RoleAssignment grant: admin only; manager's deny row wins over its `*` allow.
ROLE_GRANT = row(A, F, F, F, F, F, F, F, F, U)
# Announcement publish: admin, manager, customer_service, supervisor; South's supervisor
# holds it, but a North estate is not in its scope.
ANNOUNCEMENT_PUBLISH = row(A, A, A, F, F, F, A, N, F, U)
# The caller's own notifications, and the public token endpoints.
OWN_NOTIFICATIONS = row(A, A, A, A, A, A, A, A, A, U)
PUBLIC = row(A, A, A, A, A, A, A, A, A, A)

# Reads: which demo estates each caller sees (staff: under their grants; residents: their own).
ESTATES_SEEN: dict[str | None, set[str]] = {
    "admin": {"DEMO-A", "DEMO-B", "DEMO-C"},
    "manager.north": {"DEMO-A", "DEMO-B"},
    "cs.a": {"DEMO-A"},
    "finance.north": {"DEMO-A", "DEMO-B"},
    "tech.a": {"DEMO-A"},
    "guard.a": {"DEMO-A"},
    "supervisor.north": {"DEMO-A", "DEMO-B"},
    "supervisor.south": {"DEMO-C"},
    "owner.a1": {"DEMO-A"},
    None: set(),
}
# Whose person each caller may read (supervisors hold no `Person read`; a resident only self).
PERSONS_SEEN: dict[str | None, set[str]] = {
    "admin": {"a1", "a2", "b", "c1"},
    "manager.north": {"a1", "a2", "b"},
    "cs.a": {"a1", "a2"},
    "finance.north": {"a1", "a2", "b"},
    "tech.a": {"a1", "a2"},
    "guard.a": {"a1", "a2"},
    "supervisor.north": set(),
    "supervisor.south": set(),
    "owner.a1": {"a1"},
    None: set(),
}
# Announcements to DEMO-A ("A") and to DEMO-C ("C").
ANNOUNCEMENTS_SEEN: dict[str | None, set[str]] = {
    role: {code[-1] for code in seen} - {"B"} for role, seen in ESTATES_SEEN.items()
}

# Org units: every staff role reads the org units where it holds a role, and those below.
ORG_UNITS_SEEN: dict[str | None, set[str]] = {
    "admin": {"DEMO", "NORTH", "N1", "N2", "SOUTH", "S1"},
    "manager.north": {"NORTH", "N1", "N2"},
    "cs.a": {"N1"},
    "finance.north": {"NORTH", "N1", "N2"},
    "tech.a": {"N1"},
    "guard.a": {"N1"},
    "supervisor.north": {"NORTH", "N1", "N2"},
    "supervisor.south": {"SOUTH", "S1"},
    "owner.a1": set(),
    None: set(),
}
# Accounts: `User read` (admin, manager): staff granted under the caller's org units and the
# residents of their estates.
DEMO_ACCOUNTS = {
    "admin",
    "manager.north",
    "cs.a",
    "finance.north",
    "tech.a",
    "guard.a",
    "supervisor.north",
    "supervisor.south",
    "owner.a1",
    "owner.a2",
    "owner.c1",
}
USERS_SEEN: dict[str | None, set[str]] = {
    "admin": DEMO_ACCOUNTS,
    "manager.north": DEMO_ACCOUNTS - {"admin", "supervisor.south", "owner.c1"},
    **{role: set() for role in ROLES[2:]},
}

OFFICE_PATHS = {"N1": "/1/2/3/", "S1": "/1/5/6/"}


def read_cases(table: dict[str | None, Any]) -> list[Any]:
    return [pytest.param(role, expected, id=role_id(role)) for role, expected in table.items()]


async def assert_audited_only_if_allowed(scratch: Scratch, reply: Reply, expected: Verdict) -> None:
    entries = await scratch.audit_entries(reply.request_id)
    assert (entries > 0) == (expected is A), entries


# --- queries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "expected"), read_cases({role: role for role in ROLES}))
async def test_viewer(as_user: Any, role: str | None, expected: str | None) -> None:
    # given
    client = await as_user(role)
    # when
    data = await client.data(VIEWER)
    # then
    if expected is None:
        assert data == {"viewer": None}
    else:
        assert data["viewer"]["username"] == expected
        assert data["viewer"]["roles"], "every demo account holds a role"


async def read(client: Any, role: str | None, document: str, variables: dict[str, Any] | None = None) -> Any:
    """The data of a read; for anonymous callers, assert UNAUTHENTICATED and return None."""
    if role is not None:
        return await client.data(document, variables)
    body = await client.execute(document, variables)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"] * len(body["errors"])
    assert not any((body.get("data") or {}).values())
    return None


@pytest.mark.parametrize(("role", "expected"), read_cases({role: "DEMO-A" in ESTATES_SEEN[role] for role in ROLES}))
async def test_node_of_a_demo_a_unit(as_user: Any, demo: Any, role: str | None, expected: bool) -> None:
    # given
    client = await as_user(role)
    unit_id = gid("Unit", demo.residents["owner.a1"].unit_id)
    # when
    data = await read(client, role, NODE, {"id": unit_id})
    if data is None:
        return
    # then
    if expected:
        assert data["node"] == {"__typename": "Unit", "id": unit_id, "code": "1-1-101"}
    else:
        assert data == {"node": None}


@pytest.mark.parametrize(("role", "expected"), read_cases(ESTATES_SEEN))
async def test_estates(as_user: Any, role: str | None, expected: set[str]) -> None:
    # given
    client = await as_user(role)
    # when
    data = await read(client, role, ESTATES)
    if data is None:
        return
    # then
    assert {edge["node"]["code"] for edge in data["estates"]["edges"]} == expected
    assert data["estates"]["totalCount"] == len(expected)


@pytest.mark.parametrize(("role", "expected"), read_cases(ESTATES_SEEN))
async def test_units(as_user: Any, demo: Any, role: str | None, expected: set[str]) -> None:
    # given
    client = await as_user(role)
    estates = {key: gid("Estate", demo.estates[f"DEMO-{key.upper()}"]) for key in "abc"}
    # when
    data = await read(client, role, UNITS_PER_ESTATE, estates)
    if data is None:
        return
    # then
    seen = {f"DEMO-{key.upper()}" for key in "abc" if data[key]["totalCount"] > 0}
    assert seen == expected
    if role == "owner.a1":
        assert data["a"]["totalCount"] == 1, "a resident sees their own unit only"


@pytest.mark.parametrize(("role", "expected"), read_cases(PERSONS_SEEN))
async def test_people(as_user: Any, demo: Any, role: str | None, expected: set[str]) -> None:
    # given
    client = await as_user(role)
    persons = {
        "a1": demo.residents["owner.a1"],
        "a2": demo.residents["owner.a2"],
        "b": demo.b_resident,
        "c1": demo.residents["owner.c1"],
    }
    # when
    data = await read(client, role, PEOPLE_BY_NAME, {key: person.name for key, person in persons.items()})
    if data is None:
        return
    # then
    seen = {
        key
        for key, person in persons.items()
        if gid("Person", person.person_id) in {edge["node"]["id"] for edge in data[key]["edges"]}
    }
    assert seen == expected


@pytest.mark.parametrize(("role", "expected"), read_cases(ORG_UNITS_SEEN))
async def test_org_units(as_user: Any, role: str | None, expected: set[str]) -> None:
    # given
    client = await as_user(role)
    # when
    data = await read(client, role, ORG_UNITS)
    if data is None:
        return
    # then
    assert {edge["node"]["code"] for edge in data["orgUnits"]["edges"]} == expected


@pytest.mark.parametrize(("role", "expected"), read_cases(USERS_SEEN))
async def test_users(as_user: Any, role: str | None, expected: set[str]) -> None:
    # given
    client = await as_user(role)
    # when
    data = await read(client, role, USERS)
    if data is None:
        return
    # then
    assert {edge["node"]["username"] for edge in data["users"]["edges"]} & DEMO_ACCOUNTS == expected


@pytest.mark.parametrize(("role", "expected"), read_cases(ANNOUNCEMENTS_SEEN))
async def test_announcements(as_user: Any, demo: Any, scratch: Scratch, role: str | None, expected: set[str]) -> None:
    # given
    published = {
        "A": gid("Announcement", await scratch.announcement([demo.estates["DEMO-A"]])),
        "C": gid("Announcement", await scratch.announcement([demo.estates["DEMO-C"]])),
    }
    client = await as_user(role)
    # when
    data = await read(client, role, ANNOUNCEMENTS, {"category": scratch.category})
    if data is None:
        return
    # then
    listed = {edge["node"]["id"] for edge in data["announcements"]["edges"]}
    assert {key for key, announcement_id in published.items() if announcement_id in listed} == expected
    assert data["announcements"]["totalCount"] == len(expected)


# --- property mutations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "where", "expected"),
    [
        *cases(PROPERTY_WRITE, "N1"),
        case("admin", "S1", A),
        case("manager.north", "S1", N),
        case("supervisor.south", "S1", F),
    ],
)
async def test_create_estate(
    as_user: Any, demo: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    client = await as_user(role)
    code = scratch.code()
    # when
    reply = await send(
        client, CREATE_ESTATE, {"input": {"officeId": demo.org_gid(where), "code": code, "name": scratch.name("小区")}}
    )
    # then
    assert reply.verdict("createEstate") is expected
    assert await scratch.count(select(Estate).where(Estate.code == code)) == (expected is A)
    await assert_audited_only_if_allowed(scratch, reply, expected)


@pytest.mark.parametrize(
    ("role", "where", "expected"),
    [*cases(PROPERTY_WRITE, "N1"), case("admin", "S1", A), case("manager.north", "S1", N)],
)
async def test_create_building(as_user: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict) -> None:
    # given
    estate = await scratch.estate(where)
    client = await as_user(role)
    # when
    reply = await send(
        client, CREATE_BUILDING, {"input": {"estateId": gid("Estate", estate.id), "code": "7", "entrances": 2}}
    )
    # then
    assert reply.verdict("createBuilding") is expected
    assert await scratch.count(select(Building).where(Building.estate_id == estate.id, Building.code == "7")) == (
        expected is A
    )
    await assert_audited_only_if_allowed(scratch, reply, expected)


async def units_of(scratch: Scratch, estate: FreshEstate) -> int:
    return await scratch.count(select(Unit).where(Unit.estate_id == estate.id))


@pytest.mark.parametrize(
    ("role", "where", "expected"),
    [*cases(PROPERTY_WRITE, "N1"), case("admin", "S1", A), case("manager.north", "S1", N)],
)
async def test_generate_units(as_user: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict) -> None:
    # given
    estate = await scratch.estate(where)
    client = await as_user(role)
    plan = {
        "buildingId": gid("Building", estate.building_id),
        "entrances": ["2"],
        "fromFloor": 1,
        "toFloor": 2,
        "unitsPerFloor": 2,
        "buildingArea": "90.00",
        "innerArea": "70.00",
    }
    # when
    reply = await send(client, GENERATE_UNITS, {"input": plan})
    # then
    assert reply.verdict("generateUnits") is expected
    assert await units_of(scratch, estate) == (5 if expected is A else 1)
    await assert_audited_only_if_allowed(scratch, reply, expected)


UNITS_CSV = b"building,entrance,floor,number,area,inner_area,usage\r\n1,1,2,1,90,70,residential\r\n1,1,2,2,90,70,residential\r\n"


@pytest.mark.parametrize(
    ("role", "where", "expected"),
    [*cases(PROPERTY_WRITE, "N1"), case("admin", "S1", A), case("manager.north", "S1", N)],
)
async def test_import_units(as_user: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict) -> None:
    # given
    estate = await scratch.estate(where)
    client = await as_user(role)
    # when
    reply = await send_upload(
        client,
        IMPORT_UNITS,
        {"input": {"estateId": gid("Estate", estate.id), "file": None}},
        "variables.input.file",
        "units.csv",
        UNITS_CSV,
    )
    # then
    assert reply.verdict("importUnits") is expected
    if expected is A:
        assert reply.payload("importUnits")["createdCount"] == 2
    assert await units_of(scratch, estate) == (3 if expected is A else 1)
    await assert_audited_only_if_allowed(scratch, reply, expected)


# --- people mutations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "where", "expected"),
    [
        *cases(PEOPLE_WRITE, "N1"),
        case("admin", "S1", A),
        case("manager.north", "S1", N),
        case("manager.north", "NORTH", A),
        case("cs.a", "S1", N),
        case("cs.a", "NORTH", N),  # above the office where cs.a holds its role
    ],
)
async def test_create_person(
    as_user: Any, demo: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    client = await as_user(role)
    name = scratch.name("新住户")
    # when
    reply = await send(client, CREATE_PERSON, {"input": {"orgUnitId": demo.org_gid(where), "name": name}})
    # then
    assert reply.verdict("createPerson") is expected
    assert await scratch.count(select(Person).where(Person.name == name)) == (expected is A)
    await assert_audited_only_if_allowed(scratch, reply, expected)


@pytest.mark.parametrize(
    ("role", "where", "expected"),
    [*cases(PEOPLE_WRITE, "N1"), case("admin", "S1", A), case("manager.north", "S1", N), case("cs.a", "S1", N)],
)
async def test_add_occupancy(as_user: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict) -> None:
    # given
    estate = await scratch.estate(where)
    person_id = await scratch.person(estate.org_path)
    client = await as_user(role)
    # when
    reply = await send(
        client,
        ADD_OCCUPANCY,
        {"input": {"unitId": gid("Unit", estate.unit_id), "personId": gid("Person", person_id), "role": "OWNER"}},
    )
    # then
    assert reply.verdict("addOccupancy") is expected
    written = select(Occupancy).where(Occupancy.unit_id == estate.unit_id, Occupancy.person_id == person_id)
    assert await scratch.count(written) == (expected is A)
    await assert_audited_only_if_allowed(scratch, reply, expected)


@pytest.mark.parametrize(
    ("role", "where", "expected"),
    [*cases(PEOPLE_WRITE, "N1"), case("admin", "S1", A), case("manager.north", "S1", N), case("cs.a", "S1", N)],
)
async def test_end_occupancy(as_user: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict) -> None:
    # given
    estate = await scratch.estate(where)
    occupancy_id = await scratch.occupancy(estate.unit_id, await scratch.person(estate.org_path))
    client = await as_user(role)
    # when
    reply = await send(client, END_OCCUPANCY, {"input": {"occupancyId": gid("Occupancy", occupancy_id)}})
    # then
    assert reply.verdict("endOccupancy") is expected
    end_date = await scratch.scalar(select(Occupancy.end_date).where(Occupancy.id == occupancy_id))
    assert end_date == (local_today() if expected is A else None)
    await assert_audited_only_if_allowed(scratch, reply, expected)


# --- roles -------------------------------------------------------------------------------------


def grant_lines(user_id: int) -> Any:
    return select(CasbinRule).where(CasbinRule.ptype == "g", CasbinRule.v0 == subject(user_id))


@pytest.mark.parametrize(("role", "where", "expected"), [*cases(ROLE_GRANT, "N1"), case("admin", "S1", A)])
async def test_grant_role(
    as_user: Any, demo: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    target = await scratch.user(UserKind.STAFF)
    client = await as_user(role)
    # when
    reply = await send(
        client,
        GRANT_ROLE,
        {"input": {"userId": gid("User", target.id), "role": "technician", "orgUnitId": demo.org_gid(where)}},
    )
    # then
    assert reply.verdict("grantRole") is expected
    assert await scratch.count(grant_lines(target.id)) == (expected is A)
    await assert_audited_only_if_allowed(scratch, reply, expected)


@pytest.mark.parametrize(("role", "where", "expected"), [*cases(ROLE_GRANT, "N1"), case("admin", "S1", A)])
async def test_revoke_role(
    as_user: Any, demo: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    target = await scratch.user(UserKind.STAFF)
    await scratch.grant(target.id, "technician", OFFICE_PATHS[where])
    client = await as_user(role)
    # when
    reply = await send(
        client,
        REVOKE_ROLE,
        {"input": {"userId": gid("User", target.id), "role": "technician", "orgUnitId": demo.org_gid(where)}},
    )
    # then
    assert reply.verdict("revokeRole") is expected
    assert await scratch.count(grant_lines(target.id)) == (0 if expected is A else 1)
    await assert_audited_only_if_allowed(scratch, reply, expected)


# --- notifications -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "where", "expected"),
    [
        *cases(ANNOUNCEMENT_PUBLISH, "N1"),
        case("admin", "N1+S1", A),
        case("supervisor.south", "S1", A),
        case("supervisor.north", "N1+S1", N),
        case("manager.north", "S1", N),
        case("cs.a", "S1", N),
    ],
)
async def test_publish_announcement(
    as_user: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    estates = [await scratch.estate(office) for office in where.split("+")]
    client = await as_user(role)
    title = scratch.name("停电通知")
    # when
    reply = await send(
        client,
        PUBLISH_ANNOUNCEMENT,
        {"input": {"estateIds": [gid("Estate", e.id) for e in estates], "title": title, "body": "明日停电"}},
    )
    # then
    assert reply.verdict("publishAnnouncement") is expected
    assert await scratch.count(select(Announcement).where(Announcement.title == title)) == (expected is A)
    await assert_audited_only_if_allowed(scratch, reply, expected)


def read_at(notification_id: int) -> Any:
    return select(Notification.read_at).where(Notification.id == notification_id)


@pytest.mark.parametrize(("role", "where", "expected"), cases(OWN_NOTIFICATIONS, "own"))
async def test_mark_notifications_read(
    as_user: Any, demo: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    others = await scratch.notification(demo.users["owner.a2"])
    own = await scratch.notification(demo.users[role]) if role else None
    client = await as_user(role)
    ids = [gid("Notification", i) for i in (own, others) if i is not None]
    # when
    reply = await send(client, MARK_NOTIFICATIONS_READ, {"input": {"ids": ids}})
    # then
    assert reply.verdict("markNotificationsRead") is expected
    assert await scratch.scalar(read_at(others)) is None, "another user's notification stays unread"
    if own is not None:
        assert reply.payload("markNotificationsRead")["markedCount"] == 1
        assert await scratch.scalar(read_at(own)) is not None


# --- the token endpoints (public by design) ----------------------------------------------------


def account_of(role: str | None) -> str:
    return role or "owner.a2"


def tokens_of(user_id: int) -> Any:
    return select(RefreshToken).where(RefreshToken.user_id == user_id)


async def fresh_refresh_token(as_user: Any, username: str) -> str:
    anonymous = await as_user(None)
    data = await anonymous.data(LOGIN, {"input": {"username": username, "password": "demo1234"}})
    token: str = data["login"]["refreshToken"]
    return token


@pytest.mark.parametrize(("role", "where", "expected"), cases(PUBLIC, "own-account"))
async def test_login(
    as_user: Any, demo: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    client = await as_user(role)
    account = account_of(role)
    before = await scratch.count(tokens_of(demo.users[account]))
    # when
    reply = await send(client, LOGIN, {"input": {"username": account, "password": "demo1234"}})
    # then
    assert reply.verdict("login") is expected
    assert reply.payload("login")["viewer"] == {"username": account}
    assert await scratch.count(tokens_of(demo.users[account])) == before + 1
    logged = select(AuditEntry).where(AuditEntry.request_id == reply.request_id, AuditEntry.action == "login")
    assert await scratch.count(logged) == 1


@pytest.mark.parametrize(("role", "where", "expected"), cases(PUBLIC, "own-account"))
async def test_refresh_token(
    as_user: Any, demo: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    account = account_of(role)
    refresh_token = await fresh_refresh_token(as_user, account)
    before = await scratch.count(tokens_of(demo.users[account]))
    client = await as_user(role)
    # when
    reply = await send(client, REFRESH_TOKEN, {"input": {"refreshToken": refresh_token}})
    # then
    assert reply.verdict("refreshToken") is expected
    assert reply.payload("refreshToken")["refreshToken"] not in (None, refresh_token)
    assert await scratch.count(tokens_of(demo.users[account])) == before + 1


@pytest.mark.parametrize(("role", "where", "expected"), cases(PUBLIC, "own-account"))
async def test_logout(
    as_user: Any, demo: Any, scratch: Scratch, role: str | None, where: str, expected: Verdict
) -> None:
    # given
    account = account_of(role)
    refresh_token = await fresh_refresh_token(as_user, account)
    client = await as_user(role)
    # when
    reply = await send(client, LOGOUT, {"input": {"refreshToken": refresh_token}})
    # then
    assert reply.verdict("logout") is expected
    anonymous = await as_user(None)
    spent = await anonymous.data(REFRESH_TOKEN, {"input": {"refreshToken": refresh_token}})
    assert spent["refreshToken"]["accessToken"] is None, "a logged-out refresh token is dead"
    assert [e["code"] for e in spent["refreshToken"]["errors"]] == ["INVALID_REFRESH_TOKEN"]


def test_the_matrix_covers_every_root_field() -> None:
    # given
    from schema.schema import Mutation, Query

    covered_queries = {"viewer", "node", "users", "orgUnits", "estates", "units", "people", "announcements"}
    # Billing's rows live beside its tests (tests/billing/test_bills_api.py).
    covered_queries |= {"bills", "feeItems", "billingSummary", "arrearsAging"}
    covered_queries |= {"meters"}  # tests/billing/test_meters.py
    # Ticket dispatch and SLA: tests/tickets_sla/test_sla_settings_api.py, test_sla_stats.py.
    covered_queries |= {"slaRules", "ticketStats"}
    # Tickets: tests/tickets/test_transition_matrix.py (every step × status × role),
    # test_submit.py, test_steps.py (contact-phone mask, scope), test_queries.py.
    covered_queries |= {"tickets", "ticketCategories"}
    # tests/assets/test_assets_api.py (test_who_sees_assets), tests/assets/test_plans.py (test_who_sees_plans_…)
    covered_queries |= {"assets", "assetByTag", "maintenancePlans", "maintenanceDue"}
    # Access control: tests/access/test_access_api.py (who sees which swipes, passes, points, credentials).
    covered_queries |= {"accessEvents", "accessPoints", "visitorPasses", "credentials"}
    covered_queries |= {"alarms"}  # tests/alarms/test_alarms_api.py (test_who_sees_which_alarms)
    covered_mutations = {
        "createEstate",
        "createBuilding",
        "generateUnits",
        "importUnits",
        "createPerson",
        "addOccupancy",
        "endOccupancy",
        "grantRole",
        "revokeRole",
        "publishAnnouncement",
        "markNotificationsRead",
        "login",
        "refreshToken",
        "logout",
        "generateBills",  # tests/billing/test_bills_api.py
        "payBills",  # tests/billing/test_pay_bills_api.py, test_online_payments.py (residents, ONLINE)
        "waiveBill",  # tests/billing/test_waivers.py
        "voidBill",
        "createFeeItem",  # tests/billing/test_fee_items_api.py
        "setFeeRate",
        "bindFeeItem",
        "unbindFeeItem",
        "refundPayment",  # tests/billing/test_refunds.py
        "installMeter",  # tests/billing/test_meters.py
        "replaceMeter",
        "recordMeterReadings",
        "correctUnitArea",  # tests/billing/test_area_and_late_fees.py
        "setSlaRule",  # tests/tickets_sla/test_sla_settings_api.py
        "setTicketCategory",  # tests/tickets_sla/test_ticket_categories.py
        "setTechnicianSkills",
        "setEstateAutoAssign",
        "submitTicket",  # tests/tickets/test_submit.py
        "assignTicket",  # tests/tickets/test_transition_matrix.py: every step × status × role
        "startTicket",
        "holdTicket",
        "resolveTicket",
        "closeTicket",
        "cancelTicket",
        "reopenTicket",
        "rateTicket",
        "commentTicket",
        "createAsset",  # tests/assets/test_assets_api.py (test_who_may_…, out of scope)
        "updateAsset",
        "retireAsset",
        "createMaintenancePlan",  # tests/assets/test_plans.py (test_who_may_…, out of scope)
        "updateMaintenancePlan",
        "deactivateMaintenancePlan",
        "issueVisitorPass",  # tests/access/test_access_api.py (test_who_may_…, own unit only)
        "revokeVisitorPass",
        "registerWalkInVisitor",
        "issueCredential",
        "revokeCredential",
        "createAccessPoint",
        "acknowledgeAlarm",  # tests/alarms/test_alarms_api.py (test_who_may_act_on_an_alarm: role × estate)
        "clearAlarm",
        "commentAlarm",
    }
    # when
    queries = {f.graphql_name or _camel(f.python_name) for f in Query.__strawberry_definition__.fields}
    mutations = {f.graphql_name or _camel(f.python_name) for f in Mutation.__strawberry_definition__.fields}
    # then
    assert queries - covered_queries == set(), "a new root query needs its row in the matrix"
    assert mutations - covered_mutations == set(), "a new mutation needs its row in the matrix"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
