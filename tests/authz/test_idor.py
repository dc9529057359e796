"""IDOR: no object outside the caller's scope is reachable by id or by any nested path.

``node(id)`` for an object the caller may not see answers exactly like ``node(id)`` for an id
no row has — the same body, byte for byte — so an attacker cannot even learn that it exists.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio
from authz_factories import MISSING_PK, Scratch, gid

from backend.accounts.models import UserKind
from backend.people.models import OccupancyRole

NODE = """
query Node($id: ID!) {
  node(id: $id) {
    __typename
    id
    ... on Unit { code building { code } occupants { person { id name phone idNumber } } }
    ... on Estate { code buildings { id } }
    ... on Building { code entrances { id } }
    ... on Entrance { code building { id } }
    ... on Person { name phone idNumber occupancies { id } }
    ... on Occupancy { role person { id name } unit { id code } }
    ... on OrgUnit { code path }
    ... on Announcement { title estates { code } }
    ... on Notification { title }
    ... on User { username }
  }
}
"""

RESIDENT_EVERYTHING = """
query Everything {
  viewer {
    id
    person {
      id name phone idNumber
      occupancies { id role unit { id code occupants { id person { id name phone idNumber } } } person { id } }
    }
  }
  units(first: 100) {
    totalCount
    edges { node {
      id code
      building { id code estate { id code buildings { id code entrances { id code } } } }
      entrance { id code building { id } }
      occupants { id role person { id name phone idNumber occupancies { id unit { id code } } } }
    } }
  }
  estates(first: 100) {
    edges { node { id code buildings { id code entrances { id code building { id } } } } }
  }
  people(first: 100) {
    totalCount
    edges { node { id name phone idNumber occupancies { id unit { id code } person { id } } } }
  }
}
"""

PERSON_OCCUPANCIES = """
query PersonOccupancies($id: ID!) {
  node(id: $id) { ... on Person { occupancies { id unit { code estate { code } } } } }
}
"""

ESTATE_BUILDINGS = """
query EstateBuildings {
  estates(first: 100) { edges { node { code buildings { id entrances { id } } } } }
}
"""

UNITS_WITH_OCCUPANTS = """
query UnitsWithOccupants($estateId: ID!) {
  units(first: 100, filter: {estateId: $estateId}) {
    edges { node { code occupants { id person { id name } } } }
  }
}
"""

ANNOUNCEMENTS_WITH_ESTATES = """
query AnnouncementsWithEstates($category: String!) {
  announcements(first: 10, filter: {category: $category}) { edges { node { id estates { code } } } }
}
"""


@pytest_asyncio.fixture(loop_scope="session")
async def refs(demo: Any, scratch: Scratch) -> dict[str, int]:
    """Primary keys by readable name: the demo objects, and a few fresh announcements and
    notifications (announcements land in the scratch category, so nothing else sees them)."""
    residents = demo.residents
    estates = demo.estates
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    keys: dict[str, int] = {
        **{f"unit:{name}": r.unit_id for name, r in residents.items()},
        **{f"person:{name}": r.person_id for name, r in residents.items()},
        **{f"occupancy:{name}": r.occupancy_id for name, r in residents.items()},
        **{f"user:{name}": r.user_id for name, r in residents.items()},
        **{f"estate:{code}": pk for code, pk in estates.items()},
        **{f"org:{code}": org.id for code, org in demo.orgs.items()},
        "building:DEMO-A:1": demo.buildings["DEMO-A", "1"],
        "building:DEMO-A:2": demo.buildings["DEMO-A", "2"],
        "building:DEMO-C:1": demo.buildings["DEMO-C", "1"],
        "entrance:DEMO-A:1:1": demo.entrances["DEMO-A", "1", "1"],
        "entrance:DEMO-A:1:2": demo.entrances["DEMO-A", "1", "2"],
        "entrance:DEMO-C:1:1": demo.entrances["DEMO-C", "1", "1"],
        "user:tech.a": demo.users["tech.a"],
        "user:supervisor.south": demo.users["supervisor.south"],
        "announcement:A": await scratch.announcement([estates["DEMO-A"]]),
        "announcement:A-expired": await scratch.announcement([estates["DEMO-A"]], expires_at=yesterday),
        "announcement:C": await scratch.announcement([estates["DEMO-C"]]),
        "notification:owner.a2": await scratch.notification(demo.users["owner.a2"]),
    }
    return keys


def node_cases(rows: list[tuple[str | None, str, str]]) -> list[Any]:
    return [
        pytest.param(caller, type_name, ref, id=f"{caller or 'anonymous'}-{ref}") for caller, type_name, ref in rows
    ]


# (caller, node type, object) — each object lies outside the caller's scope.
HIDDEN: list[tuple[str | None, str, str]] = [
    ("owner.a1", "Unit", "unit:owner.a2"),
    ("owner.a1", "Unit", "unit:owner.c1"),
    ("cs.a", "Unit", "unit:owner.c1"),
    ("manager.north", "Unit", "unit:owner.c1"),
    ("supervisor.south", "Unit", "unit:owner.a1"),
    (None, "Unit", "unit:owner.a1"),
    ("owner.a1", "Estate", "estate:DEMO-B"),
    ("cs.a", "Estate", "estate:DEMO-B"),
    ("manager.north", "Estate", "estate:DEMO-C"),
    ("supervisor.south", "Estate", "estate:DEMO-A"),
    (None, "Estate", "estate:DEMO-A"),
    ("owner.a1", "Building", "building:DEMO-A:2"),
    ("cs.a", "Building", "building:DEMO-C:1"),
    ("supervisor.south", "Building", "building:DEMO-A:1"),
    ("owner.a1", "Entrance", "entrance:DEMO-A:1:2"),
    ("cs.a", "Entrance", "entrance:DEMO-C:1:1"),
    ("supervisor.north", "Entrance", "entrance:DEMO-C:1:1"),
    ("owner.a1", "Person", "person:owner.a2"),
    ("owner.c1", "Person", "person:owner.a1"),
    ("cs.a", "Person", "person:owner.c1"),
    ("manager.north", "Person", "person:owner.c1"),
    ("supervisor.north", "Person", "person:owner.a1"),  # supervisors hold no `Person read`
    (None, "Person", "person:owner.a1"),
    ("owner.a1", "Occupancy", "occupancy:owner.a2"),
    ("cs.a", "Occupancy", "occupancy:owner.c1"),
    ("supervisor.north", "Occupancy", "occupancy:owner.a1"),
    ("cs.a", "OrgUnit", "org:S1"),
    ("cs.a", "OrgUnit", "org:NORTH"),
    ("manager.north", "OrgUnit", "org:SOUTH"),
    ("manager.north", "OrgUnit", "org:DEMO"),
    ("finance.north", "OrgUnit", "org:SOUTH"),
    ("owner.a1", "OrgUnit", "org:N1"),
    ("owner.a1", "Announcement", "announcement:C"),
    ("owner.a1", "Announcement", "announcement:A-expired"),  # residents: current ones only
    ("supervisor.south", "Announcement", "announcement:A"),
    ("cs.a", "Announcement", "announcement:C"),
    (None, "Announcement", "announcement:A"),
    ("owner.a1", "Notification", "notification:owner.a2"),
    ("admin", "Notification", "notification:owner.a2"),  # notifications are personal
    ("owner.a1", "User", "user:owner.a2"),
    ("cs.a", "User", "user:owner.a1"),  # `User read` is admin's and manager's
    ("manager.north", "User", "user:owner.c1"),
    ("manager.north", "User", "user:supervisor.south"),
]

# The same kinds of objects inside the caller's scope: proof that HIDDEN is not vacuous.
VISIBLE: list[tuple[str | None, str, str]] = [
    ("owner.a1", "Unit", "unit:owner.a1"),
    ("cs.a", "Unit", "unit:owner.a2"),
    ("supervisor.south", "Unit", "unit:owner.c1"),
    ("owner.a1", "Estate", "estate:DEMO-A"),
    ("manager.north", "Estate", "estate:DEMO-B"),
    ("owner.a1", "Building", "building:DEMO-A:1"),
    ("cs.a", "Building", "building:DEMO-A:2"),
    ("owner.a1", "Entrance", "entrance:DEMO-A:1:1"),
    ("cs.a", "Entrance", "entrance:DEMO-A:1:2"),
    ("admin", "Entrance", "entrance:DEMO-C:1:1"),
    ("owner.a1", "Person", "person:owner.a1"),
    ("cs.a", "Person", "person:owner.a2"),
    ("owner.a1", "Occupancy", "occupancy:owner.a1"),
    ("cs.a", "Occupancy", "occupancy:owner.a2"),
    ("cs.a", "OrgUnit", "org:N1"),
    ("manager.north", "OrgUnit", "org:N2"),
    ("admin", "OrgUnit", "org:S1"),
    ("finance.north", "OrgUnit", "org:N1"),
    ("owner.a1", "Announcement", "announcement:A"),
    ("supervisor.south", "Announcement", "announcement:C"),
    ("cs.a", "Announcement", "announcement:A-expired"),  # staff keep the history
    ("owner.a2", "Notification", "notification:owner.a2"),
    ("manager.north", "User", "user:owner.a1"),
    ("admin", "User", "user:supervisor.south"),
]


@pytest.mark.parametrize(("caller", "type_name", "ref"), node_cases(HIDDEN))
async def test_node_outside_scope_answers_like_a_missing_id(
    as_user: Any, refs: dict[str, int], caller: str | None, type_name: str, ref: str
) -> None:
    # given
    client = await as_user(caller)
    # when
    hidden = await client.execute(NODE, {"id": gid(type_name, refs[ref])})
    missing = await client.execute(NODE, {"id": gid(type_name, MISSING_PK)})
    # then: the same answer as for an id that does not exist (anonymous: log in first)
    if caller is None:
        assert hidden["data"] == missing["data"] == {"node": None}
        assert [e["extensions"]["code"] for e in hidden["errors"] + missing["errors"]] == ["UNAUTHENTICATED"] * 2
    else:
        assert hidden == missing == {"data": {"node": None}}


@pytest.mark.parametrize(("caller", "type_name", "ref"), node_cases(VISIBLE))
async def test_node_inside_scope_is_found(
    as_user: Any, refs: dict[str, int], caller: str | None, type_name: str, ref: str
) -> None:
    # given
    client = await as_user(caller)
    node_id = gid(type_name, refs[ref])
    # when
    data = await client.data(NODE, {"id": node_id})
    # then
    assert data["node"] is not None
    assert (data["node"]["__typename"], data["node"]["id"]) == (type_name, node_id)


async def test_a_wrong_type_in_the_id_finds_nothing(as_user: Any, demo: Any) -> None:
    # given: owner.a1's own unit key under type names that are no Node type
    owner = await as_user("owner.a1")
    unit_pk = demo.residents["owner.a1"].unit_id
    # when
    answers = [await owner.execute(NODE, {"id": gid(name, unit_pk)}) for name in ("Invoice", "CasbinRule")]
    # then
    assert answers == [{"data": {"node": None}}] * 2


async def test_resident_reaches_no_other_resident_by_any_nested_path(as_user: Any, demo: Any) -> None:
    # given
    own = demo.residents["owner.a1"]
    neighbour = demo.residents["owner.a2"]
    assert neighbour.name != own.name
    owner = await as_user("owner.a1")
    # when
    data = await owner.data(RESIDENT_EVERYTHING)
    # then
    text = json.dumps(data, ensure_ascii=False)
    for secret in (
        gid("Person", neighbour.person_id),
        gid("Unit", neighbour.unit_id),
        gid("Occupancy", neighbour.occupancy_id),
        neighbour.name,
        neighbour.phone,
        neighbour.id_number,
        neighbour.phone[:3] + "****" + neighbour.phone[-4:],
    ):
        assert secret not in text
    assert set(_ids(data, "Person")) == {gid("Person", own.person_id)}
    assert set(_ids(data, "Unit")) == {gid("Unit", own.unit_id)}
    assert set(_ids(data, "Occupancy")) == {gid("Occupancy", own.occupancy_id)}
    assert set(_ids(data, "Building")) == {gid("Building", demo.buildings["DEMO-A", "1"])}
    assert set(_ids(data, "Entrance")) == {gid("Entrance", demo.entrances["DEMO-A", "1", "1"])}
    assert data["units"]["totalCount"] == data["people"]["totalCount"] == 1


def _ids(value: Any, type_name: str) -> Iterator[str]:
    """Every ``id`` in a response that names a ``type_name`` object."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id" and isinstance(item, str) and _type_of(item) == type_name:
                yield item
            else:
                yield from _ids(item, type_name)
    elif isinstance(value, list):
        for item in value:
            yield from _ids(item, type_name)


