"""The per-user request limit, shared through Redis by every API process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from redis.asyncio import Redis

from authz.principal import Principal
from backend.app import RequestLimiter
from backend.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


def _caller() -> Principal:
    return Principal(user_id=int(uuid.uuid4().int % 10**9) + 10**9, username="x", kind="STAFF", person_id=None)


async def test_a_caller_gets_exactly_the_limit_per_minute(redis: Redis) -> None:
    # given
    limiter = RequestLimiter(redis, per_minute=100)
    caller = _caller()
    # when
    answers = [await limiter.retry_after(caller, "127.0.0.1") for _ in range(101)]
    # then
    assert answers[:100] == [None] * 100
    assert answers[100] is not None
    assert 1 <= answers[100] <= 60


async def test_most_requests_make_no_redis_round_trip(redis: Redis) -> None:
    # given
    limiter = RequestLimiter(redis, per_minute=600)
    caller = _caller()
    # when
    for _ in range(50):
        assert await limiter.retry_after(caller, "127.0.0.1") is None
    # then: permits were leased ten at a time
    keys = [key async for key in redis.scan_iter(f"wuye:rate:u:{caller.user_id}:*")]
    assert len(keys) == 1
    assert int(await redis.get(keys[0]) or 0) == 50
    assert limiter.lease_size == 10


async def test_two_processes_together_never_exceed_the_limit(redis: Redis) -> None:
    # given two API processes sharing one Redis
    first, second = RequestLimiter(redis, per_minute=100), RequestLimiter(redis, per_minute=100)
    caller = _caller()
    # when both serve the same caller in turn
    allowed = 0
    for _ in range(120):
        for limiter in (first, second):
            if await limiter.retry_after(caller, "127.0.0.1") is None:
                allowed += 1
    # then
    assert 90 <= allowed <= 100


async def test_anonymous_callers_are_counted_per_address(redis: Redis) -> None:
    # given
    limiter = RequestLimiter(redis, per_minute=5)
    address = f"198.51.100.{uuid.uuid4().int % 250}"
    # when
    answers = [await limiter.retry_after(None, address) for _ in range(6)]
    other = await limiter.retry_after(None, f"203.0.113.{uuid.uuid4().int % 250}")
    # then
    assert answers[:5] == [None] * 5
    assert answers[5] is not None
    assert other is None
