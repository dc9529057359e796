"""A device simulator that speaks the MQTT contract (CONTRACT.md), for `wuye simulate` and
the demo.

Each device gets its own MQTT connection (MQTT 3.1.1, so the embedded amqtt broker
accepts it) whose last will is its retained ``{"online": false}`` status; on connect it
publishes a retained ``{"online": true}``. What a device sends is decided by its id:

- ``…TEMP…``: telemetry every tick; the temperature random-walks around 45 and now and
  then climbs above 60 (the demo's MAJOR ``over_temperature`` threshold) and falls back
  below 55 (the clear threshold).
- ``…SMOKE…`` / ``…LEAK…``: occasionally a ``smoke`` (critical) / ``water_leak`` (major)
  event ``raised``, then ``cleared`` a few ticks later.
- ``…GATE…`` / ``…DOOR…``: access events for credential ``card:A1000001``.

Every payload carries a ``msgId`` (a UUID4). With ``seed`` the sequence of payloads
(values and ids, not timestamps) is reproducible; :class:`SimulatorModel` is the pure,
broker-free part.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from gmqtt import Client as _GmqttClient
from gmqtt import Message as _GmqttMessage
from gmqtt.mqtt.constants import MQTTv311

from iot.payloads import (
    AccessPayload,
    AccessResult,
    AlarmState,
    Direction,
    EventPayload,
    Severity,
    StatusPayload,
    TelemetryPayload,
)
from iot.subscriber import parse_mqtt_url
from iot.topics import DEFAULT_TOPIC_ROOT, MessageKind, build_topic

__all__ = [
    "DEMO_CREDENTIAL",
    "DEMO_DEVICES",
    "DeviceProfile",
    "Publication",
    "SimulatorModel",
    "profile_for",
    "simulate",
]

log = structlog.get_logger("iot.simulator")

DEMO_DEVICES: Final[Mapping[str, Sequence[str]]] = {
    "DEMO-A": ("DEMO-A-SMOKE-01", "DEMO-A-TEMP-01", "DEMO-A-GATE-01"),
    "DEMO-C": ("DEMO-C-LEAK-01",),
}
DEMO_CREDENTIAL: Final = "card:A1000001"

RAISE_ABOVE: Final = 60.0
CLEAR_AT_OR_BELOW: Final = 55.0


class DeviceProfile(enum.StrEnum):
    TEMPERATURE = "temperature"
    SMOKE = "smoke"
    WATER_LEAK = "water_leak"
    GATE = "gate"
    GENERIC = "generic"  # status only


def profile_for(device_id: str) -> DeviceProfile:
    upper = device_id.upper()
    if "TEMP" in upper:
        return DeviceProfile.TEMPERATURE
    if "SMOKE" in upper:
        return DeviceProfile.SMOKE
    if "LEAK" in upper:
        return DeviceProfile.WATER_LEAK
    if "GATE" in upper or "DOOR" in upper:
        return DeviceProfile.GATE
    return DeviceProfile.GENERIC


@dataclass(frozen=True, slots=True)
class Publication:
    device_id: str
    kind: MessageKind
    topic: str
    payload: str
    retain: bool = False


@dataclass(slots=True)
class _Device:
    estate_code: str
    device_id: str
    profile: DeviceProfile
    temperature: float = 45.0
    phase: str = "normal"  # temperature: normal / heating / cooling
    peak: float = 0.0
    alarm_ticks_left: int = 0  # smoke / leak: >0 while raised
    inside: bool = False  # gate: where the card holder is


class SimulatorModel:
    """The devices' behaviour, without a broker: ``tick(now)`` → publications."""

    def __init__(
        self,
        estates_devices: Mapping[str, Sequence[str]] = DEMO_DEVICES,
        *,
        seed: int | None = None,
        credential: str = DEMO_CREDENTIAL,
        topic_root: str = DEFAULT_TOPIC_ROOT,
        excursion_probability: float = 0.08,
        incident_probability: float = 0.04,
        access_probability: float = 0.4,
    ) -> None:
        self._rng = random.Random(seed)
        self._credential = credential
        self._root = topic_root
        self._p_excursion = excursion_probability
        self._p_incident = incident_probability
        self._p_access = access_probability
        self.devices: list[_Device] = []
        for estate_code, device_ids in estates_devices.items():
            for device_id in device_ids:
                build_topic(estate_code, device_id, MessageKind.STATUS, root=topic_root)  # validates
                self.devices.append(_Device(estate_code, device_id, profile_for(device_id)))
        if not self.devices:
            raise ValueError("no devices to simulate")

    def _msg_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _topic(self, device: _Device, kind: MessageKind) -> str:
        return build_topic(device.estate_code, device.device_id, kind, root=self._root)

    def _publication(self, device: _Device, kind: MessageKind, payload: str, retain: bool = False) -> Publication:
        return Publication(device.device_id, kind, self._topic(device, kind), payload, retain)

    def status(self, device_id: str, *, online: bool, now: datetime | None = None) -> Publication:
        """The retained status message (without ``now``: the last-will form, no ts)."""
        device = self._device(device_id)
        payload = StatusPayload(online=online, ts=now, msg_id=self._msg_id())
        return self._publication(device, MessageKind.STATUS, payload.to_json(), retain=True)

    def _device(self, device_id: str) -> _Device:
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise KeyError(device_id)

    def tick(self, now: datetime | None = None) -> list[Publication]:
        """One round: what every device publishes now."""
        now = now or datetime.now(UTC)
        out: list[Publication] = []
        for device in self.devices:
            if device.profile is DeviceProfile.TEMPERATURE:
                out.append(self._temperature(device, now))
            elif device.profile in (DeviceProfile.SMOKE, DeviceProfile.WATER_LEAK):
                event = self._incident(device, now)
                if event is not None:
                    out.append(event)
            elif device.profile is DeviceProfile.GATE:
                access = self._access(device, now)
                if access is not None:
                    out.append(access)
        return out

    def _temperature(self, device: _Device, now: datetime) -> Publication:
        rng = self._rng
        if device.phase == "normal":
            device.temperature += rng.gauss(0.0, 0.6) + (45.0 - device.temperature) * 0.1
            device.temperature = min(max(device.temperature, 35.0), 52.0)
            if rng.random() < self._p_excursion:
                device.phase = "heating"
                device.peak = rng.uniform(RAISE_ABOVE + 1.5, 70.0)
        elif device.phase == "heating":
            device.temperature += rng.uniform(2.5, 5.0)
            if device.temperature >= device.peak:
                device.phase = "cooling"
        else:  # cooling: down well below the clear threshold before going back to normal
            device.temperature -= rng.uniform(2.5, 5.0)
            if device.temperature < CLEAR_AT_OR_BELOW - 3.0:
                device.phase = "normal"
        payload = TelemetryPayload(
            ts=now,
            metrics={"temperature": round(device.temperature, 1)},
            msg_id=self._msg_id(),
        )
        return self._publication(device, MessageKind.TELEMETRY, payload.to_json())

    def _incident(self, device: _Device, now: datetime) -> Publication | None:
        smoke = device.profile is DeviceProfile.SMOKE
        if device.alarm_ticks_left > 0:
            device.alarm_ticks_left -= 1
            if device.alarm_ticks_left > 0:
                return None
            state, text = AlarmState.CLEARED, ("smoke cleared" if smoke else "leak stopped")
        elif self._rng.random() < self._p_incident:
            device.alarm_ticks_left = self._rng.randint(2, 5)
            state, text = AlarmState.RAISED, ("smoke detected" if smoke else "water leak detected")
        else:
            return None
        payload = EventPayload(
            ts=now,
            type="smoke" if smoke else "water_leak",
            severity=Severity.CRITICAL if smoke else Severity.MAJOR,
            state=state,
            message=text,
            msg_id=self._msg_id(),
        )
        return self._publication(device, MessageKind.EVENT, payload.to_json())

    def _access(self, device: _Device, now: datetime) -> Publication | None:
        if self._rng.random() >= self._p_access:
            return None
        direction = Direction.OUT if device.inside else Direction.IN
        device.inside = not device.inside
        payload = AccessPayload(
            ts=now,
            credential=self._credential,
            direction=direction,
            result=AccessResult.GRANTED,
            reason=None,
            msg_id=self._msg_id(),
        )
        return self._publication(device, MessageKind.ACCESS, payload.to_json())


