"""Person.phone and Person.idNumber per role, by every path, and masking as policy data.

Rules: admin and manager read both in full; customer_service the phone in full and the ID
masked; every other role with `Person read` both masked (``138****5678``,
``1101**********1234`` — the birth date never shows); a resident their own in full and
nobody else's at all.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

import pytest
from authz_factories import Scratch, gid

from backend.app import Runtime

PERSON_EVERYWHERE = """
query PersonEverywhere($id: ID!, $name: String!, $estateId: ID!) {
  node(id: $id) { ... on Person { id phone idNumber } }
  people(first: 10, filter: {nameContains: $name}) { edges { node { id phone idNumber } } }
  units(first: 1, filter: {estateId: $estateId, codePrefix: "1-1-101"}) {
    edges { node { occupants { person { id phone idNumber } } } }
  }
}
"""

VIEWER_PERSON = """
query ViewerPerson { viewer { person { id phone idNumber } } }
"""

PEOPLE_BY_PHONE = """
query PeopleByPhone($phone: String!) {
  people(first: 10, filter: {phone: $phone}) { edges { node { id } } }
}
"""

MASKED_PHONE = re.compile(r"^1\d{2}\*{4}\d{4}$")
MASKED_ID_NUMBER = re.compile(r"^\d{4}\*{10}\d{3}[\dX]$")


class Shown(enum.Enum):
    FULL = "full"
    MASKED = "masked"


FULL, MASKED = Shown.FULL, Shown.MASKED

# What each caller sees of owner.a1's person (DEMO-A): (phone, idNumber), or None when the
# person is not in the caller's scope at all.
OWNER_A1_AS_SEEN_BY: dict[str | None, tuple[Shown, Shown] | None] = {
    "admin": (FULL, FULL),
    "manager.north": (FULL, FULL),
    "cs.a": (FULL, MASKED),
    "finance.north": (MASKED, MASKED),
    "tech.a": (MASKED, MASKED),
    "guard.a": (MASKED, MASKED),
    "supervisor.north": None,  # no `Person read`
    "supervisor.south": None,
    "owner.a1": (FULL, FULL),  # their own
    "owner.a2": None,  # another resident
    "owner.c1": None,
    None: None,
}


def persons_in(value: Any, person_id: str) -> list[dict[str, Any]]:
    """Every object in a response that is the person ``person_id``."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if value.get("id") == person_id and "phone" in value:
            found.append(value)
        for item in value.values():
            found += persons_in(item, person_id)
    elif isinstance(value, list):
        for item in value:
            found += persons_in(item, person_id)
    return found


def assert_masked_phone(shown: str, phone: str) -> None:
    assert MASKED_PHONE.fullmatch(shown), shown
    assert shown == f"{phone[:3]}****{phone[-4:]}"


def assert_masked_id_number(shown: str, id_number: str) -> None:
    assert MASKED_ID_NUMBER.fullmatch(shown), shown
    assert shown == f"{id_number[:4]}{'*' * 10}{id_number[-4:]}"


@pytest.mark.parametrize(
    ("caller", "expected"),
    [pytest.param(caller, expected, id=caller or "anonymous") for caller, expected in OWNER_A1_AS_SEEN_BY.items()],
)
async def test_personal_data_per_role_by_every_path(
    as_user: Any, demo: Any, caller: str | None, expected: tuple[Shown, Shown] | None
) -> None:
    # given
    person = demo.residents["owner.a1"]
    person_id = gid("Person", person.person_id)
    birth_date = person.id_number[6:14]
    client = await as_user(caller)
    variables = {"id": person_id, "name": person.name, "estateId": gid("Estate", demo.estates["DEMO-A"])}
    # when
    if caller is None:
        body = await client.execute(PERSON_EVERYWHERE, variables)
        assert {e["extensions"]["code"] for e in body["errors"]} == {"UNAUTHENTICATED"}
        data = body.get("data") or {}
    else:
        data = await client.data(PERSON_EVERYWHERE, variables)
    # then
    text = json.dumps(data)
    seen = persons_in(data, person_id)
    if expected is None:
        assert seen == []
        assert person.phone not in text
        assert birth_date not in text
        return
    assert len(seen) == 3, "node, people and units → occupants all reach the person"
    assert all(s == seen[0] for s in seen), "every path shows the same values"
    phone_shown, id_shown = expected
    if phone_shown is FULL:
        assert seen[0]["phone"] == person.phone
    else:
        assert_masked_phone(seen[0]["phone"], person.phone)
        assert person.phone not in text
    if id_shown is FULL:
        assert seen[0]["idNumber"] == person.id_number
    else:
        assert_masked_id_number(seen[0]["idNumber"], person.id_number)
        assert birth_date not in text


