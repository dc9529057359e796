"""The pipeline with the machine's real broker: subscriber → ingest → database; dead letters
and /metrics; 1,000 identical events; a msgId repeated across a subscriber restart; the
offline job and the demo rule."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from gmqtt import Client as GmqttClient
from gmqtt.mqtt.constants import MQTTv311
from ingest_testlib import TS, CuttableProxy, RecordingBus, message
from sqlalchemy import func, select

from backend.alarms.models import Alarm, AlarmRule, AlarmSeverity, AlarmStatus
from backend.devices.ingest import DeviceIngest
from backend.devices.models import DeadLetter, Device, DeviceKind, TelemetryReading
from backend.seed_alarms import ensure_demo_rules
from iot.subscriber import MqttSubscriber
from workers import tasks


async def _eventually(predicate: Any, *, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="session")
async def publisher(settings: Any) -> AsyncIterator[Any]:
    from iot.subscriber import parse_mqtt_url

    endpoint = parse_mqtt_url(settings.mqtt_url)
    client = GmqttClient(f"wuye-ingest-pub-{uuid.uuid4().hex[:8]}", clean_session=True)
    if endpoint.username:  # the embedded broker wants the credentials of its URL
        client.set_auth_credentials(endpoint.username, endpoint.password)
    await asyncio.wait_for(client.connect(endpoint.host, endpoint.port, version=MQTTv311), 10)
    yield client
    await client.disconnect()


def _subscriber(settings: Any, ingest: DeviceIngest, client_id: str) -> MqttSubscriber:
    return MqttSubscriber(
        settings.mqtt_url,
        client_id=client_id,
        handlers=ingest.handlers(),
        on_invalid=ingest.dead_letter,
        max_payload_bytes=settings.mqtt_max_payload_bytes,
        reconnect_min_delay=0.1,
        reconnect_max_delay=0.5,
    )


async def _started(subscriber: MqttSubscriber) -> MqttSubscriber:
    await subscriber.start()
    await asyncio.wait_for(subscriber.wait_connected(), 10)
    return subscriber


async def _purge(settings: Any, client_id: str) -> None:
    from iot.subscriber import parse_mqtt_url

    endpoint = parse_mqtt_url(settings.mqtt_url)
    client = GmqttClient(client_id, clean_session=True)
    if endpoint.username:
        client.set_auth_credentials(endpoint.username, endpoint.password)
    await asyncio.wait_for(client.connect(endpoint.host, endpoint.port, version=MQTTv311), 10)
    await client.disconnect()


async def _scalar(runtime: Any, statement: Any) -> Any:
    async with runtime.sessionmaker() as session:
        return await session.scalar(statement)


async def test_a_thousand_identical_events_through_the_broker_make_one_alarm(
    runtime: Any, settings: Any, ingest: DeviceIngest, make_device: Any, publisher: Any
) -> None:
    device_id = await make_device(kind=DeviceKind.SMOKE_DETECTOR)
    client_id = f"wuye-ingest-{uuid.uuid4().hex[:8]}"
    subscriber = await _started(_subscriber(settings, ingest, client_id))
    try:
        event = {"ts": TS, "type": "smoke", "severity": "critical", "state": "raised", "message": "烟感报警"}
        for i in range(1000):
            publisher.publish(f"wuye/DEMO-A/{device_id}/event", json.dumps({**event, "msgId": f"m{i}"}), qos=1)

        async def occurrences() -> bool:
            value = await _scalar(runtime, select(func.sum(Alarm.occurrences)).where(Alarm.device_id == device_id))
            return value == 1000

        await _eventually(occurrences, within=60)
    finally:
        await subscriber.stop()
        await _purge(settings, client_id)
    (alarm,) = (await _scalar(runtime, select(func.array_agg(Alarm.status)).where(Alarm.device_id == device_id)),)
    assert alarm == [AlarmStatus.ACTIVE]
    assert (ingest.handled, subscriber.handler_errors) == (1000, 0)


async def test_bad_messages_become_dead_letters_counted_in_metrics_and_the_subscriber_goes_on(
    runtime: Any, settings: Any, http: Any, make_device: Any, publisher: Any
) -> None:
    ingest = DeviceIngest(runtime.sessionmaker, RecordingBus())
    device_id = await make_device()
    stranger = f"NEW-{uuid.uuid4().hex[:8].upper()}"
    make_device.made.append(stranger)
    client_id = f"wuye-ingest-{uuid.uuid4().hex[:8]}"
    subscriber = await _started(_subscriber(settings, ingest, client_id))
    saved = runtime.mqtt, runtime.ingest
    runtime.mqtt, runtime.ingest = subscriber, ingest
    try:
        topic = f"wuye/DEMO-A/{device_id}/telemetry"
        publisher.publish(topic, b"{not json", qos=1)
        publisher.publish(topic, json.dumps({"ts": TS, "metrics": {"temperature": "hot"}}), qos=1)
        publisher.publish(topic, json.dumps({"ts": TS, "metrics": {"t": 1}, "pad": "x" * (70 * 1024)}), qos=1)
        publisher.publish(f"wuye/DEMO-A/{stranger}/telemetry", json.dumps({"ts": TS, "metrics": {"t": 1}}), qos=1)
        publisher.publish(topic, json.dumps({"ts": TS, "metrics": {"temperature": 21.5}}), qos=1)

        async def reading_stored() -> bool:
            count = await _scalar(
                runtime,
                select(func.count()).select_from(TelemetryReading).where(TelemetryReading.device_id == device_id),
            )
            return bool(count == 1)

        await _eventually(reading_stored)
        response = await http.get("/metrics")
    finally:
        runtime.mqtt, runtime.ingest = saved
        await subscriber.stop()
        await _purge(settings, client_id)
    async with runtime.sessionmaker() as session:
        letters = list(
            await session.execute(
                select(DeadLetter.device_id, DeadLetter.reason, func.length(DeadLetter.payload))
                .where(DeadLetter.device_id.in_([device_id, stranger]))
                .order_by(DeadLetter.id)
            )
        )
    # (bad messages are kept as they come; their order among themselves is not promised)
    assert sorted((d, r) for d, r, _n in letters) == sorted([
        (device_id, "MALFORMED"),
        (device_id, "INVALID_PAYLOAD"),
        (device_id, "TOO_LARGE"),
        (stranger, "UNKNOWN_DEVICE"),
    ])  # fmt: skip
    assert [n for _d, r, n in letters if r == "TOO_LARGE"] == [4096]  # kept truncated
    body = response.text
    for reason in ("MALFORMED", "INVALID_PAYLOAD", "TOO_LARGE", "UNKNOWN_DEVICE"):
        assert f'wuye_mqtt_dead_letters_total{{reason="{reason}"}} 1' in body
    assert "wuye_mqtt_messages_invalid_total 3" in body
    assert "wuye_ingest_handled_total 1" in body


async def test_a_msg_id_repeated_after_a_subscriber_restart_is_stored_once(
    runtime: Any, settings: Any, make_device: Any, publisher: Any
) -> None:
    device_id = await make_device()
    client_id = f"wuye-ingest-{uuid.uuid4().hex[:8]}"
    topic = f"wuye/DEMO-A/{device_id}/telemetry"

    async def readings() -> int:
        return int(
            await _scalar(
                runtime,
                select(func.count()).select_from(TelemetryReading).where(TelemetryReading.device_id == device_id),
            )
        )

    first = DeviceIngest(runtime.sessionmaker, RecordingBus())
    subscriber = await _started(_subscriber(settings, first, client_id))
    publisher.publish(topic, json.dumps({"ts": TS, "metrics": {"t": 1}, "msgId": "once"}), qos=1)
    try:
        await _eventually(lambda: _is(readings, 1))
    finally:
        await subscriber.stop()
    # a new process: the same msgId again (a device retry), then a new one
    second = DeviceIngest(runtime.sessionmaker, RecordingBus())
    subscriber = await _started(_subscriber(settings, second, client_id))
    try:
        publisher.publish(topic, json.dumps({"ts": TS, "metrics": {"t": 1}, "msgId": "once"}), qos=1)
        publisher.publish(topic, json.dumps({"ts": TS, "metrics": {"t": 2}, "msgId": "twice"}), qos=1)
        await _eventually(lambda: _is(readings, 2))
        await _eventually(lambda: _true(second.duplicates == 1))
    finally:
        await subscriber.stop()
        await _purge(settings, client_id)
    assert (first.handled, second.handled, second.duplicates) == (1, 1, 1)


async def _is(count: Any, expected: int) -> bool:
    return bool(await count() == expected)


async def _true(value: bool) -> bool:
    return value


async def test_the_offline_job_raises_once_and_the_next_message_clears(
    runtime: Any, ingest: DeviceIngest, make_device: Any
) -> None:
    # given a device last heard 20 minutes ago (the default silence is 10) and one heard just now
    now = dt.datetime.now(dt.UTC)
    silent = await make_device(last_seen_at=now - dt.timedelta(minutes=20), online=True)
    patient = await make_device(last_seen_at=now - dt.timedelta(minutes=20), online=True, offline_after_seconds=3600)
    recent = await make_device(last_seen_at=now, online=True)
    # when the job runs twice
    first = await tasks.check_device_presence({"runtime": runtime}, now=now)
    second = await tasks.check_device_presence({"runtime": runtime}, now=now + dt.timedelta(minutes=1))
    # then one MINOR device_offline alarm for the silent device only, raised once
    async with runtime.sessionmaker() as session:
        alarms = list(
            (await session.scalars(select(Alarm).where(Alarm.device_id.in_([silent, patient, recent])))).all()
        )
        online = await session.scalar(select(Device.online).where(Device.device_id == silent))
    assert [(a.device_id, a.type, a.severity, a.occurrences) for a in alarms] == [
        (silent, "device_offline", AlarmSeverity.MINOR, 1)
    ]
    assert first["offline"] >= 1
    assert second["offline"] == 0
    assert online is False
    # when the device is heard from again
    await ingest.handle(message(silent, "telemetry", {"metrics": {"temperature": 20}}))
    async with runtime.sessionmaker() as session:
        alarm = await session.scalar(select(Alarm).where(Alarm.device_id == silent))
        online = await session.scalar(select(Device.online).where(Device.device_id == silent))
    assert alarm is not None
    assert (alarm.status, online) == (AlarmStatus.CLEARED, True)


async def test_the_demo_rule_and_device_bindings(runtime: Any) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await ensure_demo_rules(session)
        again = await ensure_demo_rules(session)
    async with runtime.sessionmaker() as session:
        rules = list((await session.scalars(select(AlarmRule).where(AlarmRule.device_id == "DEMO-A-TEMP-01"))).all())
        bound = dict(
            (
                await session.execute(select(Device.device_id, Device.asset_id).where(Device.device_id.like("DEMO-%")))
            ).all()
        )
    assert again == 0
    assert [(r.metric, r.operator.name, r.raise_threshold, r.clear_threshold, r.alarm_type, r.severity.name)
            for r in rules] == [("temperature", "ABOVE", 60, 55, "over_temperature", "MAJOR")]  # fmt: skip
    assert set(bound) >= {"DEMO-A-TEMP-01", "DEMO-A-SMOKE-01", "DEMO-A-GATE-01", "DEMO-C-LEAK-01"}
    assert all(asset_id is not None for asset_id in bound.values())


async def test_a_stream_cut_by_a_crashed_subscriber_is_stored_exactly_once_after_the_restart(
    runtime: Any, settings: Any, make_device: Any, publisher: Any
) -> None:
    """The subscriber process dies mid-stream (its connection cut without a DISCONNECT, so the
    broker keeps the unacknowledged messages in its persistent session) and a new one starts
    with the same client id: every one of 2,000 messages is stored, none twice — what was
    committed but not yet acknowledged comes again and meets the msgId key."""
    from iot.subscriber import parse_mqtt_url

    # given
    device_id = await make_device()
    topic = f"wuye/DEMO-A/{device_id}/telemetry"
    client_id = f"wuye-crash-{uuid.uuid4().hex[:8]}"
    endpoint = parse_mqtt_url(settings.mqtt_url)
    proxy = CuttableProxy(endpoint.host, endpoint.port)
    await proxy.start()
    auth = f"{endpoint.username}:{endpoint.password}@" if endpoint.username else ""
    via_proxy = settings.model_copy(update={"mqtt_url": f"mqtt://{auth}127.0.0.1:{proxy.port}"})

    async def readings() -> int:
        statement = select(func.count()).select_from(TelemetryReading).where(TelemetryReading.device_id == device_id)
        return int(await _scalar(runtime, statement))

    first = DeviceIngest(runtime.sessionmaker, RecordingBus())
    subscriber = await _started(_subscriber(via_proxy, first, client_id))
    second_subscriber: MqttSubscriber | None = None
    try:
        # when 2,000 messages stream in, 200 at a time (a broker queues at most 1,000 messages
        # for a client that is away), and the first subscriber's connection dies mid-stream
        second = DeviceIngest(runtime.sessionmaker, RecordingBus())
        for start in range(0, 2000, 200):
            for n in range(start, start + 200):
                publisher.publish(topic, json.dumps({"ts": TS, "metrics": {"n": n}, "msgId": f"m{n}"}), qos=1)
            if start == 600:
                await _eventually(lambda: _at_least(readings, 650))  # mid-chunk: messages in flight
                proxy.cut()
                await subscriber.stop()
                second_subscriber = await _started(_subscriber(settings, second, client_id))
            else:
                await _eventually(lambda bound=start: _at_least(readings, bound))
        # then every message is stored once
        await _eventually(lambda: _is(readings, 2000), within=60)
        await asyncio.sleep(0.5)  # anything still redelivered would land now
        async with runtime.sessionmaker() as session:
            distinct = await session.scalar(
                select(func.count(func.distinct(TelemetryReading.metrics["n"].astext))).where(
                    TelemetryReading.device_id == device_id
                )
            )
        assert (await readings(), distinct) == (2000, 2000)
        assert first.handled + second.handled == 2000
    finally:
        if second_subscriber is not None:
            await second_subscriber.stop()
        await proxy.close()
        await _purge(settings, client_id)


async def _at_least(count: Any, expected: int) -> bool:
    return bool(await count() >= expected)
