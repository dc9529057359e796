"""The subscriber's message pipeline without a broker: ``MqttSubscriber.handle``."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
import structlog

from iot.payloads import TelemetryPayload
from iot.subscriber import (
    DeviceMessage,
    MemoryMessageDeduplicator,
    MqttEndpoint,
    MqttSubscriber,
    parse_mqtt_url,
)
from iot.topics import MessageKind

URL = "mqtt://127.0.0.1:1"  # never connected in these tests


def telemetry(value: float = 21.5, msg_id: str | None = None) -> bytes:
    data: dict[str, Any] = {"ts": "2026-11-22T08:00:00Z", "metrics": {"temperature": value}}
    if msg_id is not None:
        data["msgId"] = msg_id
    return json.dumps(data).encode()


class Recorder:
    def __init__(self) -> None:
        self.messages: list[DeviceMessage] = []

    async def __call__(self, message: DeviceMessage) -> None:
        self.messages.append(message)


@pytest.mark.asyncio
async def test_valid_message_is_dispatched_by_kind() -> None:
    telemetry_handler, status_handler = Recorder(), Recorder()
    sub = MqttSubscriber(URL, handlers={MessageKind.TELEMETRY: telemetry_handler})
    sub.register("status", status_handler)

    assert await sub.handle("wuye/DEMO-A/DEMO-A-TEMP-01/telemetry", telemetry(72.5, "m1"), retained=False) == 0
    assert await sub.handle("wuye/DEMO-A/DEMO-A-TEMP-01/status", b'{"online": true}', retained=True) == 0

    [message] = telemetry_handler.messages
    assert (message.estate_code, message.device_id, message.kind, message.msg_id) == (
        "DEMO-A",
        "DEMO-A-TEMP-01",
        MessageKind.TELEMETRY,
        "m1",
    )
    assert isinstance(message.payload, TelemetryPayload)
    assert message.payload.metrics == {"temperature": 72.5}
    assert status_handler.messages[0].retained is True
    assert (sub.received, sub.processed, sub.invalid, sub.duplicates) == (2, 2, 0, 0)


@pytest.mark.asyncio
async def test_message_without_handler_is_counted_not_failed() -> None:
    sub = MqttSubscriber(URL)
    assert (
        await sub.handle(
            "wuye/E/D/access",
            json.dumps(
                {"ts": "2026-11-22T08:00:00Z", "credential": "card:A1000001", "direction": "in", "result": "granted"}
            ),
        )
        == 0
    )
    assert (sub.received, sub.processed, sub.unhandled, sub.invalid) == (1, 0, 1, 0)


def test_one_handler_per_kind() -> None:
    sub = MqttSubscriber(URL)

    @sub.on(MessageKind.EVENT)
    async def first(message: DeviceMessage) -> None:
        return None

    with pytest.raises(ValueError, match="already registered"):
        sub.register("event", first)
    with pytest.raises(ValueError, match="not a valid"):
        sub.register("alarm", first)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("wuye/E/D/telemetry", b"{not json"),
        ("wuye/E/D/telemetry", b'{"ts": "2026-11-22T08:00:00Z", "metrics": {"t": "hot"}}'),
        ("wuye/E/D/event", b'{"ts": "2026-11-22T08:00:00Z", "type": "smoke", "severity": "HIGH", "state": "raised"}'),
        ("wuye/E/D/alarm", b'{"online": true}'),
        ("wuye/E/telemetry", b'{"online": true}'),
        ("elsewhere/E/D/status", b'{"online": true}'),
        (b"wuye/E/\xff/status", b'{"online": true}'),
        ("wuye/E/D/status", b""),
    ],
)
async def test_invalid_is_counted_logged_and_not_raised(topic: str | bytes, payload: bytes) -> None:
    handler = Recorder()
    sub = MqttSubscriber(URL, handlers=dict.fromkeys(MessageKind, handler))
    with structlog.testing.capture_logs() as logs:
        code = await sub.handle(topic, payload)
    assert code == 153  # PAYLOAD_FORMAT_INVALID (MQTT 5 PUBACK; not sent on 3.1.1)
    assert (sub.received, sub.invalid, sub.processed) == (1, 1, 0)
    assert handler.messages == []
    [entry] = [e for e in logs if e["event"] == "mqtt_message_invalid"]
    assert set(entry) >= {"topic", "error"}
    assert "payload" not in entry


@pytest.mark.asyncio
async def test_invalid_payload_log_has_topic_and_error_but_no_values() -> None:
    sub = MqttSubscriber(URL)
    raw = json.dumps(
        {
            "ts": "2026-11-22T08:00:00Z",
            "credential": "card:PRIVATE-123",
            "direction": "in",
            "result": "maybe",
            "reason": "Zhang San 13800138000",
        }
    )
    with structlog.testing.capture_logs() as logs:
        await sub.handle("wuye/E1/GATE-1/access", raw)
    [entry] = logs
    assert entry["topic"] == "wuye/E1/GATE-1/access"
    assert "result" in entry["error"]
    rendered = repr(entry)
    for secret in ("PRIVATE-123", "Zhang San", "13800138000", "maybe"):
        assert secret not in rendered


@pytest.mark.asyncio
async def test_repeated_msg_id_from_same_device_handled_once() -> None:
    handler = Recorder()
    dedup = MemoryMessageDeduplicator()
    sub = MqttSubscriber(URL, handlers={MessageKind.TELEMETRY: handler}, seen=dedup.seen, forget=dedup.forget)
    await sub.handle("wuye/E/D1/telemetry", telemetry(1, "same"))
    await sub.handle("wuye/E/D1/telemetry", telemetry(1, "same"))
    await sub.handle("wuye/E/D2/telemetry", telemetry(1, "same"))  # another device: not a repeat
    await sub.handle("wuye/E/D1/telemetry", telemetry(1))  # no msgId: never deduplicated
    await sub.handle("wuye/E/D1/telemetry", telemetry(1))
    assert [m.device_id for m in handler.messages] == ["D1", "D2", "D1", "D1"]
    assert (sub.received, sub.processed, sub.duplicates) == (5, 4, 1)


@pytest.mark.asyncio
async def test_handler_exception_is_counted_and_the_msg_id_released() -> None:
    calls: list[float] = []

    async def flaky(message: DeviceMessage) -> None:
        assert isinstance(message.payload, TelemetryPayload)
        calls.append(message.payload.metrics["temperature"])
        if len(calls) == 1:
            raise RuntimeError("database down")

    dedup = MemoryMessageDeduplicator()
    sub = MqttSubscriber(URL, handlers={MessageKind.TELEMETRY: flaky}, seen=dedup, forget=dedup.forget)
    with structlog.testing.capture_logs() as logs:
        assert await sub.handle("wuye/E/D/telemetry", telemetry(1, "m1")) == 131
    assert any(e["event"] == "mqtt_handler_failed" and e["error"] == "RuntimeError" for e in logs)
    # The device retries the same msgId: it is handled (the failed attempt did not count).
    assert await sub.handle("wuye/E/D/telemetry", telemetry(1, "m1")) == 0
    assert await sub.handle("wuye/E/D/telemetry", telemetry(2, "m2")) == 0
    assert calls == [1, 1, 2]
    assert (sub.received, sub.processed, sub.handler_errors, sub.duplicates) == (3, 2, 1, 0)


@pytest.mark.asyncio
async def test_dedup_store_failure_falls_back_to_processing() -> None:
    handler = Recorder()

    async def broken_seen(device_id: str, msg_id: str) -> bool:
        raise ConnectionError("redis down")

    sub = MqttSubscriber(URL, handlers={MessageKind.TELEMETRY: handler}, seen=broken_seen)
    assert await sub.handle("wuye/E/D/telemetry", telemetry(1, "m1")) == 0
    assert len(handler.messages) == 1


@pytest.mark.asyncio
async def test_one_device_keeps_its_order_while_devices_run_concurrently() -> None:
    rng = random.Random(5)
    seen: dict[str, list[float]] = {"A": [], "B": []}
    running = 0
    peak = 0

    async def slow(message: DeviceMessage) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(rng.uniform(0, 0.005))
        assert isinstance(message.payload, TelemetryPayload)
        seen[message.device_id].append(message.payload.metrics["temperature"])
        running -= 1

    sub = MqttSubscriber(URL, handlers={MessageKind.TELEMETRY: slow}, concurrency=8)
    # Like gmqtt: one task per message, created in arrival order.
    tasks = [
        asyncio.create_task(sub.handle(f"wuye/E/{device}/telemetry", telemetry(i)))
        for i in range(40)
        for device in ("A", "B")
    ]
    await asyncio.gather(*tasks)
    assert seen["A"] == [float(i) for i in range(40)]
    assert seen["B"] == [float(i) for i in range(40)]
    assert peak == 2  # the two devices did run side by side


@pytest.mark.asyncio
async def test_memory_deduplicator() -> None:
    dedup = MemoryMessageDeduplicator(ttl_seconds=60, max_entries=2)
    assert await dedup.seen("d", "1") is False
    assert await dedup.seen("d", "1") is True
    assert await dedup("d", "2") is False
    assert await dedup.seen("d", "3") is False  # full: the oldest made room
    await dedup.forget("d", "3")
    assert await dedup.seen("d", "3") is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", MqttEndpoint("127.0.0.1", 1883)),
        ("mqtt://broker", MqttEndpoint("broker", 1883)),
        ("mqtt://wuye:s3cr%40t@127.0.0.1:41883", MqttEndpoint("127.0.0.1", 41883, "wuye", "s3cr@t")),
        ("mqtts://u:p@mq.example.com", MqttEndpoint("mq.example.com", 8883, "u", "p", ssl=True)),
        ("mqtt://u@h:1", MqttEndpoint("h", 1, "u", None)),
    ],
)
def test_parse_mqtt_url(url: str, expected: MqttEndpoint) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize("url", ["http://h:1883", "mqtt://", "mqtt://h:notaport", "h:1883"])
def test_parse_mqtt_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="MQTT URL"):
        parse_mqtt_url(url)


def test_password_not_in_endpoint_repr() -> None:
    assert "hunter2" not in repr(parse_mqtt_url("mqtt://u:hunter2@h:1"))


def test_protocol_version_follows_shared_group() -> None:
    plain = MqttSubscriber(URL, client_id="wuye-api")
    assert (plain.protocol_version, plain.topic_filter, plain.client_id) == (4, "wuye/+/+/+", "wuye-api")
    shared = MqttSubscriber(URL, client_id="wuye-api", shared_group="api")
    assert shared.protocol_version == 5
    assert shared.topic_filter == "$share/api/wuye/+/+/+"
    assert shared.client_id.startswith("wuye-api-")
    assert shared.client_id != "wuye-api"
    assert MqttSubscriber(URL, version=5).protocol_version == 5
    with pytest.raises(ValueError, match="version"):
        MqttSubscriber(URL, version=3)


def test_from_settings() -> None:
    from backend.settings import Settings

    settings = Settings(mqtt_url="mqtt://u:p@127.0.0.1:1883", mqtt_client_id="api-1", mqtt_topic_root="wuye")
    sub = MqttSubscriber.from_settings(settings)
    assert (sub.client_id, sub.topic_filter, sub.protocol_version) == ("api-1", "wuye/+/+/+", 4)
    shared = MqttSubscriber.from_settings(settings.model_copy(update={"mqtt_shared_group": "g"}))
    assert shared.topic_filter == "$share/g/wuye/+/+/+"
    assert shared.protocol_version == 5
    with pytest.raises(ValueError, match="WUYE_MQTT_URL"):
        MqttSubscriber.from_settings(settings.model_copy(update={"mqtt_url": None}))


@pytest.mark.asyncio
async def test_a_stuck_handler_times_out_and_frees_its_device() -> None:
    calls: list[float] = []

    async def sometimes_stuck(message: DeviceMessage) -> None:
        assert isinstance(message.payload, TelemetryPayload)
        calls.append(message.payload.metrics["temperature"])
        if len(calls) == 1:
            await asyncio.Event().wait()

    sub = MqttSubscriber(URL, handlers={MessageKind.TELEMETRY: sometimes_stuck}, handler_timeout=0.05)
    first = asyncio.create_task(sub.handle("wuye/E/D/telemetry", telemetry(1)))
    second = asyncio.create_task(sub.handle("wuye/E/D/telemetry", telemetry(2)))  # same device: waits
    assert await asyncio.wait_for(first, 2) == 131
    assert await asyncio.wait_for(second, 2) == 0
    assert calls == [1, 2]
    assert (sub.handler_errors, sub.processed) == (1, 1)
