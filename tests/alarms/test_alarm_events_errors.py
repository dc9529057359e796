"""An unexpected error while executing a live event is masked like an HTTP one (code
INTERNAL_SERVER_ERROR and a request id), for each subscriber with its own request id, although
the subscribers of one group share one execution; the subscription goes on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from alarms_support import raise_on
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

import schema.alarms.types as alarm_types
from backend.alarms.models import AlarmSeverity
from schema.alarms.live import hub_for
from schema.core.execution import stats

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
EVENTS = "subscription { alarmEvents { kind alarm { id deviceId estate { code } } } }"


@contextlib.asynccontextmanager
async def _subscribed(live_api: str, token: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://{live_api}/graphql", subprotocols=[TRANSPORT_WS], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=5))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}}))
        yield ws


async def _payload(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        assert message["type"] == "next", message
        return message["payload"]  # type: ignore[no-any-return]


async def test_an_internal_error_in_an_event_is_masked_for_each_subscriber(
    as_user: Any, runtime: Any, live_api: str, devices: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two subscribers of one group, and the estate of the next alarm failing to resolve
    north = await as_user("supervisor.north")
    resolve = alarm_types.relation
    broken = {"estate": True}

    async def relation(info: Any, root: Any, attribute: str) -> Any:
        if attribute == "estate" and broken["estate"]:
            raise RuntimeError("a bug's details")
        return await resolve(info, root, attribute)

    monkeypatch.setattr(alarm_types, "relation", relation)
    async with _subscribed(live_api, north.token) as first, _subscribed(live_api, north.token) as second:
        hub = hub_for(runtime.sessionmaker, runtime.bus)
        for _ in range(250):
            if hub.subscriber_count >= 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        executions = stats.executions
        # when an alarm is raised
        await raise_on(runtime, "DEMO-A", devices(), severity=AlarmSeverity.CRITICAL, automate=True)
        payloads = [await _payload(first), await _payload(second)]
        # then one execution failed, and each subscriber got the error masked under its own request id
        assert stats.executions - executions == 1
        errors = [payload["errors"] for payload in payloads]
        assert [payload["data"] for payload in payloads] == [None, None]
        assert [[e["extensions"]["code"] for e in found] for found in errors] == [["INTERNAL_SERVER_ERROR"]] * 2
        assert [found[0]["path"] for found in errors] == [["alarmEvents", "alarm", "estate"]] * 2
        request_ids = {found[0]["extensions"]["requestId"] for found in errors}
        assert len(request_ids) == 2
        # and the subscriptions go on
        broken["estate"] = False
        await raise_on(runtime, "DEMO-A", devices(), severity=AlarmSeverity.CRITICAL, automate=True)
        for ws in (first, second):
            assert (await _payload(ws))["data"]["alarmEvents"]["alarm"]["estate"] == {"code": "DEMO-A"}
