"""alarmEvents over real websockets with a client that stops reading: its socket fills up, the
server's send to it blocks, the hub drops it once it is 100 events behind, and since it cannot
even be told, its connection is hung up; meanwhile a normal client receives every event in time."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from alarms_support import estate_id
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from backend.alarms.models import AlarmSeverity
from backend.alarms.service import ALARM_CHANNEL, raise_alarm
from schema.alarms.live import hub_for
from schema.core.live import DROPPED_GRACE_SECONDS, QUEUE_SIZE

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
EVENTS = "subscription { alarmEvents { kind alarm { id details } } }"
EVENTS_SENT = 400  # well past what the socket buffers and the hub's queue hold for a client that does not read
PER_SECOND = 150


@contextlib.asynccontextmanager
async def _subscribed(live_api: str, token: str, *, reads: bool) -> AsyncIterator[ClientConnection]:
    host, port = live_api.split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if not reads:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's sends back up
    sock.connect((host, int(port)))
    # max_queue: the client library stops reading the socket once this many messages wait for recv()
    async with connect(f"ws://{live_api}/graphql", sock=sock, subprotocols=[TRANSPORT_WS], open_timeout=10,
                       max_queue=1 if not reads else None) as ws:  # fmt: skip
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=5))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}}))
        yield ws


async def _read_all(ws: ClientConnection, count: int, arrived: list[float]) -> None:
    while len(arrived) < count:
        message = json.loads(await ws.recv())
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        arrived.append(time.perf_counter())


async def test_a_client_that_does_not_read_is_hung_up_and_the_others_keep_up(
    as_user: Any, runtime: Any, live_api: str, devices: Callable[[], str]
) -> None:
    # given an alarm with 48 kB of hardly compressible details (websocket frames are deflated)
    async with runtime.sessionmaker() as session, session.begin():
        change = await raise_alarm(
            session, estate_id=await estate_id(runtime, "DEMO-A"), device_id=devices(), type_="smoke",
            severity=AlarmSeverity.MAJOR, details={"blob": base64.b64encode(os.urandom(36000)).decode()},
        )  # fmt: skip
    hub = hub_for(runtime.sessionmaker, runtime.bus)
    north = await as_user("supervisor.north")
    async with (
        _subscribed(live_api, north.token, reads=True) as reader,
        _subscribed(live_api, north.token, reads=False) as sleeper,
    ):
        for _ in range(250):
            if hub.subscriber_count >= 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        # when 400 events of it are published, 150 a second, while one client reads and the other does not
        arrived: list[float] = []
        reading = asyncio.create_task(_read_all(reader, EVENTS_SENT, arrived))
        published = []
        start = time.perf_counter()
        for n in range(EVENTS_SENT):
            await asyncio.sleep(max(0.0, start + n / PER_SECOND - time.perf_counter()))
            published.append(time.perf_counter())
            message = {"alarmId": change.alarm.id, "eventId": f"slow-{change.event.id}-{n}", "kind": "UPDATED"}
            await runtime.bus.publish(ALARM_CHANNEL, message)
        await asyncio.wait_for(reading, timeout=10)
        # then the reader received every event, none later than 1 s after it was published
        assert len(arrived) == EVENTS_SENT
        assert max(got - sent for got, sent in zip(arrived, published, strict=True)) < 1.0
        # and the other was dropped from the hub and its connection hung up: reading again, it gets
        # what the socket still held, fewer than the events, and then the end of the connection
        await asyncio.sleep(DROPPED_GRACE_SECONDS + 0.5)
        assert hub.subscriber_count == 1
        frames = 0
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = json.loads(await asyncio.wait_for(sleeper.recv(), timeout=5))
                assert message["type"] == "next", message
                assert "errors" not in message["payload"], message
                frames += 1
        assert 0 < frames <= EVENTS_SENT - QUEUE_SIZE
        assert sleeper.close_code == 1006  # closed without a closing handshake: hung up
