"""The outbox relay: moves committed outbox rows into arq with their deterministic job ids."""

from __future__ import annotations

import asyncio

import structlog
from arq.connections import ArqRedis

from backend.outbox import claim_pending, mark_dispatched
from workers.runtime import WorkerRuntime

log = structlog.get_logger(__name__)


async def relay_once(runtime: WorkerRuntime, arq: ArqRedis, *, batch: int = 200) -> int:
    """Enqueue one batch. A row is marked dispatched only after arq accepted it, in the same
    transaction that locked it; if Redis is down the rows stay pending for the next round."""
    async with runtime.sessionmaker() as session, session.begin():
        rows = await claim_pending(session, limit=batch)
        done: list[int] = []
        for row in rows:
            try:
                # None means arq already has this job id: it was enqueued before, also fine.
                await arq.enqueue_job(row.task, _job_id=row.job_id, **row.kwargs)
            except Exception as exc:
                row.attempts += 1
                row.last_error = str(exc)[:500]
                log.warning("outbox.enqueue_failed", job_id=row.job_id)
                break
            done.append(row.id)
        await mark_dispatched(session, done)
    return len(done)


async def run_relay(runtime: WorkerRuntime, arq: ArqRedis, *, interval: float = 0.25) -> None:
    while True:
        try:
            moved = await relay_once(runtime, arq)
        except Exception:
            log.exception("outbox.relay_failed")
            moved = 0
        if moved == 0:
            await asyncio.sleep(interval)
