"""Helpers of the alarm API tests: fresh devices, raising alarms as the ingest would."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import delete, func, select

from backend.accounts.models import User
from backend.alarms.automation import after_alarm_change
from backend.alarms.models import Alarm, AlarmEscalation, AlarmEvent, AlarmSeverity
from backend.alarms.service import AlarmChange, raise_alarm
from backend.db import to_global_id
from backend.property.models import Estate


def new_device() -> str:
    return f"TEST-{uuid.uuid4().hex[:8].upper()}"


def gid(alarm_id: int) -> str:
    return to_global_id("Alarm", alarm_id)


async def estate_id(runtime: Any, code: str) -> int:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(select(Estate.id).where(Estate.code == code))
    assert found is not None
    return int(found)


async def user_id(runtime: Any, username: str) -> int:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(select(User.id).where(User.username == username))
    assert found is not None
    return int(found)


async def raise_on(
    runtime: Any,
    estate_code: str,
    device_id: str,
    *,
    severity: AlarmSeverity = AlarmSeverity.MAJOR,
    type_: str = "smoke",
    at: dt.datetime | None = None,
    automate: bool = False,
) -> AlarmChange:
    """Raise (or repeat) a device's alarm; with ``automate``, as the ingest does (work order,
    notifications, the live event)."""
    estate = await estate_id(runtime, estate_code)
    async with runtime.sessionmaker() as session, session.begin():
        change = await raise_alarm(session, estate_id=estate, device_id=device_id, type_=type_, severity=severity,
                                   message="烟感报警", at=at)  # fmt: skip
        if automate:
            await after_alarm_change(session, change, bus=runtime.bus)
    return change


async def alarm_events(runtime: Any, alarm_id: int) -> list[str]:
    async with runtime.sessionmaker() as session:
        kinds = await session.scalars(
            select(AlarmEvent.kind).where(AlarmEvent.alarm_id == alarm_id).order_by(AlarmEvent.id)
        )
        return [k.name for k in kinds]


async def stored(runtime: Any, alarm_id: int) -> Alarm:
    async with runtime.sessionmaker() as session:
        alarm = await session.get(Alarm, alarm_id)
    assert alarm is not None
    return alarm


async def count(runtime: Any, statement: Any) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(statement.subquery())) or 0)


async def remove_alarms(runtime: Any, device_ids: list[str]) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        alarms = select(Alarm.id).where(Alarm.device_id.in_(device_ids))
        await session.execute(delete(AlarmEscalation).where(AlarmEscalation.alarm_id.in_(alarms)))
        await session.execute(delete(AlarmEvent).where(AlarmEvent.alarm_id.in_(alarms)))
        await session.execute(delete(Alarm).where(Alarm.device_id.in_(device_ids)))
