"""Alarms through the API: the lifecycle (acknowledge → clear, illegal steps refused with
nothing written), comments, who may do what where, who sees which alarms, the filters, and a
page of alarms with everything nested in a fixed number of statements."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from alarms_support import alarm_events, count, gid, raise_on, stored
from sqlalchemy import select

from backend.alarms.models import AlarmEvent, AlarmSeverity, AlarmStatus
from backend.db import utcnow

ACK = """mutation($input: AcknowledgeAlarmInput!) { acknowledgeAlarm(input: $input) {
  alarm { id status acknowledgedAt clearedAt events { kind note actor { username } } } errors { field code } } }"""
CLEAR = """mutation($input: ClearAlarmInput!) { clearAlarm(input: $input) {
  alarm { id status clearedAt } errors { field code } } }"""
COMMENT = """mutation($input: CommentAlarmInput!) { commentAlarm(input: $input) {
  alarm { id events { kind note } } errors { field code } } }"""
ALARMS = """query($filter: AlarmFilter, $first: Int) { alarms(first: $first, filter: $filter) {
  totalCount edges { node { id deviceId type severity status occurrences estate { code } } } } }"""
PAGE = """query($filter: AlarmFilter) { alarms(first: 50, filter: $filter) { edges { node {
  id type severity status message occurrences firstSeenAt lastSeenAt estate { code } deviceId asset { id name }
  acknowledgedAt clearedAt ticket { id number } rule { metric } accessPointId details
  events { kind at note actor { username } } } } } }"""

MUTATIONS = {"acknowledgeAlarm": ACK, "clearAlarm": CLEAR, "commentAlarm": COMMENT}


def _input(name: str, alarm_id: int) -> dict[str, Any]:
    return {"input": {"alarmId": gid(alarm_id), "note": "已到现场" if name == "commentAlarm" else ""}}


async def test_acknowledge_then_clear_and_illegal_steps_write_nothing(
    as_user: Any, runtime: Any, devices: Callable[[], str]
) -> None:
    # given an ACTIVE alarm in DEMO-A
    change = await raise_on(runtime, "DEMO-A", devices())
    supervisor = await as_user("supervisor.north")
    # when supervisor.north acknowledges it
    acked = (await supervisor.data(ACK, {"input": {"alarmId": gid(change.alarm.id), "note": "收到"}}))[
        "acknowledgeAlarm"
    ]
    # then it is ACKNOWLEDGED, with the step in its history
    assert acked["errors"] == []
    assert acked["alarm"]["status"] == "ACKNOWLEDGED"
    assert acked["alarm"]["acknowledgedAt"] is not None
    assert [(e["kind"], e["note"], (e["actor"] or {}).get("username")) for e in acked["alarm"]["events"]] == [
        ("RAISED", "烟感报警", None), ("ACKNOWLEDGED", "收到", "supervisor.north")]  # fmt: skip
    # when acknowledged again
    again = (await supervisor.data(ACK, _input("acknowledgeAlarm", change.alarm.id)))["acknowledgeAlarm"]
    # then ILLEGAL_TRANSITION and no event written
    assert again == {"alarm": None, "errors": [{"field": "alarmId", "code": "ILLEGAL_TRANSITION"}]}
    assert await alarm_events(runtime, change.alarm.id) == ["RAISED", "ACKNOWLEDGED"]
    # when cleared, then cleared again
    cleared = (await supervisor.data(CLEAR, _input("clearAlarm", change.alarm.id)))["clearAlarm"]
    twice = (await supervisor.data(CLEAR, _input("clearAlarm", change.alarm.id)))["clearAlarm"]
    # then CLEARED once; the second is refused with nothing written
    assert cleared["errors"] == []
    assert cleared["alarm"]["status"] == "CLEARED"
    assert twice["errors"] == [{"field": "alarmId", "code": "ILLEGAL_TRANSITION"}]
    assert await alarm_events(runtime, change.alarm.id) == ["RAISED", "ACKNOWLEDGED", "CLEARED"]
    alarm = await stored(runtime, change.alarm.id)
    assert alarm.status is AlarmStatus.CLEARED
    assert alarm.cleared_by_id is not None


async def test_comments_need_a_note(as_user: Any, runtime: Any, devices: Callable[[], str]) -> None:
    # given
    change = await raise_on(runtime, "DEMO-A", devices())
    guard = await as_user("guard.a")
    # when
    empty = (await guard.data(COMMENT, {"input": {"alarmId": gid(change.alarm.id), "note": "  "}}))["commentAlarm"]
    noted = (await guard.data(COMMENT, _input("commentAlarm", change.alarm.id)))["commentAlarm"]
    # then
    assert empty == {"alarm": None, "errors": [{"field": "note", "code": "NOTE_REQUIRED"}]}
    assert noted["errors"] == []
    assert noted["alarm"]["events"][-1] == {"kind": "COMMENTED", "note": "已到现场"}
    assert await alarm_events(runtime, change.alarm.id) == ["RAISED", "COMMENTED"]


# (user, estate of the alarm) → expected outcome of every mutation: OK, FORBIDDEN or NOT_FOUND.
WHO_MAY = [
    ("supervisor.north", "DEMO-A", "OK"),
    ("guard.a", "DEMO-A", "OK"),
    ("manager.north", "DEMO-B", "OK"),
    ("admin", "DEMO-C", "OK"),
    ("supervisor.south", "DEMO-A", "NOT_FOUND"),  # outside the scope: like a missing id
    ("guard.a", "DEMO-B", "NOT_FOUND"),  # the guard's office has DEMO-A only
    ("cs.a", "DEMO-A", "FORBIDDEN"),  # reads alarms, may not act on them
    ("tech.a", "DEMO-A", "FORBIDDEN"),
    ("finance.north", "DEMO-A", "FORBIDDEN"),
    ("owner.a1", "DEMO-A", "FORBIDDEN"),
]


@pytest.mark.parametrize("name", list(MUTATIONS))
@pytest.mark.parametrize(("username", "estate", "expected"), WHO_MAY)
async def test_who_may_act_on_an_alarm(
    as_user: Any, runtime: Any, devices: Callable[[], str], name: str, username: str, estate: str, expected: str
) -> None:
    # given an ACTIVE alarm
    change = await raise_on(runtime, estate, devices())
    client = await as_user(username)
    # when
    body = await client.execute(MUTATIONS[name], _input(name, change.alarm.id))
    # then
    after = await stored(runtime, change.alarm.id)
    if expected == "FORBIDDEN":
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    elif expected == "NOT_FOUND":
        assert body["data"][name] == {"alarm": None, "errors": [{"field": "alarmId", "code": "NOT_FOUND"}]}
    else:
        assert body["data"][name]["errors"] == [], body
        assert body["data"][name]["alarm"]["id"] == gid(change.alarm.id)
    written = await alarm_events(runtime, change.alarm.id)
    if expected == "OK":
        assert len(written) == 2
    else:  # nothing written when refused
        assert written == ["RAISED"]
        assert (after.status, after.version) == (AlarmStatus.ACTIVE, 1)


async def test_a_missing_alarm_is_not_found(as_user: Any) -> None:
    body = await (await as_user("supervisor.north")).data(ACK, {"input": {"alarmId": gid(10**9)}})
    assert body["acknowledgeAlarm"]["errors"] == [{"field": "alarmId", "code": "NOT_FOUND"}]


WHO_SEES = [
    ("supervisor.north", {"DEMO-A", "DEMO-B"}),
    ("supervisor.south", {"DEMO-C"}),
    ("guard.a", {"DEMO-A"}),
    ("manager.north", {"DEMO-A", "DEMO-B"}),
    ("admin", {"DEMO-A", "DEMO-B", "DEMO-C"}),
    ("cs.a", {"DEMO-A"}),
    ("tech.a", {"DEMO-A"}),
    ("finance.north", set()),
    ("owner.a1", set()),
]


@pytest.mark.parametrize(("username", "estates"), WHO_SEES)
async def test_who_sees_which_alarms(
    as_user: Any, runtime: Any, devices: Callable[[], str], username: str, estates: set[str]
) -> None:
    # given one alarm per demo estate, of one fresh alarm type
    kind = f"t_{devices()}".lower()
    for code in ("DEMO-A", "DEMO-B", "DEMO-C"):
        await raise_on(runtime, code, devices(), type_=kind)
    # when
    body = await (await as_user(username)).execute(ALARMS, {"filter": {"type": kind}})
    # then
    assert "errors" not in body, body
    seen = {e["node"]["estate"]["code"] for e in body["data"]["alarms"]["edges"]}
    assert seen == estates
    assert body["data"]["alarms"]["totalCount"] == len(estates)


async def test_an_anonymous_caller_sees_no_alarms(as_user: Any) -> None:
    body = await (await as_user(None)).execute(ALARMS, {})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_filters_and_newest_first(as_user: Any, runtime: Any, devices: Callable[[], str]) -> None:
    # given alarms of one fresh type: MINOR in DEMO-A, CRITICAL in DEMO-B (acknowledged), MAJOR in DEMO-A long ago
    kind = f"t_{devices()}".lower()
    t0 = utcnow()
    minor = await raise_on(runtime, "DEMO-A", devices(), type_=kind, severity=AlarmSeverity.MINOR, at=t0)
    critical = await raise_on(runtime, "DEMO-B", devices(), type_=kind, severity=AlarmSeverity.CRITICAL, at=t0)
    old = await raise_on(runtime, "DEMO-A", devices(), type_=kind, at=t0 - dt.timedelta(days=3))
    supervisor = await as_user("supervisor.north")
    assert (await supervisor.data(ACK, _input("acknowledgeAlarm", critical.alarm.id)))["acknowledgeAlarm"][
        "errors"
    ] == []
    demo_a = (await supervisor.data("{ estates(first: 10) { edges { node { id code } } } }"))["estates"]["edges"]
    a_id = next(e["node"]["id"] for e in demo_a if e["node"]["code"] == "DEMO-A")

    async def ids(**filter: Any) -> list[str]:
        body = await supervisor.data(ALARMS, {"filter": {"type": kind, **filter}})
        return [e["node"]["id"] for e in body["alarms"]["edges"]]

    # then
    assert await ids() == [gid(old.alarm.id), gid(critical.alarm.id), gid(minor.alarm.id)]  # newest (id) first
    assert await ids(minSeverity="MAJOR") == [gid(old.alarm.id), gid(critical.alarm.id)]
    assert await ids(minSeverity="CRITICAL") == [gid(critical.alarm.id)]
    assert await ids(status=["ACKNOWLEDGED"]) == [gid(critical.alarm.id)]
    assert await ids(status=["ACTIVE"], estateIds=[a_id]) == [gid(old.alarm.id), gid(minor.alarm.id)]
    since = (t0 - dt.timedelta(days=1)).isoformat()
    assert await ids(**{"from": since}) == [gid(critical.alarm.id), gid(minor.alarm.id)]
    assert await ids(to=since) == [gid(old.alarm.id)]


async def test_a_page_of_alarms_takes_a_fixed_number_of_statements(
    as_user: Any, runtime: Any, devices: Callable[[], str], count_statements: Any
) -> None:
    # given a fresh type with 2 alarms, each acknowledged and commented (actors in the history)
    kind = f"t_{devices()}".lower()
    supervisor, manager = await as_user("supervisor.north"), await as_user("manager.north")

    async def add(n: int) -> None:
        for _ in range(n):
            change = await raise_on(runtime, "DEMO-A", devices(), type_=kind, automate=True)
            await supervisor.data(ACK, _input("acknowledgeAlarm", change.alarm.id))
            await supervisor.data(COMMENT, _input("commentAlarm", change.alarm.id))

    async def statements() -> tuple[int, int]:
        count_statements.statements.clear()
        body = await manager.data(PAGE, {"filter": {"type": kind}})
        return len(count_statements.statements), len(body["alarms"]["edges"])

    await add(2)
    few, shown_few = await statements()
    # when there are 6
    await add(4)
    many, shown_many = await statements()
    # then the same number of statements (read by manager.north, who also sees tickets and assets), and
    # every nested field is there
    assert (shown_few, shown_many) == (2, 6)
    assert few == many, (few, many)
    body = await manager.data(PAGE, {"filter": {"type": kind}})
    node = body["alarms"]["edges"][0]["node"]
    assert node["ticket"]["number"]
    assert node["estate"]["code"] == "DEMO-A"
    assert [e["kind"] for e in node["events"]] == ["RAISED", "ACKNOWLEDGED", "COMMENTED"]
    assert node["events"][1]["actor"] == {"username": "supervisor.north"}


async def test_the_ticket_of_an_alarm_is_hidden_from_those_who_may_not_see_tickets(
    as_user: Any, runtime: Any, devices: Callable[[], str]
) -> None:
    # given a MAJOR alarm with its ALARM ticket
    kind = f"t_{devices()}".lower()
    change = await raise_on(runtime, "DEMO-A", devices(), type_=kind, automate=True)
    query = "query($f: AlarmFilter) { alarms(filter: $f) { edges { node { id ticket { id } } } } }"
    # when / then: a guard (no Ticket read) sees the alarm without its ticket; a manager sees both
    (guard_view,) = (await (await as_user("guard.a")).data(query, {"f": {"type": kind}}))["alarms"]["edges"]
    (manager_view,) = (await (await as_user("manager.north")).data(query, {"f": {"type": kind}}))["alarms"]["edges"]
    assert guard_view["node"] == {"id": gid(change.alarm.id), "ticket": None}
    assert manager_view["node"]["ticket"] is not None
    assert await count(runtime, select(AlarmEvent).where(AlarmEvent.alarm_id == change.alarm.id)) == 1