def _type_of(global_id: str) -> str:
    import base64

    return base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode().partition(":")[0]


async def test_resident_does_not_see_the_other_occupants_of_their_own_unit(as_user: Any, scratch: Scratch) -> None:
    # given: a fresh home with an owner who has an account and a family member who has not
    home = await scratch.estate("N1")
    owner_person = await scratch.person(home.org_path, phone=scratch.phone())
    family_phone = scratch.phone()
    family_person = await scratch.person(home.org_path, phone=family_phone)
    await scratch.occupancy(home.unit_id, owner_person)
    family_occupancy = await scratch.occupancy(home.unit_id, family_person, OccupancyRole.FAMILY)
    account = await scratch.user(UserKind.RESIDENT, owner_person)
    await scratch.grant(account.id, "resident", home.org_path)
    resident = await as_user(account.username)
    # when
    everything = await resident.data(RESIDENT_EVERYTHING)
    family_node = await resident.execute(NODE, {"id": gid("Person", family_person)})
    family_occupancy_node = await resident.execute(NODE, {"id": gid("Occupancy", family_occupancy)})
    # then
    text = json.dumps(everything, ensure_ascii=False)
    assert gid("Person", family_person) not in text
    assert family_phone not in text
    assert family_phone[:3] + "****" + family_phone[-4:] not in text
    assert set(_ids(everything, "Person")) == {gid("Person", owner_person)}
    assert family_node == family_occupancy_node == {"data": {"node": None}}


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        pytest.param("admin", {"north", "south"}, id="admin"),
        pytest.param("manager.north", {"north"}, id="manager.north"),
        pytest.param("cs.a", {"north"}, id="cs.a"),
        pytest.param("supervisor.south", None, id="supervisor.south"),  # no `Person read`
    ],
)
async def test_person_occupancies_stay_inside_the_callers_estates(
    as_user: Any, scratch: Scratch, caller: str, expected: set[str] | None
) -> None:
    # given: one person owning a home in the North (office N1) and one in the South (office S1)
    north = await scratch.estate("N1")
    south = await scratch.estate("S1")
    person = await scratch.person(north.org_path)
    await scratch.occupancy(north.unit_id, person)
    await scratch.occupancy(south.unit_id, person)
    client = await as_user(caller)
    # when
    data = await client.data(PERSON_OCCUPANCIES, {"id": gid("Person", person)})
    # then
    if expected is None:
        assert data == {"node": None}
        return
    codes = {o["unit"]["estate"]["code"] for o in data["node"]["occupancies"]}
    assert codes == {{"north": north.code, "south": south.code}[side] for side in expected}


