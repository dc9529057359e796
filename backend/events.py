"""The events bus: ``publish`` after a commit, ``subscribe`` from subscription resolvers.

Two implementations with one interface: Redis pub/sub (several API processes) and an
in-process fan-out (tests, single process). Events are JSON objects on named channels.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import orjson
import structlog
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger(__name__)

Event = dict[str, Any]

CHANNEL_PREFIX = "wuye:events:"


class EventBus(Protocol):
    async def publish(self, channel: str, event: Event) -> None: ...

    def subscribe(self, *channels: str) -> AsyncIterator[Event]: ...

    async def close(self) -> None: ...


class InProcessEventBus:
    """Fan-out inside one process; each subscriber has its own bounded queue."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self._queues: dict[str, set[asyncio.Queue[Event]]] = {}
        self._queue_size = queue_size

    async def publish(self, channel: str, event: Event) -> None:
        for queue in list(self._queues.get(channel, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("events.subscriber_lagging", channel=channel)

    async def subscribe(self, *channels: str) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        for channel in channels:
            self._queues.setdefault(channel, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            for channel in channels:
                self._queues.get(channel, set()).discard(queue)

    async def close(self) -> None:
        self._queues.clear()


class RedisEventBus:
    """Redis pub/sub: every API process receives every event and filters by subscriber scope."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, channel: str, event: Event) -> None:
        await self._redis.publish(CHANNEL_PREFIX + channel, orjson.dumps(event))

    async def subscribe(self, *channels: str) -> AsyncIterator[Event]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(*(CHANNEL_PREFIX + c for c in channels))
        try:
            while True:
                message = await pubsub.get_message(timeout=30.0)
                if message is not None and message["type"] == "message":
                    yield orjson.loads(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        return None


def publish_after_commit(session: AsyncSession, bus: EventBus, channel: str, event_data: Event) -> None:
    """Publish once the session's transaction commits; a rollback publishes nothing."""
    pending: list[tuple[str, Event]] = session.info.setdefault("pending_events", [])
    pending.append((channel, event_data))
    if session.info.get("events_hooked"):
        return
    session.info["events_hooked"] = True

    def _after_commit(_sync_session: Any) -> None:
        events = list(session.info.pop("pending_events", []))
        session.info.pop("events_hooked", None)
        for name, data in events:
            _spawn(bus.publish(name, data))

    def _after_rollback(_sync_session: Any, _previous_transaction: Any) -> None:
        session.info.pop("pending_events", None)
        session.info.pop("events_hooked", None)

    event.listen(session.sync_session, "after_commit", _after_commit, once=True)
    event.listen(session.sync_session, "after_soft_rollback", _after_rollback, once=True)


_background: set[asyncio.Task[None]] = set()


def _spawn(coro: Awaitable[None]) -> None:
    async def runner() -> None:
        try:
            await coro
        except Exception:
            log.exception("events.publish_failed")

    task = asyncio.get_running_loop().create_task(runner())
    _background.add(task)
    task.add_done_callback(_background.discard)
