"""The operator's endpoints: liveness, readiness with its checks, Prometheus metrics."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from http_testlib import client_at

from backend.app import Runtime, build_runtime
from backend.settings import Settings

# One sample line of the Prometheus text format: name, optional labels, a number.
SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?[0-9.eE+-]+|[+-]Inf|NaN)$")
TYPE_LINE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_asyncio.fixture
async def without_redis(settings: Settings) -> AsyncIterator[Runtime]:
    """An API process whose Redis has gone away (nothing listens on its port)."""
    unreachable = f"redis://127.0.0.1:{_closed_port()}/0"
    runtime = await build_runtime(settings.model_copy(update={"redis_url": unreachable}), in_process_bus=True)
    yield runtime
    await runtime.close()


def _samples(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples


async def test_healthz_is_200(http: httpx.AsyncClient) -> None:
    # when
    response = await http.get("/healthz")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_database_redis_and_policy(http: httpx.AsyncClient) -> None:
    # when
    response = await http.get("/readyz")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert {"database": True, "redis": True, "policy": True}.items() <= body["checks"].items()
    assert all(body["checks"].values())


async def test_readyz_is_503_when_redis_is_unreachable(without_redis: Runtime) -> None:
    # given
    async with client_at(without_redis, "127.0.0.1") as client:
        # when
        response = await client.get("/readyz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] is False
    assert body["checks"]["database"] is True


async def test_healthz_stays_200_when_redis_is_unreachable(without_redis: Runtime) -> None:
    # given: liveness is the process, not its dependencies
    async with client_at(without_redis, "127.0.0.1") as client:
        # when
        response = await client.get("/healthz")
    # then
    assert response.status_code == 200


async def test_metrics_are_prometheus_text(http: httpx.AsyncClient) -> None:
    # when
    response = await http.get("/metrics")
    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    assert response.text.endswith("\n")
    for line in lines:
        assert TYPE_LINE.match(line) or SAMPLE.match(line), line
    typed = {match[1] for line in lines if (match := TYPE_LINE.match(line))}
    assert {"wuye_graphql_http_requests_total", "wuye_authz_policy_version", "wuye_uptime_seconds"} <= typed
    assert typed <= set(_samples(response.text))


async def test_metrics_count_graphql_requests(http: httpx.AsyncClient) -> None:
    # given
    before = _samples((await http.get("/metrics")).text)["wuye_graphql_http_requests_total"]
    # when
    for _ in range(3):
        await http.post("/graphql", json={"query": "{ __typename }"})
    # then
    after = _samples((await http.get("/metrics")).text)["wuye_graphql_http_requests_total"]
    assert after >= before + 3
