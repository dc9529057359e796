"""The alarm lifecycle below the API: one open alarm per (device, type) under concurrency,
repeats as occurrences, severity only rising, acknowledge → clear, and a new alarm after."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import delete, select

from backend.alarms.errors import AlarmError, AlarmErrorCode
from backend.alarms.models import Alarm, AlarmEvent, AlarmEventKind, AlarmSeverity, AlarmStatus
from backend.alarms.service import acknowledge, clear, clear_open, raise_alarm
from backend.property.models import Estate


@pytest_asyncio.fixture(loop_scope="session")
async def device(runtime: Any) -> AsyncIterator[tuple[int, str]]:
    """(DEMO-A's id, a fresh device id); its alarms are removed afterwards."""
    device_id = f"TEST-{uuid.uuid4().hex[:8].upper()}"
    async with runtime.sessionmaker() as session:
        estate_id = await session.scalar(select(Estate.id).where(Estate.code == "DEMO-A"))
    assert estate_id is not None
    yield estate_id, device_id
    async with runtime.sessionmaker() as session, session.begin():
        alarms = select(Alarm.id).where(Alarm.device_id == device_id)
        await session.execute(delete(AlarmEvent).where(AlarmEvent.alarm_id.in_(alarms)))
        await session.execute(delete(Alarm).where(Alarm.device_id == device_id))


async def _raise(runtime: Any, device: tuple[int, str], severity: AlarmSeverity = AlarmSeverity.MAJOR) -> Any:
    async with runtime.sessionmaker() as session, session.begin():
        return await raise_alarm(session, estate_id=device[0], device_id=device[1], type_="smoke", severity=severity,
                                 message="烟感报警")  # fmt: skip


async def _alarms(runtime: Any, device_id: str) -> list[Alarm]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(Alarm).where(Alarm.device_id == device_id).order_by(Alarm.id))).all())


async def test_a_thousand_identical_events_make_one_alarm(runtime: Any, device: tuple[int, str]) -> None:
    # when 1,000 raises arrive, 50 at a time concurrently
    kinds: list[AlarmEventKind] = []
    for _ in range(20):
        kinds += [c.kind for c in await asyncio.gather(*(_raise(runtime, device) for _ in range(50)))]
    # then one alarm with 1,000 occurrences, raised once and updated 999 times
    (alarm,) = await _alarms(runtime, device[1])
    assert (alarm.occurrences, alarm.status) == (1000, AlarmStatus.ACTIVE)
    assert (kinds.count(AlarmEventKind.RAISED), kinds.count(AlarmEventKind.UPDATED)) == (1, 999)


async def test_a_repeat_raises_the_severity_but_never_lowers_it(runtime: Any, device: tuple[int, str]) -> None:
    # when
    await _raise(runtime, device, AlarmSeverity.MINOR)
    await _raise(runtime, device, AlarmSeverity.CRITICAL)
    await _raise(runtime, device, AlarmSeverity.WARNING)
    # then
    (alarm,) = await _alarms(runtime, device[1])
    assert (alarm.severity, alarm.occurrences) == (AlarmSeverity.CRITICAL, 3)


async def test_acknowledge_then_clear_then_a_new_alarm(runtime: Any, device: tuple[int, str]) -> None:
    # given
    first = await _raise(runtime, device)
    # when
    async with runtime.sessionmaker() as session, session.begin():
        await acknowledge(session, first.alarm.id, actor_id=None, note="已派人查看")  # type: ignore[arg-type]
    async with runtime.sessionmaker() as session, session.begin():
        cleared = await clear_open(session, device_id=device[1], type_="smoke", note="设备复位")
    again = await _raise(runtime, device)
    # then
    assert cleared is not None
    assert cleared.kind is AlarmEventKind.CLEARED
    old, new = await _alarms(runtime, device[1])
    assert (old.status, old.acknowledged_at is not None, old.cleared_by_id) == (AlarmStatus.CLEARED, True, None)
    assert (new.id, new.status, new.occurrences, again.kind) == (again.alarm.id, AlarmStatus.ACTIVE, 1,
                                                                  AlarmEventKind.RAISED)  # fmt: skip


@pytest.mark.parametrize("step", ["acknowledge", "clear"])
async def test_a_cleared_alarm_cannot_be_acknowledged_or_cleared_again(
    runtime: Any, device: tuple[int, str], step: str
) -> None:
    # given
    change = await _raise(runtime, device)
    async with runtime.sessionmaker() as session, session.begin():
        await clear(session, change.alarm.id, actor_id=None)

    async def again() -> None:
        async with runtime.sessionmaker() as session, session.begin():
            if step == "acknowledge":
                await acknowledge(session, change.alarm.id, actor_id=None)  # type: ignore[arg-type]
            else:
                await clear(session, change.alarm.id, actor_id=None)

    # when
    with pytest.raises(AlarmError) as caught:
        await again()
    # then
    assert caught.value.code is AlarmErrorCode.ILLEGAL_TRANSITION
    async with runtime.sessionmaker() as session:
        kinds = (
            await session.scalars(
                select(AlarmEvent.kind).where(AlarmEvent.alarm_id == change.alarm.id).order_by(AlarmEvent.id)
            )
        ).all()
    assert list(kinds) == [AlarmEventKind.RAISED, AlarmEventKind.CLEARED]


async def test_a_device_clear_without_an_open_alarm_does_nothing(runtime: Any, device: tuple[int, str]) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        assert await clear_open(session, device_id=device[1], type_="smoke") is None
    assert await _alarms(runtime, device[1]) == []
