"""The device simulator's behaviour (no broker): contract-conformant and reproducible."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from iot.payloads import AccessPayload, EventPayload, StatusPayload, TelemetryPayload, parse_payload
from iot.simulator import (
    DEMO_CREDENTIAL,
    DEMO_DEVICES,
    DeviceProfile,
    Publication,
    SimulatorModel,
    profile_for,
    simulate,
)
from iot.topics import MessageKind, parse_topic

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def run(model: SimulatorModel, ticks: int) -> list[Publication]:
    out: list[Publication] = []
    for i in range(ticks):
        out.extend(model.tick(START + timedelta(seconds=2 * i)))
    return out


def test_demo_devices_match_the_contract() -> None:
    assert dict(DEMO_DEVICES) == {
        "DEMO-A": ("DEMO-A-SMOKE-01", "DEMO-A-TEMP-01", "DEMO-A-GATE-01"),
        "DEMO-C": ("DEMO-C-LEAK-01",),
    }
    assert DEMO_CREDENTIAL == "card:A1000001"
    assert [profile_for(d) for d in ("DEMO-A-SMOKE-01", "DEMO-A-TEMP-01", "DEMO-A-GATE-01", "DEMO-C-LEAK-01")] == [
        DeviceProfile.SMOKE,
        DeviceProfile.TEMPERATURE,
        DeviceProfile.GATE,
        DeviceProfile.WATER_LEAK,
    ]
    assert profile_for("X-METER-9") is DeviceProfile.GENERIC


def test_every_publication_is_contract_conformant() -> None:
    model = SimulatorModel(seed=1)
    publications = run(model, 500)
    for publication in publications:
        topic = parse_topic(publication.topic)
        assert topic.kind is publication.kind
        assert topic.device_id == publication.device_id
        payload = parse_payload(topic.kind, publication.payload.encode())
        assert payload.msg_id is not None
        assert publication.retain is False
    kinds = {p.kind for p in publications}
    assert kinds == {MessageKind.TELEMETRY, MessageKind.EVENT, MessageKind.ACCESS}
    assert len({json.loads(p.payload)["msgId"] for p in publications}) == len(publications)


def test_the_same_seed_gives_the_same_messages() -> None:
    first = run(SimulatorModel(seed=42), 200)
    second = run(SimulatorModel(seed=42), 200)
    other = run(SimulatorModel(seed=43), 200)
    assert first == second
    assert first != other


def test_temperature_crosses_60_and_falls_back_to_55_or_below() -> None:
    publications = run(SimulatorModel(seed=7), 400)
    readings = [
        json.loads(p.payload)["metrics"]["temperature"]
        for p in publications
        if p.device_id == "DEMO-A-TEMP-01" and p.kind is MessageKind.TELEMETRY
    ]
    assert len(readings) == 400  # one reading every tick
    excursions = 0
    above = False
    for value in readings:
        if not above and value > 60:
            above, excursions = True, excursions + 1
        elif above and value <= 55:
            above = False
    assert excursions >= 3
    assert not above or readings[-1] > 55
    assert min(readings) >= 30
    assert max(readings) <= 80
    normal = [v for v in readings if v <= 55]
    assert len(normal) > len(readings) / 2  # mostly normal


def test_smoke_and_leak_events_are_raised_then_cleared() -> None:
    publications = run(SimulatorModel(seed=3), 600)
    for device, alarm_type, severity in (
        ("DEMO-A-SMOKE-01", "smoke", "critical"),
        ("DEMO-C-LEAK-01", "water_leak", "major"),
    ):
        events = [parse_payload(MessageKind.EVENT, p.payload) for p in publications if p.device_id == device]
        assert len(events) >= 4
        states = []
        for event in events:
            assert isinstance(event, EventPayload)
            assert (event.type, event.severity.value) == (alarm_type, severity)
            states.append(event.state.value)
        # strictly alternating, starting with raised
        assert states[::2] == ["raised"] * len(states[::2])
        assert states[1::2] == ["cleared"] * len(states[1::2])


def test_gate_access_events_use_the_demo_card_and_alternate_direction() -> None:
    publications = run(SimulatorModel(seed=5), 100)
    accesses = [parse_payload(MessageKind.ACCESS, p.payload) for p in publications if p.kind is MessageKind.ACCESS]
    assert len(accesses) >= 20
    directions = []
    for access in accesses:
        assert isinstance(access, AccessPayload)
        assert access.credential == "card:A1000001"
        assert access.result.value == "granted"
        assert access.reason is None
        directions.append(access.direction.value)
    assert directions[:4] == ["in", "out", "in", "out"]
    assert {p.device_id for p in publications if p.kind is MessageKind.ACCESS} == {"DEMO-A-GATE-01"}


def test_status_and_last_will() -> None:
    model = SimulatorModel(seed=1)
    online = model.status("DEMO-A-GATE-01", online=True, now=START)
    assert online.topic == "wuye/DEMO-A/DEMO-A-GATE-01/status"
    assert online.retain is True
    payload = parse_payload(MessageKind.STATUS, online.payload)
    assert isinstance(payload, StatusPayload)
    assert payload.online is True
    assert payload.ts == START

    will = model.status("DEMO-A-GATE-01", online=False)
    assert will.retain is True
    body = json.loads(will.payload)
    assert body.pop("msgId")
    assert body == {"online": False}


def test_custom_estates_and_credential() -> None:
    model = SimulatorModel({"E9": ["E9-TEMP-01", "E9-DOOR-01"]}, seed=2, credential="card:B2", topic_root="acme")
    publications = run(model, 30)
    assert {p.topic.split("/")[0] for p in publications} == {"acme"}
    assert all(
        isinstance(a := parse_payload(MessageKind.ACCESS, p.payload), AccessPayload) and a.credential == "card:B2"
        for p in publications
        if p.kind is MessageKind.ACCESS
    )
    assert any(isinstance(parse_payload(p.kind, p.payload), TelemetryPayload) for p in publications)


def test_invalid_device_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="device id"):
        SimulatorModel({"E": ["bad/id"]})
    with pytest.raises(ValueError, match="no devices"):
        SimulatorModel({})


@pytest.mark.asyncio
async def test_simulate_wants_count_or_forever() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await simulate("mqtt://127.0.0.1:1")
    with pytest.raises(ValueError, match="exactly one"):
        await simulate("mqtt://127.0.0.1:1", count=3, forever=True)
