"""alarmEvents over a real websocket and the per-process fan-out behind it: supervisor.north
receives RAISED / ACKNOWLEDGED for DEMO-A alarms, supervisor.south nothing; filters; a
revoked role ends the subscription; one load per event for many subscribers; a slow
subscriber is dropped while the others still receive."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from alarms_support import gid, raise_on, user_id
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from authz.models import CasbinRule
from authz.rules import subject
from backend.alarms.models import AlarmSeverity
from backend.events import CHANNEL_PREFIX, InProcessEventBus
from schema.alarms.live import OVERFLOW, AlarmHub

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
EVENTS = """subscription($f: AlarmEventFilter) { alarmEvents(filter: $f) {
  kind alarm { id type severity status occurrences deviceId estate { code } } } }"""
ACK = """mutation($input: AcknowledgeAlarmInput!) { acknowledgeAlarm(input: $input) { errors { code } } }"""


@contextlib.asynccontextmanager
async def _ws(live_api: str, token: str) -> AsyncIterator[Any]:
    async with connect(f"ws://{live_api}/graphql", subprotocols=[TRANSPORT_WS], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=5))["type"] == "connection_ack"
        yield ws


async def _subscribe(ws: Any, variables: dict[str, Any] | None = None, operation_id: str = "1") -> None:
    payload = {"query": EVENTS, "variables": variables or {}}
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))


async def _message(ws: Any, within: float = 5.0) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=within))
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        return message  # type: ignore[no-any-return]


async def _events(ws: Any, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        message = await _message(ws)
        assert message["type"] == "next", message
        out.append(message["payload"]["data"]["alarmEvents"])
    return out


async def _silent(ws: Any, within: float = 0.7) -> bool:
    try:
        message = await _message(ws, within)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message: {message}")


async def _until_listening(runtime: Any) -> None:
    """The process's hub listens on the alarms channel (once its first subscriber arrived)."""
    for _ in range(250):
        ((_name, listeners),) = await runtime.redis.pubsub_numsub(CHANNEL_PREFIX + "alarms")
        if int(listeners) >= 1:
            await asyncio.sleep(0.1)  # the subscription's own registration with the hub
            return
        await asyncio.sleep(0.02)
    raise AssertionError("nobody listens on the alarms channel")


async def test_supervisors_receive_the_alarms_of_their_estates_only(
    as_user: Any, runtime: Any, live_api: str, devices: Callable[[], str]
) -> None:
    # given supervisor.north and supervisor.south subscribed
    north, south = await as_user("supervisor.north"), await as_user("supervisor.south")
    async with _ws(live_api, north.token) as north_ws, _ws(live_api, south.token) as south_ws:
        await _subscribe(north_ws)
        await _subscribe(south_ws)
        await _until_listening(runtime)
        # when a CRITICAL smoke alarm is raised in DEMO-A (as the ingest does), and acknowledged
        device = devices()
        change = await raise_on(runtime, "DEMO-A", device, severity=AlarmSeverity.CRITICAL, automate=True)
        (first,) = await _events(north_ws, 1)
        assert (await north.data(ACK, {"input": {"alarmId": gid(change.alarm.id)}}))["acknowledgeAlarm"]["errors"] == []
        (second,) = await _events(north_ws, 1)
        # then supervisor.north receives RAISED then ACKNOWLEDGED, with the alarm as it is then
        assert first == {"kind": "RAISED", "alarm": {"id": gid(change.alarm.id), "type": "smoke",
                         "severity": "CRITICAL", "status": "ACTIVE", "occurrences": 1, "deviceId": device,
                         "estate": {"code": "DEMO-A"}}}  # fmt: skip
        assert (second["kind"], second["alarm"]["status"]) == ("ACKNOWLEDGED", "ACKNOWLEDGED")
        # and supervisor.south nothing
        assert await _silent(south_ws)
        # when a DEMO-C alarm is raised: the other way round
        other = await raise_on(runtime, "DEMO-C", devices(), automate=True)
        (south_event,) = await _events(south_ws, 1)
        assert south_event["alarm"]["id"] == gid(other.alarm.id)
        assert await _silent(north_ws)


