"""The ingest handlers without a broker: one message at a time through ``DeviceIngest.handle``
on the real database (rules, events, status, dedup, unknown devices, statement counts)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from ingest_testlib import RecordingBus, demo_a, message
from sqlalchemy import func, select

from backend.alarms.models import (
    Alarm,
    AlarmRule,
    AlarmRuleState,
    AlarmSeverity,
    AlarmStatus,
    RuleOperator,
)
from backend.devices.ingest import DeviceIngest, company_of
from backend.devices.models import DeadLetter, Device, DeviceKind, DeviceStatus, TelemetryReading

T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


async def _rule(runtime: Any, device_id: str, **fields: Any) -> int:
    estate = await demo_a(runtime)
    values: dict[str, Any] = {
        "company_id": company_of(estate.org_path),
        "estate_id": estate.id,
        "device_id": device_id,
        "metric": "temperature",
        "operator": RuleOperator.ABOVE,
        "raise_threshold": Decimal(60),
        "clear_threshold": Decimal(55),
        "alarm_type": "over_temperature",
        "severity": AlarmSeverity.MAJOR,
        **fields,
    }
    async with runtime.sessionmaker() as session, session.begin():
        rule = AlarmRule(**values)
        session.add(rule)
        await session.flush()
        return rule.id


async def _alarms(runtime: Any, device_id: str) -> list[Alarm]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(Alarm).where(Alarm.device_id == device_id).order_by(Alarm.id))).all())


async def _device(runtime: Any, device_id: str) -> Device | None:
    async with runtime.sessionmaker() as session:
        return await session.scalar(select(Device).where(Device.device_id == device_id))


async def _count(runtime: Any, model: Any, device_id: str) -> int:
    async with runtime.sessionmaker() as session:
        return int(
            await session.scalar(select(func.count()).select_from(model).where(model.device_id == device_id)) or 0
        )


def _temperature(device_id: str, value: float, *, at: dt.datetime | None = None, msg_id: str | None = None) -> Any:
    data: dict[str, Any] = {"metrics": {"temperature": value}}
    if msg_id is not None:
        data["msgId"] = msg_id
    return message(device_id, "telemetry", data, at=at)


async def test_the_contract_temperature_example(
    runtime: Any, ingest: DeviceIngest, bus: RecordingBus, make_device: Any
) -> None:
    # given CONTRACT.md's rule: above 60 raises a MAJOR over_temperature, at or below 55 clears
    device_id = await make_device()
    await _rule(runtime, device_id)
    states: list[list[tuple[AlarmStatus, int]]] = []
    # when 61, 62, 58, 55, 61 arrive
    for value in (61, 62, 58, 55, 61):
        await ingest.handle(_temperature(device_id, value))
        states.append([(a.status, a.occurrences) for a in await _alarms(runtime, device_id)])
    # then 61 raised; 62 and 58 (the hysteresis band) changed nothing; 55 cleared; 61 opened a new one
    assert states == [
        [(AlarmStatus.ACTIVE, 1)],
        [(AlarmStatus.ACTIVE, 1)],
        [(AlarmStatus.ACTIVE, 1)],
        [(AlarmStatus.CLEARED, 1)],
        [(AlarmStatus.CLEARED, 1), (AlarmStatus.ACTIVE, 1)],
    ]
    first, second = await _alarms(runtime, device_id)
    assert (first.type, first.severity, first.message, first.cleared_by_id) == (
        "over_temperature", AlarmSeverity.MAJOR, "temperature 61 > 60", None,
    )  # fmt: skip
    assert first.estate_id == (await demo_a(runtime)).id
    assert bus.kinds({first.id, second.id}) == ["RAISED", "CLEARED", "RAISED"]
    assert await _count(runtime, TelemetryReading, device_id) == 5


async def test_a_below_rule_is_the_mirror(runtime: Any, ingest: DeviceIngest, make_device: Any) -> None:
    # given: below 5 raises, at or above 8 clears
    device_id = await make_device()
    await _rule(runtime, device_id, metric="pressure", operator=RuleOperator.BELOW, raise_threshold=Decimal(5),
                clear_threshold=Decimal(8), alarm_type="low_pressure")  # fmt: skip
    statuses = []
    for value in (6, 4.5, 7.9, 8):
        await ingest.handle(message(device_id, "telemetry", {"metrics": {"pressure": value}}))
        statuses.append([a.status for a in await _alarms(runtime, device_id)])
    assert statuses == [[], [AlarmStatus.ACTIVE], [AlarmStatus.ACTIVE], [AlarmStatus.CLEARED]]


async def test_a_duration_rule_raises_only_after_the_value_stayed_beyond(
    runtime: Any, ingest: DeviceIngest, make_device: Any
) -> None:
    # given: above 60 for 60 s
    device_id = await make_device()
    rule_id = await _rule(runtime, device_id, duration_seconds=60)
    raised = []
    # when beyond at 0 s and 30 s, back in the band at 40 s, beyond again from 50 s
    for seconds, value in ((0, 61), (30, 65), (40, 58), (50, 61), (100, 70), (111, 61)):
        await ingest.handle(_temperature(device_id, value, at=T0 + dt.timedelta(seconds=seconds)))
        raised.append(len(await _alarms(runtime, device_id)))
    # then only the reading 61 s after 50 s raised (the band at 40 s restarted the clock)
    assert raised == [0, 0, 0, 0, 0, 1]
    async with runtime.sessionmaker() as session:
        state = await session.get(AlarmRuleState, (rule_id, device_id))
    assert state is not None
    assert state.breached_since == T0 + dt.timedelta(seconds=50)
    (alarm,) = await _alarms(runtime, device_id)
    assert (alarm.rule_id, alarm.status, alarm.first_seen_at) == (
        rule_id,
        AlarmStatus.ACTIVE,
        T0 + dt.timedelta(seconds=111),
    )


async def test_a_device_event_raises_and_clears(
    runtime: Any, ingest: DeviceIngest, bus: RecordingBus, make_device: Any
) -> None:
    device_id = await make_device(kind=DeviceKind.SMOKE_DETECTOR)
    smoke = {"type": "smoke", "severity": "critical", "message": "1号楼1单元 烟感报警"}
    # when raised twice, then cleared
    await ingest.handle(message(device_id, "event", {**smoke, "state": "raised"}))
    await ingest.handle(message(device_id, "event", {**smoke, "state": "raised"}))
    (alarm,) = await _alarms(runtime, device_id)
    assert (alarm.type, alarm.severity, alarm.status, alarm.occurrences, alarm.message) == (
        "smoke", AlarmSeverity.CRITICAL, AlarmStatus.ACTIVE, 2, "1号楼1单元 烟感报警",
    )  # fmt: skip
    await ingest.handle(message(device_id, "event", {**smoke, "state": "cleared", "message": "复位"}))
    # then
    (alarm,) = await _alarms(runtime, device_id)
    assert (alarm.status, alarm.cleared_by_id) == (AlarmStatus.CLEARED, None)
    assert bus.kinds({alarm.id}) == ["RAISED", "UPDATED", "CLEARED"]
    # and a clear with nothing open changes nothing
    await ingest.handle(message(device_id, "event", {**smoke, "state": "cleared"}))
    assert len(await _alarms(runtime, device_id)) == 1
    assert bus.kinds({alarm.id}) == ["RAISED", "UPDATED", "CLEARED"]


async def test_a_repeated_msg_id_is_processed_once_even_by_a_fresh_process(
    runtime: Any, ingest: DeviceIngest, bus: RecordingBus, make_device: Any
) -> None:
    device_id = await make_device()
    await ingest.handle(_temperature(device_id, 20, msg_id="m-1"))
    await ingest.handle(_temperature(device_id, 21, msg_id="m-1"))
    # a new ingest (a restarted subscriber: nothing in memory) gets the same msgId again
    restarted = DeviceIngest(runtime.sessionmaker, bus)
    await restarted.handle(_temperature(device_id, 22, msg_id="m-1"))
    await restarted.handle(_temperature(device_id, 23, msg_id="m-2"))
    async with runtime.sessionmaker() as session:
        readings = list(
            await session.scalars(
                select(TelemetryReading.metrics)
                .where(TelemetryReading.device_id == device_id)
                .order_by(TelemetryReading.id)
            )
        )
    assert readings == [{"temperature": 20}, {"temperature": 23}]
    assert (ingest.handled, ingest.duplicates, restarted.handled, restarted.duplicates) == (1, 1, 1, 1)


async def test_an_unknown_device_is_recorded_pending_and_its_message_dead_lettered(
    runtime: Any, ingest: DeviceIngest, make_device: Any
) -> None:
    device_id = f"NEW-{uuid.uuid4().hex[:8].upper()}"
    make_device.made.append(device_id)  # cleaned up with the others
    # when it sends twice
    await ingest.handle(_temperature(device_id, 20, msg_id="x-1"))
    await ingest.handle(_temperature(device_id, 21, msg_id="x-2"))
    # then one PENDING device in the topic's estate, two dead letters, no reading
    device = await _device(runtime, device_id)
    assert device is not None
    assert (device.status, device.estate_id, device.kind, device.last_seen_at) == (
        DeviceStatus.PENDING, (await demo_a(runtime)).id, DeviceKind.OTHER, None,
    )  # fmt: skip
    async with runtime.sessionmaker() as session:
        letters = list((await session.scalars(select(DeadLetter).where(DeadLetter.device_id == device_id))).all())
    assert [(d.reason, d.topic) for d in letters] == [("UNKNOWN_DEVICE", f"wuye/DEMO-A/{device_id}/telemetry")] * 2
    assert '"temperature":20' in letters[0].payload.replace(" ", "")
    assert await _count(runtime, TelemetryReading, device_id) == 0
    assert ingest.dead_letters["UNKNOWN_DEVICE"] == 2


async def test_an_unknown_estate_leaves_the_pending_device_unbound(
    runtime: Any, ingest: DeviceIngest, make_device: Any
) -> None:
    device_id = f"NEW-{uuid.uuid4().hex[:8].upper()}"
    make_device.made.append(device_id)
    await ingest.handle(message(device_id, "status", {"online": True}, estate="NO-SUCH-ESTATE"))
    device = await _device(runtime, device_id)
    assert device is not None
    assert (device.status, device.estate_id) == (DeviceStatus.PENDING, None)


async def test_a_device_under_another_estates_topic_is_dead_lettered(
    runtime: Any, ingest: DeviceIngest, make_device: Any
) -> None:
    device_id = await make_device()
    await ingest.handle(message(device_id, "telemetry", {"metrics": {"temperature": 99}}, estate="DEMO-C"))
    async with runtime.sessionmaker() as session:
        reasons = list(await session.scalars(select(DeadLetter.reason).where(DeadLetter.device_id == device_id)))
    device = await _device(runtime, device_id)
    assert device is not None
    assert (reasons, device.last_seen_at, device.online) == (["ESTATE_MISMATCH"], None, None)
    assert await _count(runtime, TelemetryReading, device_id) == 0


async def test_status_last_will_raises_device_offline_once_and_online_clears(
    runtime: Any, ingest: DeviceIngest, bus: RecordingBus, make_device: Any
) -> None:
    device_id = await make_device()
    await ingest.handle(message(device_id, "status", {"online": True}))
    device = await _device(runtime, device_id)
    assert device is not None
    assert device.online is True
    assert device.last_seen_at is not None
    # when the last will arrives twice (e.g. the retained copy again)
    await ingest.handle(message(device_id, "status", {"online": False}))
    await ingest.handle(message(device_id, "status", {"online": False}))
    (alarm,) = await _alarms(runtime, device_id)
    device = await _device(runtime, device_id)
    assert device is not None
    assert (alarm.type, alarm.severity, alarm.status, alarm.occurrences, device.online) == (
        "device_offline", AlarmSeverity.MINOR, AlarmStatus.ACTIVE, 1, False,
    )  # fmt: skip
    # then back online
    await ingest.handle(message(device_id, "status", {"online": True}))
    (alarm,) = await _alarms(runtime, device_id)
    assert alarm.status is AlarmStatus.CLEARED
    assert bus.kinds({alarm.id}) == ["RAISED", "CLEARED"]
    presence = [e["online"] for c, e in bus.published if c == "devices" and e["deviceId"] == device_id]
    assert presence == [True, False, False, True]


async def test_statements_per_message_are_few_and_constant(
    runtime: Any, ingest: DeviceIngest, make_device: Any, count_statements: Any
) -> None:
    device_id = await make_device()
    await _rule(runtime, device_id)
    smoke = await make_device(kind=DeviceKind.SMOKE_DETECTOR)
    await ingest.handle(_temperature(device_id, 20, msg_id="warm-up"))
    await ingest.handle(message(smoke, "event", {"type": "smoke", "severity": "critical", "state": "raised"}))
    telemetry_counts, event_counts = [], []
    for i in range(5):
        before = count_statements.count
        await ingest.handle(_temperature(device_id, 20 + i, msg_id=f"s-{i}"))
        telemetry_counts.append(count_statements.count - before)
        before = count_statements.count
        await ingest.handle(message(smoke, "event", {"type": "smoke", "severity": "critical", "state": "raised",
                                                      "msgId": f"e-{i}"}))  # fmt: skip
        event_counts.append(count_statements.count - before)
    # device, msgId, presence, reading, rules  /  device, msgId, presence, alarm upsert, alarm, event
    assert telemetry_counts == [telemetry_counts[0]] * 5
    assert event_counts == [event_counts[0]] * 5
    assert telemetry_counts[0] <= 5
    assert event_counts[0] <= 6
