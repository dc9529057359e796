"""The access API: passes for one's own unit only, who sees which swipes, masks per role,
accessEventAdded over a real websocket."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from access_support import Gate, MakeGate, People
from sqlalchemy import delete, select, text
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from backend.access.ingest import ACCESS_CHANNEL, record_access
from backend.access.models import AccessEvent, VisitorPass
from backend.accounts.models import User
from backend.db import utcnow
from backend.events import CHANNEL_PREFIX
from backend.people.models import Occupancy
from schema.access.live import hub_for as access_hub_for
from schema.core.relay import to_global_id

ISSUE = """
mutation($input: IssueVisitorPassInput!) {
  issueVisitorPass(input: $input) { pass { id code validFrom validUntil visitorPhone } errors { field code } }
}
"""
REVOKE = "mutation($id: ID!) { revokeVisitorPass(input: {passId: $id}) { pass { revokedAt } errors { code } } }"
EVENTS = """
query($point: ID) {
  accessEvents(first: 100, filter: {accessPointId: $point}) {
    edges { node { id occurredAt accessPoint { name } person { name } direction result reason credential estate { code } } }
  }
}
"""
CREDENTIALS = "query($p: ID!) { credentials(personId: $p) { kind identifier } }"
TRANSPORT_WS = Subprotocol("graphql-transport-ws")


async def _owner(runtime: Any, username: str) -> tuple[int, int]:
    """(person id, unit id) of a demo owner."""
    async with runtime.sessionmaker() as session:
        person_id = await session.scalar(select(User.person_id).where(User.username == username))
        unit_id = await session.scalar(select(Occupancy.unit_id).where(Occupancy.person_id == person_id).limit(1))
    assert person_id is not None
    assert unit_id is not None
    return person_id, unit_id


def _window(start_in: dt.timedelta, length: dt.timedelta) -> dict[str, str]:
    start = utcnow() + start_in
    return {"validFrom": start.isoformat(), "validUntil": (start + length).isoformat()}


@pytest_asyncio.fixture(loop_scope="session")
async def issued(runtime: Any) -> AsyncIterator[list[str]]:
    """Codes of passes issued through the API, removed afterwards."""
    codes: list[str] = []
    yield codes
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        passes = select(VisitorPass.id).where(VisitorPass.code.in_(codes))
        await session.execute(delete(AccessEvent).where(AccessEvent.visitor_pass_id.in_(passes)))
        await session.execute(delete(VisitorPass).where(VisitorPass.code.in_(codes)))


async def test_an_owner_issues_a_pass_for_their_own_unit_only(as_user: Any, runtime: Any, issued: list[str]) -> None:
    # given
    owner = await as_user("owner.a1")
    _, own_unit = await _owner(runtime, "owner.a1")
    _, other_unit = await _owner(runtime, "owner.a2")
    base = {"visitorName": "张三", "visitorPhone": "13912345678"}
    day = dt.timedelta(days=1)
    # when
    ok = await owner.data(ISSUE, {"input": {**base, "unitId": to_global_id("Unit", own_unit), **_window(day, day)}})
    foreign = await owner.data(
        ISSUE, {"input": {**base, "unitId": to_global_id("Unit", other_unit), **_window(day, day)}}
    )
    too_long = await owner.data(
        ISSUE, {"input": {**base, "unitId": to_global_id("Unit", own_unit), **_window(day, 8 * day)}}
    )
    past = await owner.data(
        ISSUE, {"input": {**base, "unitId": to_global_id("Unit", own_unit), **_window(-3 * day, day)}}
    )
    # then
    payload = ok["issueVisitorPass"]
    assert payload["errors"] == []
    issued.append(payload["pass"]["code"])
    assert len(payload["pass"]["code"]) == 10
    assert payload["pass"]["visitorPhone"] == "13912345678"  # the issuer sees it in full
    assert foreign["issueVisitorPass"] == {"pass": None, "errors": [{"field": "unitId", "code": "NOT_FOUND"}]}
    assert too_long["issueVisitorPass"]["errors"] == [{"field": "validUntil", "code": "INVALID_WINDOW"}]
    assert past["issueVisitorPass"]["errors"] == [{"field": "validFrom", "code": "INVALID_WINDOW"}]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(VisitorPass.code).where(VisitorPass.unit_id == other_unit)) is None


async def test_who_may_issue_and_revoke_a_pass(as_user: Any, runtime: Any, issued: list[str]) -> None:
    # given a pass of owner.a1
    owner = await as_user("owner.a1")
    _, unit = await _owner(runtime, "owner.a1")
    day = dt.timedelta(days=1)
    given = {"unitId": to_global_id("Unit", unit), "visitorName": "李四", "visitorPhone": "13912345678"}
    body = await owner.data(ISSUE, {"input": {**given, **_window(day, day)}})
    issued.append(body["issueVisitorPass"]["pass"]["code"])
    pass_id = body["issueVisitorPass"]["pass"]["id"]
    # when staff try to issue, another owner tries to revoke, the issuer revokes (twice)
    guard_issue = await (await as_user("guard.a")).execute(ISSUE, {"input": {**given, **_window(day, day)}})
    stranger = await (await as_user("owner.a2")).data(REVOKE, {"id": pass_id})
    revoked = await owner.data(REVOKE, {"id": pass_id})
    again = await owner.data(REVOKE, {"id": pass_id})
    # then
    assert guard_issue["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert stranger["revokeVisitorPass"]["errors"] == [{"code": "NOT_FOUND"}]
    assert revoked["revokeVisitorPass"]["errors"] == []
    assert revoked["revokeVisitorPass"]["pass"]["revokedAt"] is not None
    assert again["revokeVisitorPass"]["errors"] == [{"code": "ALREADY_REVOKED"}]


async def _swipe(runtime: Any, gate: Gate, credential: str, *, bus: Any = None, result: str = "granted") -> None:
    async with runtime.sessionmaker() as session, session.begin():
        assert await record_access(session, gate.device, gate.message(credential, result=result), bus=bus) is not None


async def test_who_sees_which_swipes(
    as_user: Any, runtime: Any, make_gate: MakeGate, people: People, issued: list[str]
) -> None:
    # given swipes at a DEMO-A gate: owner.a1's card, owner.a1's visitor, a stranger; one at DEMO-C
    north, south = await make_gate("DEMO-A"), await make_gate("DEMO-C")
    owner = await as_user("owner.a1")
    _, unit = await _owner(runtime, "owner.a1")
    day = dt.timedelta(hours=2)
    body = await owner.data(ISSUE, {"input": {"unitId": to_global_id("Unit", unit), "visitorName": "王五",
                                              **_window(dt.timedelta(minutes=1), day)}})  # fmt: skip
    code = body["issueVisitorPass"]["pass"]["code"]
    issued.append(code)
    _, stranger = await people.with_card()
    await _swipe(runtime, north, "card:A1000001")
    await _swipe(runtime, north, f"qr:{code}", result="denied")
    await _swipe(runtime, north, stranger)
    await _swipe(runtime, south, "card:NOBODY", result="denied")
    points = {to_global_id("AccessPoint", g.point.id): g for g in (north, south)}

    async def seen(username: str) -> list[tuple[str, str | None]]:
        client = await as_user(username)
        found: list[tuple[str, str | None]] = []
        for point in points:
            edges = (await client.data(EVENTS, {"point": point}))["accessEvents"]["edges"]
            found += [(e["node"]["estate"]["code"], e["node"]["credential"]) for e in edges]
        return sorted(found, key=str)

    # when / then
    # (the visitor's code is masked like any credential not the caller's own)
    masked = f"qr:{code[:4]}******"
    assert await seen("owner.a1") == sorted([("DEMO-A", "card:A1000001"), ("DEMO-A", masked)], key=str)
    assert [estate for estate, _ in await seen("guard.a")] == ["DEMO-A"] * 3
    assert await seen("supervisor.south") == [("DEMO-C", "card:NOBODY")]
    assert await seen("owner.a2") == []
    assert await seen("tech.a") == []


async def test_credentials_are_masked_outside_security_staff(as_user: Any, runtime: Any) -> None:
    # given owner.a1's card
    person_id, _ = await _owner(runtime, "owner.a1")
    variables = {"p": to_global_id("Person", person_id)}
    # when
    answers = {u: (await (await as_user(u)).data(CREDENTIALS, variables))["credentials"]
               for u in ("guard.a", "supervisor.north", "manager.north", "cs.a", "owner.a1", "owner.a2")}  # fmt: skip
    # then
    full, masked = [{"kind": "CARD", "identifier": "card:A1000001"}], [{"kind": "CARD", "identifier": "card:A100****"}]
    assert answers == {"guard.a": full, "supervisor.north": full, "manager.north": full, "cs.a": masked,
                       "owner.a1": full, "owner.a2": []}  # fmt: skip


@contextlib.asynccontextmanager
async def _ws(live_api: str, token: str) -> AsyncIterator[Any]:
    async with connect(f"ws://{live_api}/graphql", subprotocols=[TRANSPORT_WS], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=5))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription { accessEventAdded { person { name } result credential accessPoint { name } } }"}}))  # fmt: skip
        yield ws


async def _next(ws: Any, within: float) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=within))
        if message["type"] != "ping":
            return message  # type: ignore[no-any-return]
        await ws.send(json.dumps({"type": "pong"}))


async def test_access_event_added_reaches_whoever_may_see_it(
    as_user: Any, runtime: Any, make_gate: MakeGate, live_api: str
) -> None:
    # given guard.a (DEMO-A), supervisor.south (DEMO-C) and owner.a2 subscribed
    gate = await make_gate("DEMO-A")
    tokens = [(await as_user(u)).token for u in ("guard.a", "supervisor.south", "owner.a1", "owner.a2")]
    async with (
        _ws(live_api, tokens[0]) as guard,
        _ws(live_api, tokens[1]) as south,
        _ws(live_api, tokens[2]) as own,
        _ws(live_api, tokens[3]) as other,
    ):
        hub = access_hub_for(runtime.sessionmaker, runtime.bus)
        for _ in range(250):
            ((_name, listeners),) = await runtime.redis.pubsub_numsub(CHANNEL_PREFIX + ACCESS_CHANNEL)
            if listeners >= 1 and hub.subscriber_count >= 4:  # one hub per process, four subscribers
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("not every subscription has reached the hub")
        # when owner.a1's card is swiped at the DEMO-A gate
        await _swipe(runtime, gate, "card:A1000001", bus=runtime.bus)
        # then the guard and the owner receive it; DEMO-C's supervisor and owner.a2 nothing
        for ws, credential in ((guard, "card:A1000001"), (own, "card:A1000001")):
            message = await _next(ws, 5)
            assert message["type"] == "next", message
            added = message["payload"]["data"]["accessEventAdded"]
            assert added["result"] == "GRANTED"
            assert added["credential"] == credential
            assert added["accessPoint"]["name"] == gate.point.name
        for ws in (south, other):
            with contextlib.suppress(TimeoutError):
                message = await _next(ws, 0.5)
                raise AssertionError(f"unexpected {message}")
