"""The per-process fan-out of live events to subscriptions: one hub per channel and events bus.

A hub listens on one events-bus channel (over Redis every API process receives every event),
loads each event ONCE and offers the same payload to every subscriber of the process that
should receive it; the payload is :func:`~schema.core.execution.share`-d, so the
subscriptions' documents are executed once per result group, not once per subscriber.

Each subscriber has a bounded queue. One that falls ``queue_size`` events behind is dropped:
its queue is emptied and it receives ``OVERFLOW``, which ends its subscription with
:class:`SubscriberTooSlow`. The others never wait for it. A subscription that cannot even
deliver that error within ``DROPPED_GRACE_SECONDS`` (its websocket is not being read, so
sending blocks) has its connection hung up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from typing import Any, ClassVar, Final, Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from backend.events import Event, EventBus
from schema.core.context import Context
from schema.core.errors import SubscriberTooSlow
from schema.core.execution import share

log = structlog.get_logger(__name__)

QUEUE_SIZE: Final = 100
DROPPED_GRACE_SECONDS: Final = 1.0
OVERFLOW: Final = object()  # the subscriber fell too far behind and is dropped
_RECHECK: Final = object()  # no event for a while: check that the subscriber may still receive
_RECENT_EVENTS = 1024

P = TypeVar("P")


class Subscriber(Generic[P]):
    def __init__(self, queue_size: int, on_drop: Callable[[], None] | None = None) -> None:
        self.queue: asyncio.Queue[P | object] = asyncio.Queue(queue_size)
        self.dropped = False
        self._on_drop = on_drop

    def offer(self, payload: P) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)
            log.warning("live.subscriber_dropped", queue_size=self.queue.maxsize)
            if self._on_drop is not None:
                self._on_drop()


S = TypeVar("S", bound=Subscriber[Any])


class EventHub(Generic[P, S]):
    """Listens on ``channel`` once subscribers arrive; :meth:`load` makes an event's payload and
    picks its recipients among the subscribers."""

    channel: ClassVar[str]

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], bus: EventBus, *, queue_size: int = QUEUE_SIZE
    ) -> None:
        self.sessionmaker = sessionmaker
        self._bus = bus
        self.queue_size = queue_size
        self._subscribers: set[S] = set()
        self._recent: OrderedDict[Hashable, None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._connection: AsyncConnection | None = None
        self.loads = 0  # events loaded from the database (one per dispatched event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def attach(self, subscriber: S) -> S:
        self._subscribers.add(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return subscriber

    def remove(self, subscriber: S) -> None:
        self._subscribers.discard(subscriber)

    async def _run(self) -> None:
        try:
            async for message in self._bus.subscribe(self.channel):
                try:
                    await self.dispatch(message)
                except Exception:
                    log.exception("live.dispatch_failed", channel=self.channel, event=message)
                if not self._subscribers:
                    await self._drop_connection()  # an idle hub holds no connection
        finally:
            await self._drop_connection()

    async def dispatch(self, message: Event) -> int:
        """Load the event once and offer it to its recipients; returns how many."""
        if not self._subscribers:
            return 0
        key = self.event_key(message)
        if key is not None:
            if key in self._recent:
                return 0  # the same event twice (a re-published message)
            self._recent[key] = None
            while len(self._recent) > _RECENT_EVENTS:
                self._recent.popitem(last=False)
        delivery = await self.load(message, list(self._subscribers))
        if delivery is None:
            return 0
        payload, recipients = delivery
        share(payload)
        for subscriber in recipients:
            subscriber.offer(payload)
        return len(recipients)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session on the hub's own connection, kept in autocommit: a load is one round trip
        (no pool check-out, ping, BEGIN and ROLLBACK per event). The hub loads one event at a
        time; a connection that failed is replaced at the next event."""
        if self._connection is None:
            engine: AsyncEngine = self.sessionmaker.kw["bind"]
            connection = await engine.connect()
            self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            async with self.sessionmaker(bind=self._connection) as session:
                yield session
        except Exception:
            await self._drop_connection()
            raise

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    def event_key(self, message: Event) -> Hashable | None:
        """What identifies an event, to drop a repeated message; ``None``: never dropped."""
        return None

    async def load(self, message: Event, subscribers: Sequence[S]) -> tuple[P, Sequence[S]] | None:
        raise NotImplementedError

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._drop_connection()


def hang_up_if_stuck(ctx: Context) -> Callable[[], None]:
    """An ``on_drop`` for the subscription running in the current task: if it has not ended
    ``DROPPED_GRACE_SECONDS`` after its subscriber was dropped, hang up its connection."""
    operation = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def hang_up() -> None:
        if operation is not None and not operation.done() and ctx.hang_up is not None:
            log.warning("live.connection_hung_up", request_id=ctx.request_id)
            ctx.hang_up()

    def on_drop() -> None:
        loop.call_later(DROPPED_GRACE_SECONDS, hang_up)

    return on_drop


def _always() -> bool:
    return True


async def deliveries(
    hub: EventHub[P, S],
    subscriber: S,
    *,
    still_allowed: Callable[[], bool] = _always,
    recheck_seconds: float | None = None,
) -> AsyncIterator[P]:
    """The subscriber's payloads until ``still_allowed()`` turns false (asked every
    ``recheck_seconds``, with or without events; the caller checks its scope for every event
    anyway); raises :class:`SubscriberTooSlow` once dropped. Leaves the hub when the
    subscription ends."""
    loop = asyncio.get_running_loop()
    timer: asyncio.TimerHandle | None = None
    due = False  # time to ask still_allowed() again

    def recheck() -> None:
        nonlocal timer, due
        due = True
        if subscriber.queue.empty():
            subscriber.queue.put_nowait(_RECHECK)  # wake up to check even when no event comes
        timer = loop.call_later(recheck_seconds, recheck)  # type: ignore[arg-type]

    if recheck_seconds is not None:
        timer = loop.call_later(recheck_seconds, recheck)
    try:
        while True:
            item = await subscriber.queue.get()
            if due:
                due = False
                if not still_allowed():
                    return
            if item is _RECHECK:
                continue
            if item is OVERFLOW:
                raise SubscriberTooSlow()
            yield item  # type: ignore[misc]
    finally:
        if timer is not None:
            timer.cancel()
        hub.remove(subscriber)
