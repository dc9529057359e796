"""Wires the MQTT subscriber into the runtime. Alarms and access events arrive with their
domains (later issues); until then every device message updates the device's presence."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from iot.subscriber import DeviceMessage, MqttSubscriber, RedisMessageDeduplicator
from iot.topics import MessageKind

if TYPE_CHECKING:
    from backend.app import Runtime

PRESENCE_KEY = "wuye:device:{device_id}"


async def start_subscriber(runtime: Runtime) -> MqttSubscriber:
    settings = runtime.settings
    assert settings.mqtt_url
    dedup = RedisMessageDeduplicator(runtime.redis)

    async def record_presence(message: DeviceMessage) -> None:
        online = True
        if message.kind is MessageKind.STATUS:
            online = bool(getattr(message.payload, "online", True))
        await runtime.redis.hset(  # type: ignore[misc]
            PRESENCE_KEY.format(device_id=message.device_id),
            mapping={
                "estate": message.estate_code,
                "online": int(online),
                "last_seen": message.received_at.isoformat(),
                "last_kind": str(message.kind),
            },
        )
        await runtime.bus.publish(
            "devices", orjson.loads(orjson.dumps({"deviceId": message.device_id, "online": online}))
        )

    subscriber = MqttSubscriber(
        settings.mqtt_url,
        client_id=settings.mqtt_client_id,
        shared_group=settings.mqtt_shared_group,
        topic_root=settings.mqtt_topic_root,
        handlers={kind: record_presence for kind in MessageKind},
        seen=dedup.seen,
        forget=dedup.forget,
    )
    await subscriber.start()
    return subscriber