@pytest.mark.parametrize(
    ("caller", "estates"),
    [
        pytest.param("supervisor.south", {"DEMO-C"}, id="supervisor.south"),
        pytest.param("cs.a", {"DEMO-A"}, id="cs.a"),
        pytest.param("manager.north", {"DEMO-A", "DEMO-B"}, id="manager.north"),
    ],
)
async def test_estates_buildings_hold_only_buildings_in_scope(
    as_user: Any, demo: Any, caller: str, estates: set[str]
) -> None:
    # given
    client = await as_user(caller)
    # when
    data = await client.data(ESTATE_BUILDINGS)
    # then
    buildings = set(_ids(data, "Building"))
    entrances = set(_ids(data, "Entrance"))
    assert buildings == {gid("Building", pk) for (code, _b), pk in demo.buildings.items() if code in estates}
    assert entrances == {gid("Entrance", pk) for (code, _b, _e), pk in demo.entrances.items() if code in estates}


async def test_units_show_no_occupants_to_a_role_without_occupancy_read(as_user: Any, demo: Any) -> None:
    # given
    supervisor = await as_user("supervisor.north")
    # when
    data = await supervisor.data(UNITS_WITH_OCCUPANTS, {"estateId": gid("Estate", demo.estates["DEMO-A"])})
    # then
    units = [edge["node"] for edge in data["units"]["edges"]]
    assert units, "the supervisor sees the units themselves"
    assert all(unit["occupants"] == [] for unit in units)


