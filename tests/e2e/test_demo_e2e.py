"""`wuye demo` end to end, as a user runs it: embedded PostgreSQL, Redis and MQTT started from
nothing, demo.json written, a resident notified over the websocket by the demo's own worker,
and Ctrl-C or SIGTERM stopping everything it started."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from e2e_demo import Demo, free_port, listening, start_demo
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

pytestmark = pytest.mark.e2e

PASSWORD = "demo1234"
NOTIFICATION_SECONDS = 15.0

LOGIN = """
mutation Login($username: String!, $password: String!) {
  login(input: {username: $username, password: $password}) { accessToken errors { code } }
}
"""

ESTATES = """
query Estates { estates(first: 50) { edges { node { id code } } } }
"""

PUBLISH_ANNOUNCEMENT = """
mutation Publish($estateId: ID!, $title: String!) {
  publishAnnouncement(input: {estateIds: [$estateId], title: $title, body: "The water is off 9-12.",
                              category: "maintenance", notifyResidents: true}) {
    announcement { id } errors { field code message }
  }
}
"""

NOTIFICATION_ADDED = "subscription { notificationAdded { kind title } }"


@pytest_asyncio.fixture(loop_scope="session")
async def demo() -> AsyncIterator[Demo]:
    base = Path(tempfile.mkdtemp(prefix="wuye-e2e-"))
    running = await start_demo(base / "data", port=free_port())
    try:
        yield running
    finally:
        running.kill_everything()
        shutil.rmtree(base, ignore_errors=True)


async def _graphql(api: str, query: str, variables: dict[str, Any] | None = None, *, token: str = "") -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(api, json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def _login(api: str, username: str) -> str:
    login = (await _graphql(api, LOGIN, {"username": username, "password": PASSWORD}))["login"]
    assert login["errors"] == [], login
    return str(login["accessToken"])


async def _notification_listeners(redis_url: str) -> list[bytes]:
    redis = Redis.from_url(redis_url)
    try:
        channels: list[bytes] = await redis.pubsub_channels("wuye:events:notifications:*")
        return channels
    finally:
        await redis.aclose()


async def _assert_stopped_cleanly(demo: Demo, sig: signal.Signals) -> None:
    endpoints = demo.endpoints()
    # when
    code = await demo.stop(sig)
    # then
    assert code == 0, f"wuye demo did not exit cleanly on {sig.name} (exit {code}):\n{demo.log_tail()}"
    assert "wuye demo stopped." in demo.log_tail()
    still_listening = {name: address for name, address in endpoints.items() if listening(*address)}
    assert still_listening == {}, still_listening
    assert demo.leftovers() == {}, demo.leftovers()


async def test_demo_notifies_a_resident_over_the_websocket_and_stops_on_ctrl_c(demo: Demo) -> None:
    # given a running demo that announced its servers
    assert set(demo.info) >= {"api", "mqtt", "database", "redis"}
    assert urlsplit(demo.info["api"]).path == "/graphql"
    mqtt = urlsplit(demo.info["mqtt"])
    assert (mqtt.scheme, mqtt.hostname) == ("mqtt", "127.0.0.1")
    assert mqtt.username
    assert mqtt.password
    assert mqtt.port
    assert demo.info["database"].startswith("postgresql")
    assert demo.info["redis"].startswith("redis://")
    assert oct((demo.data_dir / "demo.json").stat().st_mode & 0o777) == oct(0o600)
    admin, resident = await _login(demo.api, "admin"), await _login(demo.api, "owner.a1")
    title = f"Water maintenance {uuid.uuid4().hex[:8]}"

    async with connect(demo.ws, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {resident}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": NOTIFICATION_ADDED}}))
        for _ in range(100):
            if await _notification_listeners(demo.info["redis"]):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the subscription never listened on the events bus")

        # when admin publishes an announcement to DEMO-A asking for the residents to be notified
        estates = (await _graphql(demo.api, ESTATES, token=admin))["estates"]["edges"]
        (demo_a,) = [edge["node"]["id"] for edge in estates if edge["node"]["code"] == "DEMO-A"]
        published = await _graphql(demo.api, PUBLISH_ANNOUNCEMENT, {"estateId": demo_a, "title": title}, token=admin)
        assert published["publishAnnouncement"]["errors"] == [], published

        # then the demo's worker fans it out and owner.a1 hears of it
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=NOTIFICATION_SECONDS))
    assert message["type"] == "next", message
    assert message["payload"]["data"]["notificationAdded"] == {"kind": "announcement", "title": title}

    await _assert_stopped_cleanly(demo, signal.SIGINT)


async def test_demo_stops_everything_on_sigterm(demo: Demo) -> None:
    # given a running demo whose API answers
    async with httpx.AsyncClient(timeout=10) as client:
        health = await client.get(demo.api.replace("/graphql", "/healthz"))
    assert health.status_code == 200
    # when / then
    await _assert_stopped_cleanly(demo, signal.SIGTERM)