@pytest.mark.parametrize("caller", ["owner.a1", "owner.a2", "owner.c1"])
async def test_resident_reads_their_own_personal_data_in_full(as_user: Any, demo: Any, caller: str) -> None:
    # given
    own = demo.residents[caller]
    client = await as_user(caller)
    # when
    data = await client.data(VIEWER_PERSON)
    # then
    assert data["viewer"]["person"] == {
        "id": gid("Person", own.person_id),
        "phone": own.phone,
        "idNumber": own.id_number,
    }


async def test_masking_applies_to_every_person_a_masked_role_lists(as_user: Any) -> None:
    # given
    finance = await as_user("finance.north")
    # when
    data = await finance.data("query { people(first: 100) { edges { node { phone idNumber } } } }")
    # then
    people = [edge["node"] for edge in data["people"]["edges"]]
    assert people
    assert all(p["phone"] is None or MASKED_PHONE.fullmatch(p["phone"]) for p in people)
    assert all(p["idNumber"] is None or MASKED_ID_NUMBER.fullmatch(p["idNumber"]) for p in people)


async def test_a_policy_row_changes_masking_without_code(
    as_user: Any, demo: Any, runtime: Runtime, scratch: Scratch
) -> None:
    # given
    person = demo.residents["owner.a1"]
    variables = {
        "id": gid("Person", person.person_id),
        "name": person.name,
        "estateId": gid("Estate", demo.estates["DEMO-A"]),
    }
    tech = await as_user("tech.a")
    before = (await tech.data(PERSON_EVERYWHERE, variables))["node"]
    version = runtime.authorizer.version
    line = ("technician", "*", "Person.phone", "read", "allow")
    # when
    await scratch.policy_line(*line)
    granted = (await tech.data(PERSON_EVERYWHERE, variables))["node"]
    search = await tech.execute(PEOPLE_BY_PHONE, {"phone": person.phone})
    await scratch.remove_policy_line(*line)
    after = (await tech.data(PERSON_EVERYWHERE, variables))["node"]
    # then
    assert_masked_phone(before["phone"], person.phone)
    assert granted["phone"] == person.phone
    assert_masked_id_number(granted["idNumber"], person.id_number)
    assert search["data"]["people"]["edges"] == [{"node": {"id": gid("Person", person.person_id)}}]
    assert after == before
    assert runtime.authorizer.version > version


async def test_a_deny_row_takes_the_phone_from_customer_service(
    as_user: Any, demo: Any, runtime: Runtime, scratch: Scratch
) -> None:
    # given
    person = demo.residents["owner.a1"]
    variables = {
        "id": gid("Person", person.person_id),
        "name": person.name,
        "estateId": gid("Estate", demo.estates["DEMO-A"]),
    }
    cs = await as_user("cs.a")
    line = ("customer_service", "*", "Person.phone", "read", "deny")
    # when
    await scratch.policy_line(*line)
    denied = (await cs.data(PERSON_EVERYWHERE, variables))["node"]
    await scratch.remove_policy_line(*line)
    restored = (await cs.data(PERSON_EVERYWHERE, variables))["node"]
    # then
    assert_masked_phone(denied["phone"], person.phone)
    assert restored["phone"] == person.phone


PHONE_SEARCH: dict[str | None, str] = {
    "admin": "allowed",
    "manager.north": "allowed",
    "cs.a": "allowed",
    "finance.north": "FORBIDDEN",
    "tech.a": "FORBIDDEN",
    "guard.a": "FORBIDDEN",
    "supervisor.north": "FORBIDDEN",
    "supervisor.south": "FORBIDDEN",
    "owner.a1": "FORBIDDEN",  # even for their own number: residents hold only `read_self`
    None: "UNAUTHENTICATED",
}


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        pytest.param(caller, expected, id=f"{caller or 'anonymous'}-{expected}")
        for caller, expected in PHONE_SEARCH.items()
    ],
)
async def test_people_by_phone_needs_person_phone_read(
    as_user: Any, demo: Any, caller: str | None, expected: str
) -> None:
    # given
    person = demo.residents["owner.a1"]
    client = await as_user(caller)
    # when
    body = await client.execute(PEOPLE_BY_PHONE, {"phone": person.phone})
    # then
    if expected == "allowed":
        assert body == {"data": {"people": {"edges": [{"node": {"id": gid("Person", person.person_id)}}]}}}
    else:
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == [expected]


@pytest.mark.parametrize("caller", ["cs.a", "manager.north"])
async def test_people_by_phone_stays_inside_the_callers_scope(as_user: Any, demo: Any, caller: str) -> None:
    # given: owner.c1 lives in DEMO-C, outside the North
    client = await as_user(caller)
    # when
    data = await client.data(PEOPLE_BY_PHONE, {"phone": demo.residents["owner.c1"].phone})
    # then
    assert data == {"people": {"edges": []}}
