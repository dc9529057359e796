"""The `wuye` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from backend.settings import Settings, get_settings

log = structlog.get_logger("wuye")

DEMO_ACCOUNTS = (
    ("admin", "admin", "company"),
    ("manager.north", "manager", "branch North"),
    ("cs.a", "customer_service", "office N1"),
    ("finance.north", "finance", "branch North"),
    ("tech.a", "technician", "office N1"),
    ("guard.a", "security_guard", "office N1"),
    ("supervisor.north", "supervisor", "branch North"),
    ("supervisor.south", "supervisor", "branch South"),
    ("owner.a1", "resident", "unit 1-1-101 of DEMO-A"),
    ("owner.a2", "resident", "unit 1-1-102 of DEMO-A"),
    ("owner.c1", "resident", "unit 1-1-101 of DEMO-C"),
)


def _require(url: str | None, name: str) -> str:
    if not url:
        sys.exit(f"wuye: {name} is not set (or use `wuye demo`, which starts embedded servers).")
    return url


async def migrate(database_url: str) -> int:
    from authz.policy import seed_default_policy
    from backend.db import make_engine, make_sessionmaker, transaction
    from backend.migrate import upgrade_async

    await upgrade_async(database_url)
    engine = make_engine(database_url, pool_size=1)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            return await seed_default_policy(session)
    finally:
        await engine.dispose()


async def seed_demo(database_url: str) -> str:
    from backend.db import make_engine, make_sessionmaker, transaction
    from backend.seed import seed_demo as run_seed

    engine = make_engine(database_url, pool_size=1)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            report = await run_seed(session)
        return report.summary()
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    added = asyncio.run(migrate(_require(settings.database_url, "WUYE_DATABASE_URL")))
    print(f"migrated to head; {added} default policy lines added")


def cmd_seed(settings: Settings, args: argparse.Namespace) -> None:
    if not args.demo:
        sys.exit("wuye seed: say --demo")
    if settings.production:
        sys.exit("wuye seed --demo is refused when WUYE_ENV=production")
    print(asyncio.run(seed_demo(_require(settings.database_url, "WUYE_DATABASE_URL"))))


def cmd_export_schema(settings: Settings, args: argparse.Namespace) -> None:
    from schema.schema import build_schema

    sdl = build_schema(settings).as_str() + "\n"
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(sdl, encoding="utf-8")
    print(f"wrote {args.output}")


async def serve(settings: Settings, *, host: str, port: int, iot: bool) -> None:
    import uvicorn

    from backend.app import create_app

    app = create_app(settings, with_iot=iot)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="on",
            log_level="info",
            access_log=False,
            proxy_headers=False,
            ws="websockets-sansio",
        )
    )
    await server.serve()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    _require(settings.database_url, "WUYE_DATABASE_URL")
    _require(settings.redis_url, "WUYE_REDIS_URL")
    settings = settings.model_copy(update={"host": args.host, "port": args.port})  # pay and callback URLs
    asyncio.run(serve(settings, host=args.host, port=args.port, iot=not args.no_iot and bool(settings.mqtt_url)))


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> None:
    from arq.worker import run_worker

    from workers.settings import WorkerSettings

    _require(settings.redis_url, "WUYE_REDIS_URL")
    run_worker(WorkerSettings)  # type: ignore[arg-type]


async def run_iot(settings: Settings) -> None:
    from backend.app import build_runtime
    from backend.iot_ingest import start_subscriber

    runtime = await build_runtime(settings)
    runtime.mqtt = await start_subscriber(runtime)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        # Disconnect cleanly: unacknowledged messages stay with the broker for the next start.
        await runtime.close()


def cmd_iot(settings: Settings, _args: argparse.Namespace) -> None:
    _require(settings.mqtt_url, "WUYE_MQTT_URL")
    asyncio.run(run_iot(settings))


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> None:
    from iot.simulator import simulate

    url = _require(settings.mqtt_url, "WUYE_MQTT_URL")
    with contextlib.suppress(KeyboardInterrupt):
        counts = asyncio.run(
            simulate(url, interval=args.interval, count=args.count, forever=args.count is None, seed=args.seed)
        )
        print(json.dumps(counts))


async def sandbox_pay(settings: Settings, order_id: str, *, callback: bool) -> str:
    """Play the sandbox provider: the payer pays ``order_id``; then, like the provider, send
    the signed callback to the order's notify URL (or not: reconciliation will find it)."""
    from redis.asyncio import Redis

    from backend.billing.sandbox import SandboxError, SandboxGateway

    redis = Redis.from_url(_require(settings.redis_url, "WUYE_REDIS_URL"))
    gateway = SandboxGateway(
        redis,
        merchant_id=settings.sandbox_merchant_id,
        secret=settings.sandbox_signing_secret,
        base_url=settings.base_url,
    )
    try:
        order = await gateway.pay(order_id)
        lines = [f"order {order.order_id}: PAID ¥{order.amount}, transaction {order.transaction_id}"]
        if callback:
            status = await gateway.send_callback(order)
            lines.append(f"callback to {order.notify_url}: HTTP {status}")
        else:
            lines.append("no callback sent: the reconciliation job will settle it")
        return "\n".join(lines)
    except SandboxError as exc:
        sys.exit(f"wuye sandbox-pay: {exc}")
    finally:
        await redis.aclose()