async def test_staff_unit_occupants_stay_inside_the_callers_estates(as_user: Any, demo: Any) -> None:
    # given
    cs = await as_user("cs.a")
    # when
    inside = await cs.data(UNITS_WITH_OCCUPANTS, {"estateId": gid("Estate", demo.estates["DEMO-A"])})
    outside = await cs.data(UNITS_WITH_OCCUPANTS, {"estateId": gid("Estate", demo.estates["DEMO-C"])})
    # then
    assert any(edge["node"]["occupants"] for edge in inside["units"]["edges"])
    assert outside == {"units": {"edges": []}}


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        pytest.param("owner.a1", [{"code": "DEMO-A"}], id="owner.a1"),
        pytest.param("supervisor.south", [{"code": "DEMO-C"}], id="supervisor.south"),
        pytest.param("admin", [{"code": "DEMO-A"}, {"code": "DEMO-B"}, {"code": "DEMO-C"}], id="admin"),
    ],
)
async def test_announcement_estates_show_only_estates_in_scope(
    as_user: Any, demo: Any, scratch: Scratch, caller: str, expected: list[dict[str, str]]
) -> None:
    # given: one announcement to all three demo estates
    await scratch.announcement([demo.estates["DEMO-A"], demo.estates["DEMO-B"], demo.estates["DEMO-C"]])
    client = await as_user(caller)
    # when
    data = await client.data(ANNOUNCEMENTS_WITH_ESTATES, {"category": scratch.category})
    # then
    (edge,) = data["announcements"]["edges"]
    assert sorted(edge["node"]["estates"], key=lambda e: e["code"]) == expected
