"""arq WorkerSettings for `wuye worker`: tasks, cron jobs, and the outbox relay alongside."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from arq import cron, func
from arq.connections import RedisSettings

from backend.settings import get_settings
from workers import maintenance, tasks
from workers.relay import run_relay
from workers.runtime import WorkerRuntime


async def startup(ctx: dict[str, Any]) -> None:
    runtime = WorkerRuntime.build(get_settings())
    ctx["runtime"] = runtime
    ctx["relay"] = asyncio.ensure_future(run_relay(runtime, ctx["redis"]))


async def shutdown(ctx: dict[str, Any]) -> None:
    relay = ctx.get("relay")
    if relay is not None:
        relay.cancel()
    runtime: WorkerRuntime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.close()


def redis_settings() -> RedisSettings:
    url = get_settings().redis_url
    if not url:
        raise RuntimeError("WUYE_REDIS_URL is required.")
    return RedisSettings.from_dsn(url)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [
        tasks.deliver_notification,
        tasks.notify_announcement,
        func(tasks.send_sms, max_tries=tasks.SMS_MAX_TRIES),
    ]
    # Times are in the company's time zone. `unique`: one run per slot across all workers.
    cron_jobs: ClassVar[list[Any]] = [
        cron(tasks.generate_monthly_bills, day={1}, hour={0}, minute={10}, unique=True, timeout=3600),
        cron(tasks.accrue_late_fees, hour={0}, minute={40}, unique=True, timeout=3600),
        cron(tasks.run_dunning, hour={9}, minute={0}, unique=True, timeout=3600),
        cron(tasks.resend_stuck_sms, minute=set(range(7, 60, 10)), unique=True, timeout=540),
        cron(tasks.reconcile_online_payments, minute=set(range(2, 60, 5)), unique=True, timeout=240),
        cron(tasks.check_ticket_deadlines, minute=set(range(1, 60, 2)), unique=True, timeout=110),
        cron(tasks.check_device_presence, second={30}, unique=True, timeout=55),
        cron(tasks.escalate_alarms, second={30}, unique=True, timeout=50),
        cron(maintenance.open_maintenance_tickets, hour={5}, minute={20}, unique=True, timeout=1800),
    ]
    timezone = ZoneInfo(get_settings().timezone)
    on_startup = startup
    on_shutdown = shutdown
    max_tries = 5
    keep_result = 3600
    handle_signals = True
