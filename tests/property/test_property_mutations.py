"""The property and people mutations as staff use them: the unit wizard, the import, people."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import delete, select

from backend.people.models import Occupancy, Person
from backend.property.models import Building, Entrance, Estate, Unit

ORG_UNITS = "query { orgUnits(first: 50) { edges { node { id code } } } }"

CREATE_ESTATE = """
mutation($input: CreateEstateInput!) { createEstate(input: $input) { estate { id code } errors { field code message } } }
"""

CREATE_BUILDING = """
mutation($input: CreateBuildingInput!) {
  createBuilding(input: $input) { building { id code entrances { code } } errors { field code message } }
}
"""

GENERATE_UNITS = """
mutation($input: GenerateUnitsInput!) {
  generateUnits(input: $input) { createdCount units { code floor area innerArea usage } errors { field code message } }
}
"""

IMPORT_UNITS = """
mutation($input: ImportUnitsInput!) { importUnits(input: $input) { createdCount errors { field code message } } }
"""

UNITS_OF_ESTATE = """
query($estateId: ID!) { units(first: 100, filter: {estateId: $estateId}) { totalCount edges { node { code } } } }
"""

CREATE_PERSON = """
mutation($input: CreatePersonInput!) { createPerson(input: $input) { person { id name phone } errors { field code } } }
"""

ADD_OCCUPANCY = """
mutation($input: AddOccupancyInput!) { addOccupancy(input: $input) { occupancy { id role } errors { field code } } }
"""

END_OCCUPANCY = """
mutation($input: EndOccupancyInput!) {
  endOccupancy(input: $input) { occupancy { id endDate } errors { field code } }
}
"""

HISTORY = """
query($unit: ID!, $person: ID!) {
  unit: node(id: $unit) { ... on Unit { occupants { person { id } } } }
  person: node(id: $person) { ... on Person { occupancies { role endDate unit { code } } } }
}
"""


@pytest_asyncio.fixture(loop_scope="session")
async def estate(as_user: Any, runtime: Any) -> AsyncIterator[dict[str, str]]:
    """A fresh estate under office N1 with one building "9" of two entrances; removed after
    the test with everything made in it, so other suites see only the demo data."""
    admin = await as_user("admin")
    offices = {e["node"]["code"]: e["node"]["id"] for e in (await admin.data(ORG_UNITS))["orgUnits"]["edges"]}
    code = f"PM{uuid.uuid4().hex[:8].upper()}"
    created = await admin.data(CREATE_ESTATE, {"input": {"officeId": offices["N1"], "code": code, "name": "测试小区"}})
    assert created["createEstate"]["errors"] == []
    estate_id = created["createEstate"]["estate"]["id"]
    building = await admin.data(
        CREATE_BUILDING, {"input": {"estateId": estate_id, "code": "9", "name": "9号楼", "entrances": 2}}
    )
    assert building["createBuilding"]["building"]["entrances"] == [{"code": "1"}, {"code": "2"}]
    yield {"id": estate_id, "building": building["createBuilding"]["building"]["id"], "office": offices["N1"]}
    pk = int(base64.urlsafe_b64decode(estate_id + "=" * (-len(estate_id) % 4)).decode().split(":")[1])
    async with runtime.sessionmaker() as session, session.begin():
        units = select(Unit.id).where(Unit.estate_id == pk)
        persons = select(Occupancy.person_id).where(Occupancy.unit_id.in_(units))
        person_ids = list((await session.scalars(persons)).all())
        await session.execute(delete(Occupancy).where(Occupancy.unit_id.in_(units)))
        await session.execute(delete(Person).where(Person.id.in_(person_ids)))
        await session.execute(delete(Unit).where(Unit.estate_id == pk))
        buildings = select(Building.id).where(Building.estate_id == pk)
        await session.execute(delete(Entrance).where(Entrance.building_id.in_(buildings)))
        await session.execute(delete(Building).where(Building.estate_id == pk))
        await session.execute(delete(Estate).where(Estate.id == pk))


async def _unit_codes(client: Any, estate_id: str) -> list[str]:
    data = await client.data(UNITS_OF_ESTATE, {"estateId": estate_id})
    return sorted(edge["node"]["code"] for edge in data["units"]["edges"])


def _wizard(building_id: str, **overrides: Any) -> dict[str, Any]:
    plan = {
        "buildingId": building_id,
        "entrances": ["1", "2"],
        "fromFloor": 1,
        "toFloor": 3,
        "unitsPerFloor": 2,
        "buildingArea": "89.50",
        "innerArea": "70.12",
    }
    return {"input": plan | overrides}


async def test_the_wizard_creates_every_unit_of_the_plan_once(as_user: Any, estate: dict[str, str]) -> None:
    # given
    admin = await as_user("admin")
    # when
    first = await admin.data(GENERATE_UNITS, _wizard(estate["building"]))
    again = await admin.data(GENERATE_UNITS, _wizard(estate["building"]))
    # then
    result = first["generateUnits"]
    assert result["errors"] == []
    assert result["createdCount"] == 12
    assert result["units"][0] == {
        "code": "9-1-101",
        "floor": 1,
        "area": "89.50",
        "innerArea": "70.12",
        "usage": "RESIDENTIAL",
    }
    assert [e["code"] for e in again["generateUnits"]["errors"]] == ["UNITS_EXIST"]
    assert again["generateUnits"]["createdCount"] == 0
    codes = await _unit_codes(admin, estate["id"])
    assert len(codes) == 12
    assert codes[:3] == ["9-1-101", "9-1-102", "9-1-201"]


async def test_a_bad_plan_writes_nothing(as_user: Any, estate: dict[str, str]) -> None:
    # given
    admin = await as_user("admin")
    bad_plans = {
        "INVALID_RANGE": {"fromFloor": 5, "toFloor": 2},
        "INVALID_AREA": {"innerArea": "99.00"},
        "INVALID_FORMAT": {"numberFormat": "{building}-{nonsense}"},
    }
    for code, overrides in bad_plans.items():
        # when
        data = await admin.data(GENERATE_UNITS, _wizard(estate["building"], **overrides))
        # then
        assert [e["code"] for e in data["generateUnits"]["errors"]] == [code]
    assert await _unit_codes(admin, estate["id"]) == []


async def _import(client: Any, estate_id: str, csv: str) -> dict[str, Any]:
    response = await client.http.post(
        "/graphql",
        data={
            "operations": json.dumps(
                {"query": IMPORT_UNITS, "variables": {"input": {"estateId": estate_id, "file": None}}}
            ),
            "map": json.dumps({"0": ["variables.input.file"]}),
        },
        files={"0": ("units.csv", csv.encode("utf-8-sig"), "text/csv")},
        headers={"authorization": f"Bearer {client.token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body["data"]["importUnits"]


async def test_import_is_all_or_nothing_and_names_the_rows(as_user: Any, estate: dict[str, str]) -> None:
    # given
    admin = await as_user("admin")
    good = "楼栋,单元,楼层,房号,建筑面积,套内面积,用途\n7,1,1,01,88.00,70.00,住宅\n7,1,1,02,66.50,50.25,住宅\n"
    # when
    created = await _import(admin, estate["id"], good)
    clash = await _import(admin, estate["id"], good.replace("1,02", "1,03"))
    broken = await _import(admin, estate["id"], "楼栋,单元,楼层,房号,建筑面积,套内面积,用途\n7,1,2,01,abc,70.00,住宅\n")
    # then
    assert created == {"createdCount": 2, "errors": []}
    assert clash["createdCount"] == 0
    assert [e["message"] for e in clash["errors"]] == ["row 2: Unit 7-1-101 exists already."]
    assert broken["createdCount"] == 0
    assert broken["errors"][0]["message"].startswith("row 2:")
    assert await _unit_codes(admin, estate["id"]) == ["7-1-101", "7-1-102"]


async def test_ending_an_occupancy_keeps_it_as_history(as_user: Any, estate: dict[str, str]) -> None:
    # given a person living in a new unit
    cs = await as_user("cs.a")
    admin = await as_user("admin")
    await admin.data(
        GENERATE_UNITS, _wizard(estate["building"], entrances=["2"], fromFloor=9, toFloor=9, unitsPerFloor=1)
    )
    units = await admin.data(
        'query($e: ID!) { units(first: 1, filter: {estateId: $e, codePrefix: "9-2-9"}) { edges { node { id } } } }',
        {"e": estate["id"]},
    )
    unit_id = units["units"]["edges"][0]["node"]["id"]
    person = await cs.data(
        CREATE_PERSON, {"input": {"orgUnitId": estate["office"], "name": "测试业主", "phone": "13900001111"}}
    )
    person_id = person["createPerson"]["person"]["id"]
    added = await cs.data(ADD_OCCUPANCY, {"input": {"unitId": unit_id, "personId": person_id, "role": "OWNER"}})
    occupancy_id = added["addOccupancy"]["occupancy"]["id"]
    # when
    ended = await cs.data(END_OCCUPANCY, {"input": {"occupancyId": occupancy_id}})
    again = await cs.data(END_OCCUPANCY, {"input": {"occupancyId": occupancy_id}})
    history = await cs.data(HISTORY, {"unit": unit_id, "person": person_id})
    # then
    assert ended["endOccupancy"]["occupancy"]["endDate"] is not None
    assert [e["code"] for e in again["endOccupancy"]["errors"]] == ["ALREADY_ENDED"]
    assert history["unit"]["occupants"] == []
    assert history["person"]["occupancies"] == [
        {"role": "OWNER", "endDate": ended["endOccupancy"]["occupancy"]["endDate"], "unit": {"code": "9-2-901"}}
    ]


async def test_a_person_with_an_invalid_id_number_is_not_registered(as_user: Any, estate: dict[str, str]) -> None:
    # given
    cs = await as_user("cs.a")
    name = f"无效证件{uuid.uuid4().hex[:6]}"
    # when
    data = await cs.data(
        CREATE_PERSON, {"input": {"orgUnitId": estate["office"], "name": name, "idNumber": "110101199003071235"}}
    )
    found = await cs.data(
        "query($n: String!) { people(first: 5, filter: {nameContains: $n}) { totalCount } }", {"n": name}
    )
    # then
    assert data["createPerson"] == {"person": None, "errors": [{"field": "idNumber", "code": "INVALID_ID_NUMBER"}]}
    assert found["people"]["totalCount"] == 0
