"""Wires the MQTT subscriber into the runtime: every kind of device message goes to
``backend.devices.ingest.DeviceIngest`` (batched transactions in ``WUYE_INGEST_LANES`` lanes,
msgId dedup by the database's unique key), and messages that fail validation become dead letters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import backend.models  # noqa: F401  (every mapper, whoever starts the ingest)
from backend.devices.ingest import DeviceIngest
from iot.subscriber import MqttSubscriber

if TYPE_CHECKING:
    from backend.app import Runtime


async def start_subscriber(runtime: Runtime) -> MqttSubscriber:
    settings = runtime.settings
    assert settings.mqtt_url
    ingest = DeviceIngest(
        runtime.sessionmaker, runtime.bus, lanes=settings.ingest_lanes, max_batch=settings.ingest_max_batch
    )
    subscriber = MqttSubscriber(
        settings.mqtt_url,
        client_id=settings.mqtt_client_id,
        shared_group=settings.mqtt_shared_group,
        topic_root=settings.mqtt_topic_root,
        handlers=ingest.handlers(),
        on_invalid=ingest.dead_letter,
        max_payload_bytes=settings.mqtt_max_payload_bytes,
    )
    runtime.ingest = ingest
    await subscriber.start()
    return subscriber