def cmd_sandbox_pay(settings: Settings, args: argparse.Namespace) -> None:
    if settings.online_provider != "sandbox":
        sys.exit("wuye sandbox-pay: the sandbox is not the payment provider (WUYE_PAYMENT_PROVIDER)")
    print(asyncio.run(sandbox_pay(settings, args.order_id, callback=not args.no_callback)))


def _secret(data_dir: Path) -> str:
    """The demo's signing key, kept with its data so tokens survive a restart."""
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


async def run_demo(settings: Settings, *, port: int, simulator: bool) -> None:
    import uvicorn
    from arq.worker import Worker

    from backend.app import create_app
    from workers.settings import WorkerSettings, redis_settings

    added = await migrate(_require(settings.database_url, "database"))
    log.info("demo.migrated", policy_lines_added=added)
    log.info("demo.seeded", summary=await seed_demo(settings.database_url or ""))

    app = create_app(settings, with_iot=bool(settings.mqtt_url))
    config = uvicorn.Config(
        app, host=settings.host, port=port, lifespan="on", log_level="warning", access_log=False, ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    worker = Worker(
        functions=WorkerSettings.functions,
        cron_jobs=WorkerSettings.cron_jobs,
        on_startup=WorkerSettings.on_startup,
        on_shutdown=WorkerSettings.on_shutdown,
        redis_settings=redis_settings(),
        handle_signals=False,
        max_tries=WorkerSettings.max_tries,
        keep_result=WorkerSettings.keep_result,
        timezone=WorkerSettings.timezone,  # type: ignore[arg-type]  # arq only calls datetime.now(tz)
    )
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(worker.async_run())]
    api = asyncio.create_task(server.serve())
    while not server.started:
        if api.done():
            await api
            return
        await asyncio.sleep(0.05)
    api_url = f"http://{settings.host}:{port}/graphql"
    info = {
        "api": api_url,
        "mqtt": settings.mqtt_url,
        "database": settings.database_url,
        "redis": settings.redis_url,
    }
    demo_json = settings.data_dir / "demo.json"
    demo_json.write_text(json.dumps(info, indent=2))
    demo_json.chmod(0o600)
    if simulator and settings.mqtt_url:
        from iot.simulator import simulate

        tasks.append(asyncio.create_task(simulate(settings.mqtt_url, interval=5.0, forever=True)))
    print(f"\nwuye demo is ready.\n  GraphiQL: {api_url}\n  details:  {demo_json}\n  accounts (password demo1234):")
    for username, role, where in DEMO_ACCOUNTS:
        print(f"    {username:<18} {role:<17} {where}")
    print("  Ctrl-C stops everything.\n", flush=True)
    try:
        await api
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await worker.close()


