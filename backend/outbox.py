"""Transactional outbox: work owed after a commit is written in the same transaction.

A relay (in `wuye worker`) moves pending rows into arq with the row's deterministic job id,
so nothing is lost while Redis is down and nothing is sent for a rolled-back transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, created_at_column, utcnow


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    job_id: Mapped[str] = mapped_column(String(160), unique=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_outbox_pending", "id", postgresql_where=text("dispatched_at IS NULL")),)


_ENQUEUE = (
    insert(OutboxMessage)
    .values(task=bindparam("task"), job_id=bindparam("job_id"), kwargs=bindparam("kwargs"))
    .on_conflict_do_nothing(index_elements=["job_id"])
)  # built once: a statement built per call costs more than its round trip


async def enqueue(session: AsyncSession, *, task: str, job_id: str, **kwargs: Any) -> None:
    """Record a job owed after this transaction commits. The same ``job_id`` is recorded once."""
    await session.execute(_ENQUEUE, {"task": task, "job_id": job_id, "kwargs": kwargs})


async def claim_pending(session: AsyncSession, *, limit: int = 100) -> list[OutboxMessage]:
    """Lock a batch of undispatched rows; concurrent relays skip each other's rows."""
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def mark_dispatched(session: AsyncSession, ids: list[int]) -> None:
    if ids:
        await session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(dispatched_at=utcnow()))
