"""The per-process fan-out of live alarm events to ``alarmEvents`` subscribers.

For each event on ``ALARM_CHANNEL`` the hub loads the alarm ONCE (with its estate, asset,
ticket and rule, in one statement) and offers the same ``AlarmEvent`` payload to every
subscriber whose filter it matches (see schema/core/live.py for the queues and the shared
execution). A message that carries the alarm's state after the change (``"alarm": {…}``) is
shown as of that state, even when the alarm changed again before the hub loaded it. The scope (``Alarm read`` at the alarm's estate) is checked by the subscription
itself for every event, in memory: the shared alarm carries its estate's org path.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from backend.alarms.models import Alarm, AlarmSeverity, AlarmStatus
from backend.alarms.service import ALARM_CHANNEL
from backend.events import Event, EventBus
from schema.alarms.types import AlarmChangeKind, AlarmEventType
from schema.core.live import OVERFLOW, EventHub, Subscriber

__all__ = ["OVERFLOW", "AlarmHub", "AlarmSubscriber", "as_of_event", "hub_for"]

LIVE_KINDS: Final = frozenset(kind.value for kind in AlarmChangeKind)

Accept = Callable[[AlarmEventType], bool]


class AlarmSubscriber(Subscriber[AlarmEventType]):
    def __init__(self, accept: Accept, queue_size: int, on_drop: Callable[[], None] | None = None) -> None:
        super().__init__(queue_size, on_drop)
        self.accept = accept


class AlarmHub(EventHub[AlarmEventType, AlarmSubscriber]):
    channel = ALARM_CHANNEL

    def add(self, accept: Accept, *, on_drop: Callable[[], None] | None = None) -> AlarmSubscriber:
        return self.attach(AlarmSubscriber(accept, self.queue_size, on_drop))

    def event_key(self, message: Event) -> Hashable | None:
        return message.get("eventId")  # type: ignore[no-any-return]

    async def load(
        self, message: Event, subscribers: Sequence[AlarmSubscriber]
    ) -> tuple[AlarmEventType, Sequence[AlarmSubscriber]] | None:
        kind = message.get("kind")
        if kind not in LIVE_KINDS:
            return None
        alarm = await self._load(int(message["alarmId"]))
        if alarm is None:
            return None
        as_of_event(alarm, message.get("alarm"))
        event = AlarmEventType(kind=AlarmChangeKind(kind), alarm=alarm)  # type: ignore[arg-type]
        return event, [subscriber for subscriber in subscribers if subscriber.accept(event)]

    async def _load(self, alarm_id: int) -> Alarm | None:
        self.loads += 1
        async with self.session() as session:
            return await session.scalar(
                select(Alarm)
                .where(Alarm.id == alarm_id)
                .options(
                    joinedload(Alarm.estate),
                    joinedload(Alarm.asset),
                    joinedload(Alarm.ticket),
                    joinedload(Alarm.rule),
                )
            )


# The alarm's columns that a change moves, as an event message may carry them ("alarm": {…},
# camelCase, enums by name, times in ISO 8601), with how to read each back.
_AS_OF: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "severity": ("severity", lambda v: AlarmSeverity[v]),
    "status": ("status", lambda v: AlarmStatus[v]),
    "message": ("message", str),
    "details": ("details", dict),
    "occurrences": ("occurrences", int),
    "lastSeenAt": ("last_seen_at", dt.datetime.fromisoformat),
    "acknowledgedAt": ("acknowledged_at", dt.datetime.fromisoformat),
    "acknowledgedById": ("acknowledged_by_id", int),
    "clearedAt": ("cleared_at", dt.datetime.fromisoformat),
    "clearedById": ("cleared_by_id", int),
    "version": ("version", int),
}


def as_of_event(alarm: Alarm, snapshot: Any) -> None:
    """The alarm as the event left it, when the message carries that (``"alarm": {"version": …,
    …}``) and the alarm has changed again since: the hub loads it later than it changed, and a
    frame must not announce an event with a later state. Relations stay as loaded."""
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("version"), int):
        return
    if snapshot["version"] >= alarm.version:
        return
    for key, (attribute, read) in _AS_OF.items():
        if key in snapshot:
            value = snapshot[key]
            set_committed_value(alarm, attribute, None if value is None else read(value))


_hubs: weakref.WeakKeyDictionary[Any, AlarmHub] = weakref.WeakKeyDictionary()


def hub_for(sessionmaker: async_sessionmaker[AsyncSession], bus: EventBus) -> AlarmHub:
    """The process's hub for this events bus, made on first use."""
    hub = _hubs.get(bus)
    if hub is None:
        hub = AlarmHub(sessionmaker, bus)
        _hubs[bus] = hub
    return hub
