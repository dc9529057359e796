"""The alarm lifecycle (ThingsBoard's model), shared by the MQTT ingest, the API and jobs.

- ``raise_alarm``: one open alarm per (device, type) — a single INSERT … ON CONFLICT on the
  partial unique index, so concurrent raises of one alarm (two subscriber replicas, a burst
  of repeats) make one row and count the rest as ``occurrences``. A repeat may only raise
  the severity, never lower it.
- ``acknowledge`` (ACTIVE → ACKNOWLEDGED), ``clear`` (ACTIVE | ACKNOWLEDGED → CLEARED, by
  staff or by the device), ``comment``. Each writes an ``AlarmEvent``. After clearing, the
  next raise opens a new alarm.

Every change returns the event; callers publish ``{"alarmId", "eventId", "kind"}`` on
``ALARM_CHANNEL`` after commit (``publish_after_commit``) so subscribers learn of it once it
is true.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Boolean, Integer, Table, and_, bindparam, case, column, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.alarms.errors import AlarmError, AlarmErrorCode
from backend.alarms.models import Alarm, AlarmEvent, AlarmEventKind, AlarmSeverity, AlarmStatus
from backend.db import utcnow

ALARM_CHANNEL = "alarms"

_SEVERITY_RANK = case({"CRITICAL": 4, "MAJOR": 3, "MINOR": 2, "WARNING": 1}, value=text("alarms.severity"), else_=0)


@dataclass(frozen=True, slots=True)
class AlarmChange:
    alarm: Alarm
    event: AlarmEvent
    kind: AlarmEventKind  # RAISED (a new alarm), UPDATED (a repeat), ACKNOWLEDGED, CLEARED, …

    def message(self) -> dict[str, Any]:
        """What is published on the events bus after commit."""
        alarm = self.alarm
        return {
            "alarmId": alarm.id,
            "eventId": self.event.id,
            "kind": self.kind.name,
            "estateId": alarm.estate_id,
            "severity": alarm.severity.name,
            # The alarm as this change left it: a subscriber that loads it after a later change
            # still shows this event as it was (schema/alarms/live.py ``as_of_event``).
            "alarm": {
                "version": alarm.version,
                "severity": alarm.severity.name,
                "status": alarm.status.name,
                "message": alarm.message,
                "details": alarm.details,
                "occurrences": alarm.occurrences,
                "lastSeenAt": _iso(alarm.last_seen_at),
                "acknowledgedAt": _iso(alarm.acknowledged_at),
                "acknowledgedById": alarm.acknowledged_by_id,
                "clearedAt": _iso(alarm.cleared_at),
                "clearedById": alarm.cleared_by_id,
            },
        }


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


async def raise_alarm(
    session: AsyncSession,
    *,
    estate_id: int,
    device_id: str,
    type_: str,
    severity: AlarmSeverity,
    message: str = "",
    details: dict[str, Any] | None = None,
    asset_id: int | None = None,
    access_point_id: int | None = None,
    rule_id: int | None = None,
    at: dt.datetime | None = None,
) -> AlarmChange:
    """Open the (device, type) alarm, or count a repeat of the open one."""
    at = at or utcnow()
    row = (
        await session.execute(
            _RAISE,
            {
                "estate_id": estate_id,
                "device_id": device_id,
                "type": type_,
                "severity": severity,
                "message": message[:500],
                "details": details or {},
                "at": at,
                "asset_id": asset_id,
                "access_point_id": access_point_id,
                "rule_id": rule_id,
                "new_rank": AlarmSeverity(severity.value).rank,
            },
            execution_options={"populate_existing": True},
        )
    ).one()
    alarm, inserted = row
    kind = AlarmEventKind.RAISED if inserted else AlarmEventKind.UPDATED
    event = await _event(session, alarm, kind, actor_id=None, note=message, data={"severity": severity.name})
    return AlarmChange(alarm, event, kind)


def _raise_statement() -> Any:
    """The upsert of ``raise_alarm``, built once (building ``excluded`` costs a millisecond).
    A Core statement on the table, loaded as the entity through ``from_statement``: half the
    cost of an ORM-enabled INSERT … RETURNING entity."""
    table = cast("Table", Alarm.__table__)
    statement = insert(table).values(
        estate_id=bindparam("estate_id"),
        device_id=bindparam("device_id"),
        type=bindparam("type"),
        severity=bindparam("severity"),
        status=AlarmStatus.ACTIVE,
        message=bindparam("message"),
        details=bindparam("details"),
        occurrences=1,
        first_seen_at=bindparam("at"),
        last_seen_at=bindparam("at"),
        asset_id=bindparam("asset_id"),
        access_point_id=bindparam("access_point_id"),
        rule_id=bindparam("rule_id"),
        version=1,
    )
    excluded = statement.excluded
    new_rank = bindparam("new_rank", type_=Integer)
    c = table.c
    upsert = statement.on_conflict_do_update(
        index_elements=["device_id", "type"],
        index_where=text("status <> 'CLEARED'"),
        set_={
            "occurrences": c.occurrences + 1,
            "last_seen_at": case((excluded.last_seen_at > c.last_seen_at, excluded.last_seen_at),
                                 else_=c.last_seen_at),
            "severity": case((new_rank > _SEVERITY_RANK, excluded.severity), else_=c.severity),
            "message": case((excluded.message != "", excluded.message), else_=c.message),
            "version": c.version + 1,
        },
    ).returning(*c, literal_column("(xmax = 0)", Boolean).label("inserted"))  # fmt: skip
    return select(Alarm, column("inserted", Boolean)).from_statement(upsert)


_RAISE = _raise_statement()
_ADD_EVENT = select(AlarmEvent).from_statement(
    insert(cast("Table", AlarmEvent.__table__))
    .values(
        alarm_id=bindparam("alarm_id"),
        kind=bindparam("kind"),
        actor_id=bindparam("actor_id"),
        note=bindparam("note"),
        data=bindparam("data"),
    )
    .returning(*AlarmEvent.__table__.c)
)


async def _locked(session: AsyncSession, alarm_id: int) -> Alarm:
    await session.execute(select(Alarm.id).where(Alarm.id == alarm_id).with_for_update())
    alarm = await session.scalar(select(Alarm).where(Alarm.id == alarm_id).execution_options(populate_existing=True))
    if alarm is None:
        raise AlarmError(AlarmErrorCode.NOT_FOUND, "No such alarm.", "alarmId")
    return alarm


async def _event(
    session: AsyncSession,
    alarm: Alarm,
    kind: AlarmEventKind,
    *,
    actor_id: int | None,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> AlarmEvent:
    await session.flush()  # the alarm's own changes first (the sessions do not autoflush)
    event: AlarmEvent | None = await session.scalar(
        _ADD_EVENT, {"alarm_id": alarm.id, "kind": kind, "actor_id": actor_id, "note": note, "data": data or {}}
    )
    assert event is not None
    return event


async def acknowledge(session: AsyncSession, alarm_id: int, *, actor_id: int, note: str = "") -> AlarmChange:
    alarm = await _locked(session, alarm_id)
    if alarm.status is not AlarmStatus.ACTIVE:
        raise AlarmError(AlarmErrorCode.ILLEGAL_TRANSITION, f"The alarm is {alarm.status.name}.", "alarmId")
    alarm.status = AlarmStatus.ACKNOWLEDGED
    alarm.acknowledged_at = utcnow()
    alarm.acknowledged_by_id = actor_id
    alarm.version += 1
    event = await _event(session, alarm, AlarmEventKind.ACKNOWLEDGED, actor_id=actor_id, note=note.strip())
    return AlarmChange(alarm, event, AlarmEventKind.ACKNOWLEDGED)


async def clear(
    session: AsyncSession, alarm_id: int, *, actor_id: int | None, note: str = "", at: dt.datetime | None = None
) -> AlarmChange:
    """Clear an open alarm: by staff (``actor_id``) or by its device (None)."""
    alarm = await _locked(session, alarm_id)
    if alarm.status is AlarmStatus.CLEARED:
        raise AlarmError(AlarmErrorCode.ILLEGAL_TRANSITION, "The alarm is cleared already.", "alarmId")
    alarm.status = AlarmStatus.CLEARED
    alarm.cleared_at = at or utcnow()
    alarm.cleared_by_id = actor_id
    alarm.version += 1
    event = await _event(session, alarm, AlarmEventKind.CLEARED, actor_id=actor_id, note=note.strip())
    return AlarmChange(alarm, event, AlarmEventKind.CLEARED)


async def clear_open(
    session: AsyncSession, *, device_id: str, type_: str, note: str = "", at: dt.datetime | None = None
) -> AlarmChange | None:
    """The device says the condition is over: clear its open (device, type) alarm, if any."""
    alarm_id = await session.scalar(
        select(Alarm.id).where(
            and_(Alarm.device_id == device_id, Alarm.type == type_, Alarm.status != AlarmStatus.CLEARED)
        )
    )
    if alarm_id is None:
        return None
    try:
        return await clear(session, alarm_id, actor_id=None, note=note, at=at)
    except AlarmError:
        return None  # cleared meanwhile by someone else


async def comment(session: AsyncSession, alarm_id: int, *, actor_id: int, note: str) -> AlarmChange:
    note = note.strip()
    if not 1 <= len(note) <= 2000:
        raise AlarmError(AlarmErrorCode.NOTE_REQUIRED, "A comment of 1 to 2000 characters.", "note")
    alarm = await _locked(session, alarm_id)
    event = await _event(session, alarm, AlarmEventKind.COMMENTED, actor_id=actor_id, note=note)
    return AlarmChange(alarm, event, AlarmEventKind.COMMENTED)