def _message(publication: Publication) -> Any:
    return _GmqttMessage(publication.topic, publication.payload, qos=1, retain=publication.retain)


async def _drain(client: Any, within: float) -> None:
    """Wait until the broker acknowledged every QoS 1 publish (best effort)."""
    storage = getattr(client, "_persistent_storage", None)
    wait_empty = getattr(storage, "wait_empty", None)
    with contextlib.suppress(TimeoutError):
        if wait_empty is not None:
            await asyncio.wait_for(wait_empty(), within)
        else:
            await asyncio.sleep(min(within, 0.5))


async def simulate(
    mqtt_url: str,
    *,
    estates_devices: Mapping[str, Sequence[str]] = DEMO_DEVICES,
    interval: float = 2.0,
    count: int | None = None,
    forever: bool = False,
    seed: int | None = None,
    credential: str = DEMO_CREDENTIAL,
    topic_root: str = DEFAULT_TOPIC_ROOT,
    client_id_prefix: str = "wuye-sim",
    announce_offline: bool = True,
) -> dict[str, int]:
    """Publish ``count`` rounds (or, with ``forever=True``, until cancelled) every
    ``interval`` seconds. Returns how many messages of each kind were published.

    On a graceful end each device publishes its retained ``{"online": false}``
    (``announce_offline``); on a crash the broker publishes the same as its last will.
    """
    if forever == (count is not None):
        raise ValueError("pass exactly one of count=N or forever=True")
    if count is not None and count < 0:
        raise ValueError("count must not be negative")
    model = SimulatorModel(estates_devices, seed=seed, credential=credential, topic_root=topic_root)
    endpoint = parse_mqtt_url(mqtt_url)
    run_id = uuid.uuid4().hex[:8]
    clients: dict[str, Any] = {}
    published: dict[str, int] = {kind.value: 0 for kind in MessageKind}

    def send(publication: Publication) -> None:
        clients[publication.device_id].publish(_message(publication))
        published[publication.kind.value] += 1

    try:
        for device in model.devices:
            will = model.status(device.device_id, online=False)
            client = _GmqttClient(
                f"{client_id_prefix}-{device.device_id}-{run_id}"[:128],
                clean_session=True,
                will_message=_message(will),
            )
            client.set_config({"reconnect_delay": 2})
            if endpoint.username is not None:
                client.set_auth_credentials(endpoint.username, endpoint.password)
            await asyncio.wait_for(
                client.connect(endpoint.host, endpoint.port, ssl=endpoint.ssl, version=MQTTv311),
                timeout=10,
            )
            clients[device.device_id] = client
            send(model.status(device.device_id, online=True, now=datetime.now(UTC)))
        log.info("simulator_started", devices=len(clients), interval=interval, seed=seed)

        rounds = 0
        while forever or rounds < (count or 0):
            if rounds:
                await asyncio.sleep(interval)
            for publication in model.tick(datetime.now(UTC)):
                send(publication)
            rounds += 1
        for client in clients.values():
            await _drain(client, within=5)
    finally:
        for device_id, client in clients.items():
            with contextlib.suppress(Exception):
                if announce_offline:
                    send(model.status(device_id, online=False, now=datetime.now(UTC)))
                    await _drain(client, within=2)
                await asyncio.wait_for(client.disconnect(), timeout=5)
        log.info("simulator_stopped", published=published)
    return published
