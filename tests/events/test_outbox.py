"""The transactional outbox and its relay into arq: a job owed by a transaction is recorded
only if it commits, recorded once per job id, survives Redis being down, and reaches arq once."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from events_support import outbox_row, relay_all
from sqlalchemy import delete, func, select, update

from backend.app import Runtime
from backend.outbox import OutboxMessage, enqueue
from workers.relay import relay_once
from workers.runtime import WorkerRuntime

TASK = "deliver_notification"
MISSING_NOTIFICATION = -1  # if a worker ever runs the job, it finds nothing and returns "missing"


class Abort(Exception):
    """Raised inside a transaction to roll it back."""


@pytest_asyncio.fixture(loop_scope="session")
async def job_id(runtime: Runtime) -> AsyncIterator[str]:
    value = f"events-test:{uuid.uuid4().hex}"
    yield value
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMessage).where(OutboxMessage.job_id == value))


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port held by a socket that never listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def _owe(runtime: Runtime, job_id: str, **kwargs: int) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await enqueue(session, task=TASK, job_id=job_id, **(kwargs or {"notification_id": MISSING_NOTIFICATION}))


async def _rows(runtime: Runtime, job_id: str) -> int:
    async with runtime.sessionmaker() as session:
        count = await session.scalar(select(func.count()).where(OutboxMessage.job_id == job_id))
    return int(count or 0)


def _job(arq: ArqRedis, job_id: str) -> Job:
    return Job(job_id, arq, _queue_name=arq.default_queue_name)


async def test_a_committed_transaction_leaves_one_pending_row(runtime: Runtime, job_id: str) -> None:
    # given
    async with runtime.sessionmaker() as session, session.begin():
        # when
        await enqueue(session, task=TASK, job_id=job_id, notification_id=MISSING_NOTIFICATION)
    # then
    row = await outbox_row(runtime, job_id)
    assert row is not None
    assert (row.task, row.kwargs) == (TASK, {"notification_id": MISSING_NOTIFICATION})
    assert row.dispatched_at is None
    assert row.attempts == 0


async def test_a_rolled_back_transaction_leaves_no_row(runtime: Runtime, job_id: str) -> None:
    # given
    async def owe_then_fail() -> None:
        async with runtime.sessionmaker() as session, session.begin():
            await enqueue(session, task=TASK, job_id=job_id, notification_id=MISSING_NOTIFICATION)
            raise Abort

    # when
    with pytest.raises(Abort):
        await owe_then_fail()
    # then
    assert await _rows(runtime, job_id) == 0


async def test_the_same_job_id_is_recorded_once(runtime: Runtime, job_id: str) -> None:
    # given
    async with runtime.sessionmaker() as session, session.begin():
        await enqueue(session, task=TASK, job_id=job_id, notification_id=MISSING_NOTIFICATION)
        # when (in the same transaction and in a later one)
        await enqueue(session, task=TASK, job_id=job_id, notification_id=-2)
    await _owe(runtime, job_id, notification_id=-3)
    # then
    assert await _rows(runtime, job_id) == 1
    row = await outbox_row(runtime, job_id)
    assert row is not None
    assert row.kwargs == {"notification_id": MISSING_NOTIFICATION}


async def test_the_relay_moves_committed_rows_into_arq_and_marks_them_dispatched(
    runtime: Runtime, worker_runtime: WorkerRuntime, arq: ArqRedis, job_id: str
) -> None:
    # given
    await _owe(runtime, job_id)
    # when
    moved = await relay_all(worker_runtime, arq)
    # then
    assert moved >= 1
    row = await outbox_row(runtime, job_id)
    assert row is not None
    assert row.dispatched_at is not None
    assert await arq.exists(f"arq:job:{job_id}") == 1
    assert await _job(arq, job_id).status() is JobStatus.queued
    info = await _job(arq, job_id).info()
    assert info is not None
    assert (info.function, info.kwargs) == (TASK, {"notification_id": MISSING_NOTIFICATION})


async def test_rows_stay_pending_while_redis_is_unreachable_and_go_out_once_it_is_back(
    runtime: Runtime, worker_runtime: WorkerRuntime, arq: ArqRedis, job_id: str, closed_port: int
) -> None:
    # given an outbox with only this row pending, and arq pointed at a port nobody serves
    await relay_all(worker_runtime, arq)
    await _owe(runtime, job_id)
    unreachable = ArqRedis(
        host="127.0.0.1", port=closed_port, socket_connect_timeout=1, default_queue_name=arq.default_queue_name
    )
    # when
    try:
        moved = await relay_once(worker_runtime, unreachable)
    finally:
        await unreachable.aclose()
    # then
    assert moved == 0
    row = await outbox_row(runtime, job_id)
    assert row is not None
    assert row.dispatched_at is None
    assert row.attempts == 1
    assert row.last_error
    assert await arq.exists(f"arq:job:{job_id}") == 0

    # when Redis is reachable again
    moved = await relay_all(worker_runtime, arq)
    # then
    assert moved == 1
    row = await outbox_row(runtime, job_id)
    assert row is not None
    assert row.dispatched_at is not None
    assert await _job(arq, job_id).status() is JobStatus.queued


async def test_a_second_relay_run_sends_nothing_again(
    runtime: Runtime, worker_runtime: WorkerRuntime, arq: ArqRedis, job_id: str
) -> None:
    # given
    await _owe(runtime, job_id)
    await relay_all(worker_runtime, arq)
    enqueued_at = await arq.zscore(arq.default_queue_name, job_id)
    # when
    moved = await relay_all(worker_runtime, arq)
    # then
    assert moved == 0
    assert await arq.zscore(arq.default_queue_name, job_id) == enqueued_at


async def test_a_row_relayed_again_after_a_lost_commit_is_enqueued_once(
    runtime: Runtime, worker_runtime: WorkerRuntime, arq: ArqRedis, job_id: str
) -> None:
    # given a row arq accepted, whose "dispatched" mark was then lost (a crash before commit)
    await _owe(runtime, job_id)
    await relay_all(worker_runtime, arq)
    first = await _job(arq, job_id).info()
    assert first is not None
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(OutboxMessage).where(OutboxMessage.job_id == job_id).values(dispatched_at=None))
    # when
    moved = await relay_all(worker_runtime, arq)
    # then: the row is settled, and arq kept the one job it had
    assert moved == 1
    row = await outbox_row(runtime, job_id)
    assert row is not None
    assert row.dispatched_at is not None
    queued = [job for job in await arq.queued_jobs(queue_name=arq.default_queue_name) if job.job_id == job_id]
    assert len(queued) == 1
    assert queued[0].enqueue_time == first.enqueue_time
