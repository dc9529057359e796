"""The per-process fan-out of live alarm events to ``alarmEvents`` subscribers.

One hub per process (per events bus) listens on ``ALARM_CHANNEL`` — over Redis, every API
process receives every event — and, for each event, loads the alarm ONCE (with its estate,
asset, ticket and rule, in one statement) and hands the same object to every subscriber of the
process whose filter it matches. Each subscriber has a bounded queue: one that falls
``queue_size`` events behind is dropped (its queue is emptied and it receives ``OVERFLOW``,
which ends its subscription with an error), and the others never wait for it.

The scope (``Alarm read`` at the alarm's estate) is checked by the subscription itself for
every event, in memory: the hub's shared alarm carries its estate's org path.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from backend.alarms.models import Alarm
from backend.alarms.service import ALARM_CHANNEL
from backend.events import Event, EventBus

log = structlog.get_logger(__name__)

LIVE_KINDS: Final = frozenset({"RAISED", "UPDATED", "ACKNOWLEDGED", "CLEARED"})
QUEUE_SIZE: Final = 100
OVERFLOW: Final = object()  # the subscriber fell too far behind and is dropped
_RECENT_EVENTS = 1024

Delivery = tuple[str, Alarm]
Accept = Callable[[str, Alarm], bool]


class AlarmSubscriber:
    def __init__(self, accept: Accept, queue_size: int) -> None:
        self.accept = accept
        self.queue: asyncio.Queue[Delivery | object] = asyncio.Queue(queue_size)
        self.dropped = False

    def offer(self, delivery: Delivery) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)
            log.warning("alarms.subscriber_dropped", queue_size=self.queue.maxsize)


class AlarmHub:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], bus: EventBus, *, queue_size: int = QUEUE_SIZE
    ) -> None:
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._queue_size = queue_size
        self._subscribers: set[AlarmSubscriber] = set()
        self._recent: OrderedDict[Any, None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.loads = 0  # alarms loaded (one per dispatched event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def add(self, accept: Accept) -> AlarmSubscriber:
        subscriber = AlarmSubscriber(accept, self._queue_size)
        self._subscribers.add(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return subscriber

    def remove(self, subscriber: AlarmSubscriber) -> None:
        self._subscribers.discard(subscriber)

    async def _run(self) -> None:
        async for message in self._bus.subscribe(ALARM_CHANNEL):
            try:
                await self.dispatch(message)
            except Exception:
                log.exception("alarms.dispatch_failed", alarm_id=message.get("alarmId"))

    async def dispatch(self, message: Event) -> int:
        """Load the event's alarm once and offer it to every matching subscriber; returns how many."""
        kind = message.get("kind")
        if kind not in LIVE_KINDS or not self._subscribers:
            return 0
        event_id = message.get("eventId")
        if event_id is not None:
            if event_id in self._recent:
                return 0  # the same event twice (a re-published message)
            self._recent[event_id] = None
            while len(self._recent) > _RECENT_EVENTS:
                self._recent.popitem(last=False)
        alarm = await self._load(int(message["alarmId"]))
        if alarm is None:
            return 0
        offered = 0
        for subscriber in list(self._subscribers):
            if subscriber.accept(kind, alarm):
                subscriber.offer((kind, alarm))
                offered += 1
        return offered

    async def _load(self, alarm_id: int) -> Alarm | None:
        self.loads += 1
        async with self._sessionmaker() as session:
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

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


_hubs: weakref.WeakKeyDictionary[Any, AlarmHub] = weakref.WeakKeyDictionary()


def hub_for(sessionmaker: async_sessionmaker[AsyncSession], bus: EventBus) -> AlarmHub:
    """The process's hub for this events bus, made on first use."""
    hub = _hubs.get(bus)
    if hub is None:
        hub = AlarmHub(sessionmaker, bus)
        _hubs[bus] = hub
    return hub
