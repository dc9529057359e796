"""Fixtures for the events tests: a worker's runtime, a private arq queue, a live API server.

All of them use the session's real PostgreSQL and Redis (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest_asyncio
import uvicorn
from arq.connections import ArqRedis, RedisSettings, create_pool
from events_support import RoleGrants

from backend.app import Runtime, create_app
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


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the test process: pytest keeps its own Ctrl-C handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def live_api(settings: Settings, runtime: Runtime) -> AsyncIterator[str]:
    """A real uvicorn server on a loopback port serving the test runtime; yields ``host:port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    config = uvicorn.Config(
        create_app(settings, runtime=runtime), lifespan="on", log_level="warning", ws="websockets-sansio"
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
    yield f"{host}:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)
    sock.close()


@pytest_asyncio.fixture(loop_scope="session")
async def role_grants(as_user: Any) -> AsyncIterator[RoleGrants]:
    """Role grants made by `admin`; those still in force after the test are revoked."""
    grants = RoleGrants(await as_user("admin"))
    yield grants
    await grants.revoke_all()
