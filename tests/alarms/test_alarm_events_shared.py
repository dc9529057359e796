"""alarmEvents over real websockets: one execution per event and result group. Subscribers
with the same document, variables and caller share one execution (and one result); other
variables or another caller make another group; every frame still carries its own
subscription's id and only what its caller may see."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from alarms_support import gid, raise_on
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from backend.alarms.models import AlarmSeverity
from schema.alarms.live import hub_for
from schema.core.execution import stats

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
EVENTS = """subscription Events($f: AlarmEventFilter) { alarmEvents(filter: $f) {
  kind alarm { id severity deviceId estate { code } ticket { id } } } }"""


@contextlib.asynccontextmanager
async def _connected(live_api: str, token: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://{live_api}/graphql", subprotocols=[TRANSPORT_WS], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=5))["type"] == "connection_ack"
        yield ws


async def _subscribe(ws: ClientConnection, operation_id: str, variables: dict[str, Any]) -> None:
    payload = {"query": EVENTS, "operationName": "Events", "variables": variables}
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))


async def _frame(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        assert message["type"] == "next", message
        return message  # type: ignore[no-any-return]


async def _until_subscribed(runtime: Any, count: int) -> None:
    hub = hub_for(runtime.sessionmaker, runtime.bus)
    for _ in range(250):
        if hub.subscriber_count >= count:
            await asyncio.sleep(0.1)  # and the hub's own subscription to the channel
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{hub.subscriber_count} subscribers, expected {count}")


async def test_subscribers_of_one_group_share_one_execution(
    as_user: Any, runtime: Any, live_api: str, devices: Callable[[], str]
) -> None:
    # given supervisor.north subscribed five times alike: four connections, one with two subscriptions
    north = await as_user("supervisor.north")
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(_connected(live_api, north.token)) for _ in range(4)]
        subscriptions = [(ws, f"north-{n}") for n, ws in enumerate(sockets)] + [(sockets[0], "north-extra")]
        for ws, operation_id in subscriptions:
            await _subscribe(ws, operation_id, {"f": {"minSeverity": "MAJOR"}})
        await _until_subscribed(runtime, len(subscriptions))
        executions, reused = stats.executions, stats.reused
        # when one CRITICAL alarm is raised in DEMO-A (as the ingest does: the work order opens too)
        change = await raise_on(runtime, "DEMO-A", devices(), severity=AlarmSeverity.CRITICAL, automate=True)
        frames = {}
        for ws in sockets:
            for _ in range(2 if ws is sockets[0] else 1):
                message = await _frame(ws)
                frames[message["id"]] = message["payload"]
        # then the document ran once, and the four others got that result
        assert (stats.executions - executions, stats.reused - reused) == (1, 4)
        # and every subscription got its frame under its own id, all alike
        assert sorted(frames) == sorted(operation_id for _, operation_id in subscriptions)
        event = frames["north-0"]["data"]["alarmEvents"]
        assert event["alarm"]["id"] == gid(change.alarm.id)
        assert event["alarm"]["estate"] == {"code": "DEMO-A"}
        assert all(payload == frames["north-0"] for payload in frames.values())


async def test_other_variables_or_another_caller_make_another_group(
    as_user: Any, runtime: Any, live_api: str, devices: Callable[[], str]
) -> None:
    # given three groups, two subscribers each: supervisor.north with two filters that both take
    # the alarm, and guard.a (who, unlike supervisors, may not read the alarm's work order)
    north, manager = await as_user("supervisor.north"), await as_user("guard.a")
    groups = [
        (north.token, {"f": {"minSeverity": "MAJOR"}}),
        (north.token, {"f": {"minSeverity": "MINOR"}}),
        (manager.token, {"f": {"minSeverity": "MAJOR"}}),
    ]
    async with contextlib.AsyncExitStack() as stack:
        members = []
        for group, (token, variables) in enumerate(groups):
            for member in range(2):
                ws = await stack.enter_async_context(_connected(live_api, token))
                await _subscribe(ws, f"g{group}-{member}", variables)
                members.append((group, ws))
        await _until_subscribed(runtime, len(members))
        executions, reused = stats.executions, stats.reused
        # when one CRITICAL alarm is raised in DEMO-A
        change = await raise_on(runtime, "DEMO-A", devices(), severity=AlarmSeverity.CRITICAL, automate=True)
        received = [(group, await _frame(ws)) for group, ws in members]
        # then one execution per group, each shared with the group's other member
        assert (stats.executions - executions, stats.reused - reused) == (3, 3)
        # and each caller sees what it may: the work order opened by the alarm not the guard
        for group, message in received:
            alarm = message["payload"]["data"]["alarmEvents"]["alarm"]
            assert alarm["id"] == gid(change.alarm.id)
            assert (alarm["ticket"] is not None) == (group != 2), (group, alarm)
