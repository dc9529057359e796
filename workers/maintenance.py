"""The maintenance-plan job: opens the MAINTENANCE ticket of every plan entering its lead time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog

from backend.assets.plans import open_due_occurrences
from backend.db import local_today
from workers.runtime import WorkerRuntime

log = structlog.get_logger(__name__)


async def open_maintenance_tickets(ctx: dict[str, Any], *, today: dt.date | None = None) -> dict[str, int]:
    """Daily (early morning, unique): one ticket per plan occurrence within its lead time.

    Safe to run twice or on two workers at once: the plan row is locked and re-checked, and
    tickets are unique per (plan, due date), so an occurrence gets one ticket.
    """
    runtime: WorkerRuntime = ctx["runtime"]
    day = today or local_today()
    report = await open_due_occurrences(runtime.sessionmaker, today=day, zone=runtime.settings.timezone)
    log.info(
        "maintenance.tickets_opened",
        day=day.isoformat(),
        opened=report.opened,
        skipped=report.skipped,
        failed=report.failed,
    )
    return {"opened": report.opened, "skipped": report.skipped, "failed": report.failed}
