"""The Starlette application and the runtime it shares with workers and the MQTT subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authz.enforcer import Authorizer
from authz.principal import Principal
from backend.accounts.roles import POLICY_CHANNEL
from backend.accounts.throttle import LoginThrottle
from backend.billing.providers import ProviderRegistry, build_providers
from backend.billing.routes import payment_routes
from backend.db import make_engine, make_sessionmaker
from backend.events import EventBus, InProcessEventBus, RedisEventBus
from backend.settings import Settings

if TYPE_CHECKING:
    import strawberry

    from backend.devices.ingest import DeviceIngest
    from iot.subscriber import MqttSubscriber

log = structlog.get_logger(__name__)
access_log = structlog.get_logger("wuye.access")


@dataclass(slots=True)
class RequestLimiter:
    """Per-user (or per-address for anonymous callers) fixed-window request limit in Redis.

    A process takes permits from Redis in small leases and spends them locally, so most
    requests make no Redis round trip. Unspent permits still count against the caller:
    with several processes the limit errs on the strict side, never the loose one.
    """

    redis: Redis
    per_minute: int = 600
    _leases: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def lease_size(self) -> int:
        return max(1, min(10, self.per_minute // 50))

    async def retry_after(self, principal: Principal | None, client_ip: str) -> int | None:
        who = f"u:{principal.user_id}" if principal else f"ip:{client_ip}"
        now = time.time()
        window = int(now // 60)
        key = (who, window)
        remaining = self._leases.get(key, 0)
        if remaining > 0:
            self._leases[key] = remaining - 1
            return None
        lease = self.lease_size
        redis_key = f"wuye:rate:{who}:{window}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(redis_key, lease)
            pipe.expire(redis_key, 61)
            taken, _ = await pipe.execute()
        granted = min(lease, self.per_minute - (int(taken) - lease))
        if granted <= 0:
            return 60 - int(now) % 60
        if len(self._leases) > 10_000:
            self._leases = {k: v for k, v in self._leases.items() if k[1] == window}
        self._leases[key] = granted - 1
        return None


@dataclass(slots=True)
class Metrics:
    requests: int = 0
    started_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class Runtime:
    """Everything a request, a job or an MQTT message needs; built once per process."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    bus: EventBus
    authorizer: Authorizer
    login_throttle: LoginThrottle
    request_limiter: RequestLimiter
    schema: strawberry.Schema
    payment_providers: ProviderRegistry
    metrics: Metrics = field(default_factory=Metrics)
    mqtt: MqttSubscriber | None = None
    ingest: DeviceIngest | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def graphiql(self) -> bool:
        return not self.settings.production

    async def policy_changed(self) -> None:
        """Reload here at once and tell every other process to reload too."""
        await self.authorizer.load(self.sessionmaker)
        await self.bus.publish(POLICY_CHANNEL, {"version": self.authorizer.version})

    async def _follow_policy_changes(self) -> None:
        async for _event in self.bus.subscribe(POLICY_CHANNEL):
            try:
                await self.authorizer.load(self.sessionmaker)
            except Exception:
                log.exception("authz.reload_failed")

    def spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.ingest is not None:
            await self.ingest.close()
        await self.bus.close()
        await self.redis.aclose()
        await self.engine.dispose()


async def build_runtime(settings: Settings, *, in_process_bus: bool = False) -> Runtime:
    from schema.schema import build_schema

    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("WUYE_DATABASE_URL and WUYE_REDIS_URL are required (or run `wuye demo`).")
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessionmaker = make_sessionmaker(engine)
    redis = Redis.from_url(settings.redis_url)
    bus: EventBus = InProcessEventBus() if in_process_bus else RedisEventBus(redis)
    authorizer = Authorizer()
    await authorizer.load(sessionmaker)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        redis=redis,
        bus=bus,
        authorizer=authorizer,
        login_throttle=LoginThrottle(
            redis,
            per_account=settings.login_failures_per_account_per_minute,
            per_ip=settings.login_failures_per_ip_per_minute,
        ),
        request_limiter=RequestLimiter(redis, per_minute=settings.requests_per_minute),
        schema=build_schema(settings),
        payment_providers=build_providers(settings, redis),
    )
    runtime.spawn(runtime._follow_policy_changes())
    return runtime


