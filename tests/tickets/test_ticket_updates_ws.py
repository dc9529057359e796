"""ticketUpdates over a real websocket: the reporter and the assignee receive each step as it
happens; a resident who cannot see the ticket cannot subscribe to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from tickets_support import HOLD, START, Demo, make_ticket, tid
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from backend.events import CHANNEL_PREFIX
from backend.tickets.models import TicketStatus
from backend.tickets.updates import ticket_channel

TRANSPORT_WS = Subprotocol("graphql-transport-ws")

UPDATES = """
subscription($id: ID!) {
  ticketUpdates(ticketId: $id) { event { type note actor { username } } ticket { status version } }
}
"""


@contextlib.asynccontextmanager
async def _ws(live_api: str, token: str) -> AsyncIterator[Any]:
    async with connect(f"ws://{live_api}/graphql", subprotocols=[TRANSPORT_WS], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=5))["type"] == "connection_ack"
        yield ws


async def _subscribe(ws: Any, ticket_id: int) -> None:
    await ws.send(
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": UPDATES, "variables": {"id": tid(ticket_id)}}})
    )


async def _next(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        return message  # type: ignore[no-any-return]


async def _listeners(runtime: Any, ticket_id: int) -> int:
    ((_name, count),) = await runtime.redis.pubsub_numsub(CHANNEL_PREFIX + ticket_channel(ticket_id))
    return int(count)


async def _until_listening(runtime: Any, ticket_id: int, count: int) -> None:
    for _ in range(250):
        if await _listeners(runtime, ticket_id) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the subscriptions did not start listening")


async def test_the_reporter_and_the_assignee_see_each_step(
    as_user: Any, runtime: Any, demo: Demo, live_api: str
) -> None:
    # given an ASSIGNED ticket reported by owner.a1, assigned to tech.a, both subscribed
    ticket_id = await make_ticket(runtime, demo, TicketStatus.ASSIGNED)
    owner, tech = await as_user("owner.a1"), await as_user("tech.a")
    async with _ws(live_api, owner.token) as owner_ws, _ws(live_api, tech.token) as tech_ws:
        await _subscribe(owner_ws, ticket_id)
        await _subscribe(tech_ws, ticket_id)
        await _until_listening(runtime, ticket_id, 2)
        # when tech.a starts and then holds the ticket
        assert (await tech.data(START, {"input": {"ticketId": tid(ticket_id)}}))["startTicket"]["errors"] == []
        held = await tech.data(HOLD, {"input": {"ticketId": tid(ticket_id), "note": "等配件"}})
        assert held["holdTicket"]["errors"] == []
        # then both receive both steps, in order, with the ticket as it was then
        for ws in (owner_ws, tech_ws):
            first, second = await _next(ws), await _next(ws)
            assert first["type"] == second["type"] == "next", (first, second)
            assert first["payload"]["data"]["ticketUpdates"]["event"] == {
                "type": "STARTED", "note": "", "actor": {"username": "tech.a"},
            }  # fmt: skip
            assert first["payload"]["data"]["ticketUpdates"]["ticket"]["status"] in ("IN_PROGRESS", "ON_HOLD")
            assert second["payload"]["data"]["ticketUpdates"]["event"]["type"] == "HELD"
            assert second["payload"]["data"]["ticketUpdates"]["ticket"]["status"] == "ON_HOLD"


async def test_a_resident_who_cannot_see_the_ticket_cannot_subscribe(
    as_user: Any, runtime: Any, demo: Demo, live_api: str
) -> None:
    ticket_id = await make_ticket(runtime, demo, TicketStatus.ASSIGNED)
    stranger = await as_user("owner.a2")
    async with _ws(live_api, stranger.token) as ws:
        await _subscribe(ws, ticket_id)
        answer = await _next(ws)
    assert answer["type"] == "error" or (answer["type"] == "next" and answer["payload"].get("errors")), answer
    assert await _listeners(runtime, ticket_id) == 0
