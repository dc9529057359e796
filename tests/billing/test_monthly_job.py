"""The monthly cron job bills every estate for the current month, once."""

from __future__ import annotations

from typing import Any

from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings
from workers.tasks import generate_monthly_bills


async def test_the_monthly_job_skips_what_the_month_already_has(settings: Any, runtime: Any) -> None:
    # given the demo, whose seed billed the current month already
    worker = WorkerRuntime.build(settings)
    try:
        # when
        first = await generate_monthly_bills({"runtime": worker})
        second = await generate_monthly_bills({"runtime": worker})
    finally:
        await worker.close()
    # then
    assert first["estates"] >= 3
    assert first["created"] == 0
    assert first["skipped"] > 2000
    assert second == first


def test_the_job_is_scheduled_on_the_first_of_the_month_once_across_workers() -> None:
    (job,) = [j for j in WorkerSettings.cron_jobs if j.name == "cron:generate_monthly_bills"]
    assert (job.day, job.hour, job.minute, job.unique) == ({1}, {0}, {10}, True)