class AsgiEndpoint:
    """Routes an ASGI callable as it is: Starlette would call a plain function endpoint of a
    ``WebSocketRoute`` as ``endpoint(websocket)``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class RequestIdMiddleware:
    """A request id for every request, and an access log line without the query string:
    a GET query's variables may carry personal data (uvicorn's own access log is off)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        started = time.perf_counter()
        status: dict[str, int] = {}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if scope["type"] == "http" and scope["path"] not in ("/healthz", "/readyz", "/metrics"):
                access_log.info(
                    "http.request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status.get("code"),
                    ms=round((time.perf_counter() - started) * 1000, 1),
                    request_id=request_id,
                )


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    with_iot: bool = False,
) -> Starlette:
    """The ASGI app. Given a ``runtime`` (tests, benchmarks) it uses that one and leaves its
    lifecycle to the caller; otherwise the lifespan builds and closes its own."""
    from schema.billing.exports import EXPORT_PATHS, BillingExports
    from schema.core.http import GraphQLHTTP, GraphQLWebSocket

    state: dict[str, Any] = {}
    if runtime is not None:
        state.update(
            runtime=runtime, http=GraphQLHTTP(runtime), ws=GraphQLWebSocket(runtime), exports=BillingExports(runtime)
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if "runtime" in state:
            yield
            return
        runtime = await build_runtime(settings)
        if with_iot and settings.mqtt_url:
            from backend.iot_ingest import start_subscriber

            runtime.mqtt = await start_subscriber(runtime)
        state["runtime"] = runtime
        http = GraphQLHTTP(runtime)
        ws = GraphQLWebSocket(runtime)
        state["http"], state["ws"] = http, ws
        state["exports"] = BillingExports(runtime)
        app.state.runtime = runtime
        # Everything built so far (schema, ORM mappers, policy) lives as long as the process:
        # keep it out of every future garbage collection (they cost ~100 ms each otherwise).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await runtime.close()

    async def graphql_http(request: Request) -> Response:
        state["runtime"].metrics.requests += 1
        return await state["http"](request)  # type: ignore[no-any-return]

    async def graphql_ws(scope: Scope, receive: Receive, send: Send) -> None:
        await state["ws"](scope, receive, send)

    async def export(request: Request) -> Response:
        return await state["exports"](request)  # type: ignore[no-any-return]

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        runtime: Runtime = state["runtime"]
        checks: dict[str, bool] = {}
        try:
            async with runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception:
            checks["database"] = False
        try:
            checks["redis"] = bool(await runtime.redis.ping())
        except Exception:
            checks["redis"] = False
        checks["policy"] = runtime.authorizer.loaded and not runtime.authorizer.last_load_failed
        if runtime.mqtt is not None:
            checks["mqtt"] = runtime.mqtt.connected
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
        )

    async def metrics(_request: Request) -> Response:
        runtime: Runtime = state["runtime"]
        lines = [
            "# TYPE wuye_graphql_http_requests_total counter",
            f"wuye_graphql_http_requests_total {runtime.metrics.requests}",
            "# TYPE wuye_authz_policy_version gauge",
            f"wuye_authz_policy_version {runtime.authorizer.version}",
            "# TYPE wuye_uptime_seconds gauge",
            f"wuye_uptime_seconds {time.time() - runtime.metrics.started_at:.0f}",
        ]
        if runtime.mqtt is not None:
            for name, value in runtime.mqtt.metrics().items():
                lines += [f"# TYPE wuye_mqtt_messages_{name}_total counter", f"wuye_mqtt_messages_{name}_total {value}"]
        if runtime.ingest is not None:
            for name, value in runtime.ingest.metrics().items():
                lines += [f"# TYPE wuye_ingest_{name}_total counter", f"wuye_ingest_{name}_total {value}"]
            lines.append("# TYPE wuye_mqtt_dead_letters_total counter")
            for reason, count in sorted(runtime.ingest.dead_letters.items()):
                lines.append(f'wuye_mqtt_dead_letters_total{{reason="{reason}"}} {count}')
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/graphql", graphql_http, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", AsgiEndpoint(graphql_ws)),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *(Route(path, export, methods=["GET"]) for path in EXPORT_PATHS),
            *payment_routes(
                lambda: state["runtime"],
                sandbox_pages=settings.online_provider == "sandbox" and not settings.production,
            ),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )
