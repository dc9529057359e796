"""Shared fixtures: real PostgreSQL, Redis and MQTT — the machine's own when reachable
(or the ones named by WUYE_TEST_*_URL), else embedded servers started for the session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from backend.app import Runtime, build_runtime, create_app
from backend.settings import Settings

DEMO_PASSWORD = "demo1234"


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Services:
    database_admin_url: str  # a database on the server where test databases are created
    redis_url: str
    mqtt_url: str


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    candidates = {
        "postgres": os.environ.get("WUYE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        "redis": os.environ.get("WUYE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9"),
        "mqtt": os.environ.get("WUYE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"),
    }
    # WUYE_TEST_SERVICES=embedded runs everything on the embedded servers (what a fresh
    # machine gets), even where the machine's own servers answer.
    force_embedded = os.environ.get("WUYE_TEST_SERVICES") == "embedded"
    missing = {name: force_embedded or not _reachable(url) for name, url in candidates.items()}
    with contextlib.ExitStack() as stack:
        if any(missing.values()):
            from backend.embedded import EmbeddedServers

            servers = stack.enter_context(EmbeddedServers(tmp_path_factory.mktemp("embedded"), fresh=True, **missing))
            candidates["postgres"] = servers.database_url or candidates["postgres"]
            candidates["redis"] = servers.redis_url or candidates["redis"]
            candidates["mqtt"] = servers.mqtt_url or candidates["mqtt"]
        yield Services(candidates["postgres"], candidates["redis"], candidates["mqtt"])


def _with_database(url: str, name: str) -> str:
    base, _, _old = url.rpartition("/")
    return f"{base}/{name}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url(services: Services) -> AsyncIterator[str]:
    """A fresh database for this test session: migrated, default policy, demo data."""
    from backend.cli import migrate, seed_demo

    name = f"wuye_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(services.database_admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = _with_database(services.database_admin_url, name)
    try:
        await migrate(url)
        await seed_demo(url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(scope="session")
def settings(services: Services, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=services.redis_url,
        mqtt_url=services.mqtt_url,
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        requests_per_minute=1_000_000,
        data_dir=Path(".wuye/test"),
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url or "")
    await redis.flushdb()
    await redis.aclose()
    rt = await build_runtime(settings)
    yield rt
    await rt.close()


@dataclass
class StatementCounter:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_statements(runtime: Runtime) -> Iterator[StatementCounter]:
    counter = StatementCounter()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counter.statements.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", before)
    yield counter
    event.remove(runtime.engine.sync_engine, "before_cursor_execute", before)


class GraphQLClient:
    """Posts GraphQL documents to the ASGI app as one caller (a demo account or anonymous)."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.token = token

    async def post(self, query: str, variables: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        all_headers = {"content-type": "application/json", **headers}
        if self.token:
            all_headers.setdefault("authorization", f"Bearer {self.token}")
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
        )

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.execute(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


LOGIN = """
mutation Login($username: String!, $password: String!) {
  login(input: {username: $username, password: $password}) {
    accessToken refreshToken expiresAt errors { field code message }
  }
}
"""


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def http(runtime: Runtime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://wuye.test") as client:
        yield client


_tokens: dict[str, str] = {}
_token_lock = asyncio.Lock()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def as_user(http: httpx.AsyncClient) -> Any:
    """``await as_user("cs.a")`` → a client logged in as that demo account (token cached)."""

    async def make(username: str | None) -> GraphQLClient:
        if username is None:
            return GraphQLClient(http)
        async with _token_lock:
            if username not in _tokens:
                body = await GraphQLClient(http).data(LOGIN, {"username": username, "password": DEMO_PASSWORD})
                assert body["login"]["errors"] == [], body
                _tokens[username] = body["login"]["accessToken"]
        return GraphQLClient(http, _tokens[username])

    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") == "true" and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is a failure: {report.longrepr}"


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
