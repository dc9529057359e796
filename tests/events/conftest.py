"""Fixtures for the events tests: a worker's runtime, a private arq queue, a live API server.

All of them use the session's real PostgreSQL and Redis (tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from arq.connections import ArqRedis, RedisSettings, create_pool
from events_support import RoleGrants

from backend.app import Runtime
from backend.settings import Settings
from workers.runtime import WorkerRuntime


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def worker_runtime(settings: Settings, runtime: Runtime) -> AsyncIterator[WorkerRuntime]:
    """What `wuye worker` holds: its own engine, Redis client and Redis events bus."""
    worker = WorkerRuntime.build(settings)
    yield worker
    await worker.close()


@pytest_asyncio.fixture(loop_scope="session")
async def arq(settings: Settings) -> AsyncIterator[ArqRedis]:
    """An arq pool whose default queue is this test's own, removed (with its jobs) afterwards."""
    queue = f"arq:queue:wuye-test-{uuid.uuid4().hex[:12]}"
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""), default_queue_name=queue)
    yield pool
    job_ids = [raw.decode() for raw in await pool.zrange(queue, 0, -1)]
    await pool.delete(queue, *(f"arq:job:{job_id}" for job_id in job_ids))
    await pool.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def role_grants(as_user: Any) -> AsyncIterator[RoleGrants]:
    """Role grants made by `admin`; those still in force after the test are revoked."""
    grants = RoleGrants(await as_user("admin"))
    yield grants
    await grants.revoke_all()
