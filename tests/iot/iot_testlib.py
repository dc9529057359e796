"""Helpers shared by the IoT tests (a plain module: conftest.py is not importable)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gmqtt import Client as GmqttClient
from gmqtt.mqtt.constants import MQTTv311

from iot.subscriber import MqttEndpoint


@dataclass(frozen=True)
class Broker:
    name: str
    url: str
    endpoint: MqttEndpoint
    supports_v5: bool


async def purge_session(broker: Broker, client_id: str, *, version: int = MQTTv311) -> None:
    """Drop a persistent session the tests made, so the broker stops queueing for it."""
    client = GmqttClient(client_id, clean_session=True)
    if broker.endpoint.username is not None:
        client.set_auth_credentials(broker.endpoint.username, broker.endpoint.password)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.connect(broker.endpoint.host, broker.endpoint.port, version=version), timeout=5)
        await client.disconnect()


class Publisher:
    def __init__(self, client: Any) -> None:
        self.client = client

    def publish(self, topic: str, payload: dict[str, Any] | str | bytes, *, retain: bool = False) -> None:
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        self.client.publish(topic, data, qos=1, retain=retain)

    async def flush(self) -> None:
        """Wait until the broker has acknowledged everything published so far."""
        await asyncio.wait_for(self.client._persistent_storage.wait_empty(), timeout=10)


async def eventually(
    predicate: Callable[[], bool], *, within: float = 10.0, message: Callable[[], str] | None = None
) -> None:
    """Poll ``predicate`` until true; fail after ``within`` seconds with ``message()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(message() if message else "condition not met in time")
        await asyncio.sleep(0.02)
