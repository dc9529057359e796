"""Helpers for the events tests (a plain module: conftest.py is not importable)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from redis.asyncio import Redis
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from backend.accounts.models import User
from backend.events import CHANNEL_PREFIX
from backend.notifications.service import NOTIFICATION_CHANNEL
from backend.outbox import OutboxMessage
from workers.relay import relay_once
from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings

TRANSPORT_WS = Subprotocol("graphql-transport-ws")

NOTIFICATION_ADDED = """
subscription { notificationAdded { id kind title body readAt } }
"""


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 5.0, message: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(message or f"condition not met within {within}s")
        await asyncio.sleep(0.02)


async def subscriber_count(redis: Redis, channel: str) -> int:
    """How many Redis pub/sub subscribers listen on a bus channel (``PUBSUB NUMSUB``)."""
    ((_name, count),) = await redis.pubsub_numsub(CHANNEL_PREFIX + channel)
    return int(count)


async def wait_for_subscribers(redis: Redis, channel: str, *, more_than: int, within: float = 5.0) -> None:
    async def listening() -> bool:
        return await subscriber_count(redis, channel) > more_than

    await eventually(listening, within=within, message=f"nobody subscribed to {channel!r}")


def notification_channel(user_id: int) -> str:
    return f"{NOTIFICATION_CHANNEL}:{user_id}"


async def user_id(runtime: Any, username: str) -> int:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(select(User.id).where(User.username == username))
    assert found is not None, username
    return int(found)


async def outbox_row(runtime: Any, job_id: str) -> OutboxMessage | None:
    async with runtime.sessionmaker() as session:
        row: OutboxMessage | None = await session.scalar(select(OutboxMessage).where(OutboxMessage.job_id == job_id))
        return row


async def relay_all(worker_runtime: WorkerRuntime, arq: ArqRedis) -> int:
    """Run the relay until no committed outbox row is left pending."""
    moved = 0
    while batch := await relay_once(worker_runtime, arq):
        moved += batch
    return moved


async def run_worker_burst(worker_runtime: WorkerRuntime, arq: ArqRedis) -> None:
    """A real arq worker on ``arq``'s queue that stops once the queue is empty."""
    worker = Worker(
        functions=WorkerSettings.functions,
        redis_settings=RedisSettings.from_dsn(worker_runtime.settings.redis_url or ""),
        queue_name=arq.default_queue_name,
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
        ctx={"runtime": worker_runtime},
        max_tries=1,
    )
    try:
        await asyncio.wait_for(worker.main(), timeout=30)
    finally:
        await worker.close()


async def drain_outbox(worker_runtime: WorkerRuntime, arq: ArqRedis) -> None:
    """Relay and work until the outbox is empty (a job may owe further jobs, e.g. a fan-out)."""
    while await relay_all(worker_runtime, arq):
        await run_worker_burst(worker_runtime, arq)


@contextlib.asynccontextmanager
async def graphql_ws(url: str, token: str) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws connection past ``connection_ack``."""
    async with connect(url, subprotocols=[TRANSPORT_WS], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
        assert ack["type"] == "connection_ack", ack
        yield ws


async def subscribe(ws: ClientConnection, query: str, *, operation_id: str = "1") -> None:
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": {"query": query}}))


async def next_payload(ws: ClientConnection, *, within: float) -> dict[str, Any]:
    """The next ``next`` message's payload; pings are answered, anything else is a failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=max(deadline - loop.time(), 0.01)))
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        assert message["type"] == "next", message
        payload: dict[str, Any] = message["payload"]
        return payload


async def nothing_arrives(ws: ClientConnection, *, within: float) -> bool:
    try:
        payload = await next_payload(ws, within=within)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message: {payload}")


VIEWER = """
query Viewer { viewer { id username roles { role orgUnit { id name } } unreadNotificationCount } }
"""

GRANT_ROLE = """
mutation GrantRole($input: RoleInput!) {
  grantRole(input: $input) { roleAssignment { role orgUnit { id } } errors { field code message } }
}
"""

REVOKE_ROLE = """
mutation RevokeRole($input: RoleInput!) { revokeRole(input: $input) { errors { field code message } } }
"""


@dataclass(frozen=True)
class Grant:
    user_id: str  # the grantee's viewer id
    role: str
    org_unit_id: str

    def as_input(self) -> dict[str, Any]:
        return {"input": {"userId": self.user_id, "role": self.role, "orgUnitId": self.org_unit_id}}


@dataclass
class RoleGrants:
    """Grants made by an admin's client; whatever a test leaves granted is revoked after it."""

    admin: Any  # tests/conftest.py's GraphQLClient
    active: list[Grant] = field(default_factory=list)

    async def grant(self, grant: Grant) -> None:
        data = await self.admin.data(GRANT_ROLE, grant.as_input())
        assert data["grantRole"]["errors"] == [], data
        self.active.append(grant)

    async def revoke(self, grant: Grant) -> None:
        data = await self.admin.data(REVOKE_ROLE, grant.as_input())
        assert data["revokeRole"]["errors"] == [], data
        self.active.remove(grant)

    async def revoke_all(self) -> None:
        for grant in list(self.active):
            await self.revoke(grant)