def _stop_as_on_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM stops the demo the way Ctrl-C does, embedded servers included. (uvicorn handles
    SIGTERM while it serves, then re-raises it once shut down: its default action would end
    the process before the embedded servers are stopped.)"""
    if callable(signal.getsignal(signal.SIGINT)):
        signal.raise_signal(signal.SIGINT)  # inside asyncio.run: cancels the main task
    else:
        raise KeyboardInterrupt  # SIGINT is ignored (a background job of a script)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    signal.signal(signal.SIGTERM, _stop_as_on_ctrl_c)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        (data_dir / "secret_key").unlink(missing_ok=True)
    need = {
        "postgres": not settings.database_url,
        "redis": not settings.redis_url,
        "mqtt": not settings.mqtt_url,
    }
    stack = contextlib.ExitStack()
    with stack:
        if any(need.values()):
            from backend.embedded import EmbeddedServers

            print("starting embedded servers:", ", ".join(name for name, wanted in need.items() if wanted), flush=True)
            servers = stack.enter_context(EmbeddedServers(data_dir, fresh=args.fresh, **need))
            updates = {
                "database_url": servers.database_url or settings.database_url,
                "redis_url": servers.redis_url or settings.redis_url,
                "mqtt_url": servers.mqtt_url or settings.mqtt_url,
            }
            settings = settings.model_copy(update=updates)
        settings = settings.model_copy(
            update={"secret_key": settings.secret_key or _secret(data_dir), "data_dir": data_dir, "port": args.port}
        )
        # The worker's settings are read from the environment.
        os.environ.update(
            {
                "WUYE_DATABASE_URL": settings.database_url or "",
                "WUYE_REDIS_URL": settings.redis_url or "",
                "WUYE_MQTT_URL": settings.mqtt_url or "",
                "WUYE_SECRET_KEY": settings.secret_key or "",
            }
        )
        get_settings.cache_clear()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_demo(settings, port=args.port, simulator=not args.no_simulator))
    print("wuye demo stopped.")


def main(argv: list[str] | None = None) -> None:
    from backend.logging import configure_logging

    settings = get_settings()
    configure_logging(settings)
    parser = argparse.ArgumentParser(prog="wuye", description="wuye: property management backend")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run everything on embedded servers with demo data")
    demo.add_argument("--port", type=int, default=settings.port)
    demo.add_argument("--no-simulator", action="store_true")
    demo.add_argument("--fresh", action="store_true", help="start from empty data")
    demo.set_defaults(func=cmd_demo)

    serve_parser = sub.add_parser("serve", help="the API")
    serve_parser.add_argument("--host", default=settings.host)
    serve_parser.add_argument("--port", type=int, default=settings.port)
    serve_parser.add_argument("--no-iot", action="store_true")
    serve_parser.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="the arq worker with cron jobs and the outbox relay").set_defaults(func=cmd_worker)
    sub.add_parser("iot", help="the MQTT subscriber on its own").set_defaults(func=cmd_iot)
    sub.add_parser("migrate", help="Alembic upgrade to head and the default policy").set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="demo data (idempotent)")
    seed.add_argument("--demo", action="store_true")
    seed.set_defaults(func=cmd_seed)

    simulate_parser = sub.add_parser("simulate", help="publish sensor telemetry, alarms and access events")
    simulate_parser.add_argument("--interval", type=float, default=2.0)
    simulate_parser.add_argument("--count", type=int, default=None)
    simulate_parser.add_argument("--seed", type=int, default=None)
    simulate_parser.set_defaults(func=cmd_simulate)

    sandbox = sub.add_parser("sandbox-pay", help="play the sandbox payment provider: pay an order, send its callback")
    sandbox.add_argument("order_id", metavar="ORDER_ID", help="the payment's providerOrderId")
    sandbox.add_argument("--no-callback", action="store_true", help="leave the payment for reconciliation")
    sandbox.set_defaults(func=cmd_sandbox_pay)

    export = sub.add_parser("export-schema", help="write frontend-contract/schema.graphql")
    export.add_argument("--output", default="frontend-contract/schema.graphql")
    export.set_defaults(func=cmd_export_schema)

    args = parser.parse_args(argv)
    args.func(settings, args)
