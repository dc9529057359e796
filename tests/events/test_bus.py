"""The events bus: both implementations deliver what is published, and ``publish_after_commit``
publishes only once the transaction commits — never for one that rolls back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from events_support import subscriber_count, wait_for_subscribers
from redis.asyncio import Redis
from sqlalchemy import text

from backend.app import Runtime
from backend.events import Event, EventBus, InProcessEventBus, RedisEventBus, publish_after_commit
from backend.settings import Settings

SILENCE = 0.5  # how long "nothing arrives" is watched for


class Abort(Exception):
    """Raised inside a transaction to roll it back."""


@dataclass
class Listener:
    """One subscriber on one channel, collecting events in the background."""

    channel: str
    received: asyncio.Queue[Event]
    task: asyncio.Task[None]

    async def next(self, *, within: float = 5.0) -> Event:
        return await asyncio.wait_for(self.received.get(), timeout=within)

    async def silent(self, *, within: float = SILENCE) -> bool:
        with contextlib.suppress(TimeoutError):
            event = await self.next(within=within)
            raise AssertionError(f"unexpected event: {event}")
        return True


Listen = Callable[[], Awaitable[Listener]]


@pytest_asyncio.fixture(loop_scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session", params=["redis", "in_process"])
async def bus(request: pytest.FixtureRequest, redis: Redis) -> AsyncIterator[EventBus]:
    events: EventBus = RedisEventBus(redis) if request.param == "redis" else InProcessEventBus()
    yield events
    await events.close()


@pytest_asyncio.fixture(loop_scope="session")
async def listen(bus: EventBus, redis: Redis) -> AsyncIterator[Listen]:
    """``await listen()`` → a subscriber on a fresh channel, subscribed before it is returned."""
    listeners: list[Listener] = []

    async def make() -> Listener:
        channel = f"test.{uuid.uuid4().hex}"
        received: asyncio.Queue[Event] = asyncio.Queue()

        async def consume() -> None:
            async for event in bus.subscribe(channel):
                received.put_nowait(event)

        before = await subscriber_count(redis, channel)
        task = asyncio.create_task(consume())
        if isinstance(bus, RedisEventBus):
            await wait_for_subscribers(redis, channel, more_than=before)
        else:
            await asyncio.sleep(0)  # the generator registers its queue on its first step
        listener = Listener(channel, received, task)
        listeners.append(listener)
        return listener

    yield make
    for listener in listeners:
        listener.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener.task


async def test_a_published_event_reaches_the_subscriber(bus: EventBus, listen: Listen) -> None:
    # given
    listener = await listen()
    # when
    await bus.publish(listener.channel, {"id": 7, "text": "水费"})
    # then
    assert await listener.next() == {"id": 7, "text": "水费"}


async def test_a_subscriber_hears_only_its_own_channel(bus: EventBus, listen: Listen) -> None:
    # given
    mine = await listen()
    other = await listen()
    # when
    await bus.publish(other.channel, {"id": 1})
    # then
    assert await other.next() == {"id": 1}
    assert await mine.silent()


async def test_every_subscriber_of_a_channel_receives_the_event(bus: EventBus, redis: Redis) -> None:
    # given two subscribers on one channel
    channel = f"test.{uuid.uuid4().hex}"
    first, second = bus.subscribe(channel), bus.subscribe(channel)
    pending = [asyncio.ensure_future(anext(first)), asyncio.ensure_future(anext(second))]
    if isinstance(bus, RedisEventBus):
        await wait_for_subscribers(redis, channel, more_than=1)
    else:
        await asyncio.sleep(0)
    # when
    await bus.publish(channel, {"n": 1})
    # then
    try:
        assert await asyncio.wait_for(asyncio.gather(*pending), timeout=5) == [{"n": 1}, {"n": 1}]
    finally:
        await first.aclose()
        await second.aclose()


async def test_publish_after_commit_waits_for_the_commit(runtime: Runtime, bus: EventBus, listen: Listen) -> None:
    # given
    listener = await listen()
    async with runtime.sessionmaker() as session:
        async with session.begin():
            await session.execute(text("SELECT 1"))
            # when
            publish_after_commit(session, bus, listener.channel, {"id": 42})
            # then: nothing while the transaction is open
            assert await listener.silent()
        # then: the event once it committed
        assert await listener.next() == {"id": 42}


async def test_publish_after_commit_publishes_nothing_on_rollback(
    runtime: Runtime, bus: EventBus, listen: Listen
) -> None:
    # given
    listener = await listen()

    async def owe_then_fail() -> None:
        async with runtime.sessionmaker() as session, session.begin():
            await session.execute(text("SELECT 1"))
            publish_after_commit(session, bus, listener.channel, {"id": 43})
            raise Abort

    # when
    with pytest.raises(Abort):
        await owe_then_fail()
    # then
    assert await listener.silent()


async def test_a_rolled_back_event_is_not_published_by_the_sessions_next_commit(
    runtime: Runtime, bus: EventBus, listen: Listen
) -> None:
    # given a session whose first transaction owed an event and rolled back
    listener = await listen()
    async with runtime.sessionmaker() as session:

        async def owe_then_fail() -> None:
            async with session.begin():
                publish_after_commit(session, bus, listener.channel, {"id": "rolled back"})
                raise Abort

        with pytest.raises(Abort):
            await owe_then_fail()
        # when its next transaction owes another event and commits
        async with session.begin():
            await session.execute(text("SELECT 1"))
            publish_after_commit(session, bus, listener.channel, {"id": "committed"})
    # then only the committed one arrives
    assert await listener.next() == {"id": "committed"}
    assert await listener.silent()