async def test_filters_by_estate_and_severity(
    as_user: Any, runtime: Any, live_api: str, devices: Callable[[], str]
) -> None:
    # given supervisor.north subscribed to CRITICAL alarms of DEMO-B only
    north = await as_user("supervisor.north")
    estates = (await north.data("{ estates(first: 10) { edges { node { id code } } } }"))["estates"]["edges"]
    demo_b = next(e["node"]["id"] for e in estates if e["node"]["code"] == "DEMO-B")
    async with _ws(live_api, north.token) as ws:
        await _subscribe(ws, {"f": {"estateIds": [demo_b], "minSeverity": "CRITICAL"}})
        await _until_listening(runtime)
        # when a MAJOR one in DEMO-B, a CRITICAL one in DEMO-A, then a CRITICAL one in DEMO-B
        await raise_on(runtime, "DEMO-B", devices(), automate=True)
        await raise_on(runtime, "DEMO-A", devices(), severity=AlarmSeverity.CRITICAL, automate=True)
        wanted = await raise_on(runtime, "DEMO-B", devices(), severity=AlarmSeverity.CRITICAL, automate=True)
        # then only the last
        (event,) = await _events(ws, 1)
        assert event["alarm"]["id"] == gid(wanted.alarm.id)
        assert await _silent(ws)


async def test_residents_may_not_subscribe(as_user: Any, live_api: str) -> None:
    owner = await as_user("owner.a1")
    async with _ws(live_api, owner.token) as ws:
        await _subscribe(ws)
        message = await _message(ws)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert message["type"] in ("error", "next")
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"
        assert message["payload"].get("data") is None if message["type"] == "next" else True


async def test_revoking_the_role_ends_the_subscription(
    as_user: Any, runtime: Any, live_api: str, devices: Callable[[], str]
) -> None:
    # given guard.a subscribed (security_guard at office N1)
    guard = await as_user("guard.a")
    guard_id = await user_id(runtime, "guard.a")
    async with runtime.sessionmaker() as session:
        grant = await session.scalar(
            select(CasbinRule).where(CasbinRule.v0 == subject(guard_id), CasbinRule.v1 == "security_guard")
        )
    assert grant is not None
    line = (grant.v0, grant.v1, grant.v2)
    try:
        async with _ws(live_api, guard.token) as ws:
            await _subscribe(ws)
            await _until_listening(runtime)
            # when the role is revoked
            async with runtime.sessionmaker() as session, session.begin():
                await session.delete(await session.get(CasbinRule, grant.id))
            await runtime.policy_changed()
            # then the subscription completes, and a later alarm is not delivered
            message = await _message(ws, within=5)
            assert message == {"id": "1", "type": "complete"}
            await raise_on(runtime, "DEMO-A", devices(), automate=True)
            assert await _silent(ws)
    finally:
        async with runtime.sessionmaker() as session, session.begin():
            session.add(CasbinRule(ptype="g", v0=line[0], v1=line[1], v2=line[2]))
        await runtime.policy_changed()


async def test_one_load_per_event_for_many_subscribers(
    runtime: Any, devices: Callable[[], str], count_statements: Any
) -> None:
    # given a hub with 50 subscribers
    hub = AlarmHub(runtime.sessionmaker, InProcessEventBus())
    subscribers = [hub.add(lambda _event: True) for _ in range(50)]
    change = await raise_on(runtime, "DEMO-A", devices())
    # when the event is dispatched
    count_statements.statements.clear()
    offered = await hub.dispatch(change.message())
    # then one statement loaded the alarm, and every subscriber holds the very same object
    assert offered == 50
    assert len(count_statements.statements) == 1
    held = [s.queue.get_nowait() for s in subscribers]
    assert {id(event) for event in held} == {id(held[0])}
    assert held[0].alarm.estate.code == "DEMO-A"
    # and the same event again is not dispatched twice
    assert await hub.dispatch(change.message()) == 0
    await hub.close()


async def test_a_slow_subscriber_is_dropped_and_the_others_still_receive(
    runtime: Any, devices: Callable[[], str]
) -> None:
    # given a hub with queues of 3: one subscriber reads, one does not
    hub = AlarmHub(runtime.sessionmaker, InProcessEventBus(), queue_size=3)
    fast, slow = hub.add(lambda _event: True), hub.add(lambda _event: True)
    received = []
    device = devices()
    # when 10 events arrive
    for _ in range(10):
        change = await raise_on(runtime, "DEMO-A", device)
        await hub.dispatch(change.message())
        received.append(fast.queue.get_nowait())
    # then the reader received all 10; the other was dropped, told so, and is offered nothing more
    assert [event.kind.value for event in received] == ["RAISED"] + ["UPDATED"] * 9
    assert slow.dropped
    assert slow.queue.get_nowait() is OVERFLOW
    assert slow.queue.empty()
    await hub.close()
