"""The ingest's batches: every message queued on a lane is handled in one transaction with a
fixed number of statements, in arrival order per device; a message that fails takes nobody
else with it, and a database outage holds messages unacknowledged until it is over."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from ingest_testlib import CuttableProxy, RecordingBus, demo_a, message
from sqlalchemy import func, make_url, select, update

from backend.alarms.models import Alarm, AlarmRule, AlarmSeverity, AlarmStatus, RuleOperator
from backend.db import make_engine, make_sessionmaker
from backend.devices.ingest import HANDLER_ERROR, UNKNOWN_DEVICE, DeviceIngest, company_of
from backend.devices.models import DeadLetter, Device, DeviceKind, TelemetryReading
from backend.property.models import Estate
from iot.subscriber import DeviceMessage

T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def lane(runtime: Any, bus: RecordingBus) -> DeviceIngest:
    """One lane: whatever is submitted before the loop runs again is one batch."""
    return DeviceIngest(runtime.sessionmaker, bus, lanes=1)


async def submit_all(ingest: DeviceIngest, messages: Sequence[DeviceMessage]) -> list[BaseException | None]:
    futures = [ingest.submit(m) for m in messages]
    return list(await asyncio.gather(*futures, return_exceptions=True))


def reading(device_id: str, value: float, seconds: int = 0, msg_id: str | None = None) -> DeviceMessage:
    data: dict[str, Any] = {"metrics": {"temperature": value}}
    if msg_id is not None:
        data["msgId"] = msg_id
    return message(device_id, "telemetry", data, at=T0 + dt.timedelta(seconds=seconds))


async def add_rule(runtime: Any, device_id: str) -> None:
    estate = await demo_a(runtime)
    async with runtime.sessionmaker() as session, session.begin():
        session.add(
            AlarmRule(company_id=company_of(estate.org_path), estate_id=estate.id, device_id=device_id,
                      metric="temperature", operator=RuleOperator.ABOVE, raise_threshold=Decimal(60),
                      clear_threshold=Decimal(55), alarm_type="over_temperature", severity=AlarmSeverity.MINOR)
        )  # fmt: skip


async def scalar(runtime: Any, statement: Any) -> Any:
    async with runtime.sessionmaker() as session:
        return await session.scalar(statement)


async def test_a_batch_costs_the_same_statements_for_10_or_200_readings(
    runtime: Any, lane: DeviceIngest, make_device: Any, count_statements: Any
) -> None:
    # given five sensors, each with a rule, that have been heard from
    devices = [await make_device() for _ in range(5)]
    for device_id in devices:
        await add_rule(runtime, device_id)
    await submit_all(lane, [reading(d, 20, msg_id="warm") for d in devices])
    counts = []
    for size in (10, 200):
        before = len(count_statements.statements)
        # when `size` readings (with msgIds) arrive together
        outcomes = await submit_all(
            lane, [reading(devices[i % 5], 20 + i % 30, i, msg_id=f"{size}-{i}") for i in range(size)]
        )
        assert outcomes == [None] * size
        counts.append(len(count_statements.statements) - before)
    # then each batch is one transaction of the same few statements: the devices, the msgId
    # claims, the rules with their states, the readings, the presence update
    assert counts[0] == counts[1]
    assert counts[0] <= 6
    assert lane.batches == 3
    total = select(func.count()).select_from(TelemetryReading).where(TelemetryReading.device_id.in_(devices))
    assert await scalar(runtime, total) == 5 + 10 + 200


async def test_one_batch_keeps_each_device_in_order(
    runtime: Any, lane: DeviceIngest, bus: RecordingBus, make_device: Any
) -> None:
    # given a sensor with the CONTRACT rule (above 60 raises, at or below 55 clears)
    sensor = await make_device()
    await add_rule(runtime, sensor)
    smoke = await make_device(kind=DeviceKind.SMOKE_DETECTOR)
    unknown = f"T-NOSUCH{sensor[-6:]}"
    make_device.made.append(unknown)
    # when one batch brings 61 (raise), 62, 50 (clear), 61 (raise again), the same msgId twice,
    # a smoke event, an unknown device and the sensor's last will between two readings
    batch = [
        reading(sensor, 61, 0, msg_id="a"),
        reading(sensor, 62, 1, msg_id="b"),
        reading(sensor, 62, 1, msg_id="b"),
        message(smoke, "event", {"type": "smoke", "severity": "minor", "state": "raised"}),
        reading(sensor, 50, 2, msg_id="c"),
        reading(unknown, 20, 2),
        reading(sensor, 61, 3, msg_id="d"),
        message(sensor, "status", {"online": False}, at=T0 + dt.timedelta(seconds=4)),
        reading(sensor, 61, 5, msg_id="e"),
    ]
    assert await submit_all(lane, batch) == [None] * len(batch)
    # then it was one transaction, and every device's story is as if one by one
    assert lane.batches == 1
    assert (lane.handled, lane.duplicates, lane.dead_letters[UNKNOWN_DEVICE]) == (7, 1, 1)
    async with runtime.sessionmaker() as session:
        alarms = (await session.scalars(select(Alarm).where(Alarm.device_id == sensor).order_by(Alarm.id))).all()
        device = await session.scalar(select(Device).where(Device.device_id == sensor))
        pending = await session.scalar(select(Device).where(Device.device_id == unknown))
    temperature = [(a.status, a.occurrences) for a in alarms if a.type == "over_temperature"]
    assert temperature == [(AlarmStatus.CLEARED, 1), (AlarmStatus.ACTIVE, 1)]
    offline = [a.status for a in alarms if a.type == "device_offline"]
    assert offline == [AlarmStatus.CLEARED]  # the last will raised it, the next reading cleared it
    assert device is not None
    assert device.online is True
    assert device.last_seen_at == T0 + dt.timedelta(seconds=5)
    assert pending is not None
    assert pending.status.name == "PENDING"
    sensor_alarms = {a.id for a in alarms}
    assert bus.kinds(sensor_alarms) == ["RAISED", "CLEARED", "RAISED", "RAISED", "CLEARED"]
    readings = select(func.count()).select_from(TelemetryReading).where(TelemetryReading.device_id == sensor)
    assert await scalar(runtime, readings) == 5


async def test_a_message_that_fails_takes_nobody_else_with_it(
    runtime: Any, lane: DeviceIngest, bus: RecordingBus, make_device: Any
) -> None:
    # given a batch whose third message the database refuses (an alarm type longer than the
    # column; the validator refuses that from a device, so it stands for any failure)
    sensor, smoke = await make_device(), await make_device(kind=DeviceKind.SMOKE_DETECTOR)
    poison = message(smoke, "event", {"type": "smoke", "severity": "minor", "state": "raised"})
    poison = DeviceMessage(
        topic=poison.topic,
        payload=poison.payload.model_copy(update={"type": "x" * 100}),
        received_at=poison.received_at,
    )
    batch = [
        reading(sensor, 20, 0, msg_id="p-1"),
        reading(sensor, 21, 1, msg_id="p-2"),
        poison,
        message(smoke, "event", {"type": "smoke", "severity": "minor", "state": "raised"}),
    ]
    # when the batch is handled
    outcomes = await submit_all(lane, batch)
    # then only the poison failed; the others were stored, one transaction each
    assert [o is None for o in outcomes] == [True, True, False, True]
    assert (lane.batches, lane.failed_batches, lane.handled) == (0, 1, 3)
    readings = select(func.count()).select_from(TelemetryReading).where(TelemetryReading.device_id == sensor)
    assert await scalar(runtime, readings) == 2
    kept = await scalar(runtime, select(DeadLetter).where(DeadLetter.device_id == smoke))
    assert kept is not None
    assert kept.reason == HANDLER_ERROR
    smoke_alarms = select(func.count()).select_from(Alarm).where(Alarm.device_id == smoke, Alarm.type == "smoke")
    assert await scalar(runtime, smoke_alarms) == 1
    # and nothing of the failed attempt was published: one RAISED for the smoke alarm only
    assert [e["kind"] for c, e in bus.published if c == "alarms"] == ["RAISED"]


async def test_lanes_keep_one_device_on_one_lane(runtime: Any, bus: RecordingBus, make_device: Any) -> None:
    # given four lanes and a device sending a burst
    ingest = DeviceIngest(runtime.sessionmaker, bus, lanes=4)
    sensor = await make_device()
    await add_rule(runtime, sensor)
    # when 61 and 50 alternate forty times
    burst = [reading(sensor, 61 if i % 2 == 0 else 50, i, msg_id=f"l-{i}") for i in range(40)]
    assert await submit_all(ingest, burst) == [None] * 40
    # then the alarm was raised and cleared in that order twenty times
    async with runtime.sessionmaker() as session:
        alarms = (await session.scalars(select(Alarm).where(Alarm.device_id == sensor).order_by(Alarm.id))).all()
    assert [a.status for a in alarms] == [AlarmStatus.CLEARED] * 20
    assert bus.kinds({a.id for a in alarms}) == ["RAISED", "CLEARED"] * 20
    await ingest.close()


@pytest.fixture
async def demo_a_auto_assigns(runtime: Any) -> AsyncIterator[None]:
    async with runtime.sessionmaker() as session, session.begin():
        before = await session.scalar(select(Estate.auto_assign_tickets).where(Estate.code == "DEMO-A"))
        await session.execute(update(Estate).where(Estate.code == "DEMO-A").values(auto_assign_tickets=True))
    yield
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Estate).where(Estate.code == "DEMO-A").values(auto_assign_tickets=before))


@pytest.mark.usefixtures("demo_a_auto_assigns")
async def test_critical_alarms_of_one_batch_share_their_look_ups(
    runtime: Any, lane: DeviceIngest, make_device: Any, count_statements: Any
) -> None:
    # given a smoke detector in DEMO-A, whose new CRITICAL alarms open work orders (dispatched
    # at once: DEMO-A auto-assigns) and tell the estate's supervisors
    smoke = await make_device(kind=DeviceKind.SMOKE_DETECTOR)
    before = len(count_statements.statements)
    # when six new CRITICAL alarms arrive in one batch
    events = [
        message(smoke, "event", {"type": f"smoke_{i}", "severity": "critical", "state": "raised"}) for i in range(6)
    ]
    assert await submit_all(lane, events) == [None] * 6
    statements = count_statements.statements[before:]
    # then six tickets exist (DEMO-A auto-assigns: each is dispatched, which picks and tells a
    # technician per ticket), but the supervisors, their phones, the estate, the category, the
    # SLA rules and the company's code were read once for the batch
    async with runtime.sessionmaker() as session:
        alarms = (await session.scalars(select(Alarm).where(Alarm.device_id == smoke))).all()
    assert len(alarms) == 6
    assert all(a.ticket_id is not None for a in alarms)
    assert len({a.ticket_id for a in alarms}) == 6

    def reads(table: str) -> int:
        return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT") and f" {table} " in s)

    supervisors = [s for s in statements if s.lstrip().startswith("SELECT DISTINCT users.id") and "casbin_rule" in s]
    assert len(supervisors) == 1
    assert reads("persons") == 1 + 6  # the supervisors' phones once; each dispatch its technician's
    # the devices with their estates' codes, then the estate once; each dispatch's text names it
    assert reads("estates") == 2 + 6
    assert reads("ticket_categories") == 1 + 6  # (the same text names the category)
    assert reads("ticket_sla_rules") == 1
    assert reads("org_units") == 1


async def test_a_database_outage_holds_the_messages_unacknowledged_until_it_is_back(
    runtime: Any, settings: Any, bus: RecordingBus, make_device: Any
) -> None:
    # given an ingest whose database connections go through a proxy
    url = make_url(settings.database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    ingest = DeviceIngest(make_sessionmaker(engine), bus, lanes=1)
    sensor = await make_device()
    try:
        # when the database goes away and a reading arrives
        proxy.down = True
        proxy.cut()
        pending = ingest.submit(reading(sensor, 21, msg_id="outage-1"))
        await asyncio.sleep(1.5)
        # then it is neither acknowledged nor dead-lettered nor stored: it waits
        assert not pending.done()
        assert ingest.outages >= 1
        assert sum(ingest.dead_letters.values()) == 0
        stored = select(func.count()).select_from(TelemetryReading).where(TelemetryReading.device_id == sensor)
        assert await scalar(runtime, stored) == 0
        # and when the database is back, it is stored once and acknowledged
        proxy.down = False
        await asyncio.wait_for(pending, timeout=15)
        assert await scalar(runtime, stored) == 1
        assert (ingest.handled, ingest.failed_batches) == (1, 0)
        letters = select(func.count()).select_from(DeadLetter).where(DeadLetter.device_id == sensor)
        assert await scalar(runtime, letters) == 0
    finally:
        await ingest.close()
        await engine.dispose()
        await proxy.close()


async def test_a_lane_survives_an_error_of_its_own(
    runtime: Any, bus: RecordingBus, make_device: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a lane whose bookkeeping fails once after a batch committed
    ingest = DeviceIngest(runtime.sessionmaker, bus, lanes=1)
    sensor = await make_device()
    calls = 0
    original = ingest._count

    def count_once_broken(outcomes: Any, reasons: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bookkeeping")
        original(outcomes, reasons)

    monkeypatch.setattr(ingest, "_count", count_once_broken)
    # when two batches arrive one after the other
    first = await asyncio.wait_for(submit_all(ingest, [reading(sensor, 20, msg_id="x-1")]), 10)
    second = await asyncio.wait_for(submit_all(ingest, [reading(sensor, 21, msg_id="x-2")]), 10)
    # then the first message's waiter hears of the error instead of waiting forever, and the
    # lane takes the next batch
    assert isinstance(first[0], RuntimeError)
    assert second == [None]
    assert ingest.handled == 1
    await ingest.close()
