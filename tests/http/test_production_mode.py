"""WUYE_ENV=production: a secret is required, and the API tells outsiders nothing about its
schema or its insides — no introspection, no GraphiQL, no "did you mean", masked errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from http_testlib import client_at, error_codes, post
from pydantic import ValidationError

from backend.accounts import service
from backend.app import Runtime, build_runtime
from backend.settings import Environment, Settings

SECRET = "production-test-secret-key-long-enough-for-hs256"

INTROSPECTION = "{ __schema { queryType { name } } }"
TYPE_INTROSPECTION = '{ __type(name: "Unit") { fields { name } } }'
TYPENAME = "{ __typename }"
LOGIN = """
mutation { login(input: {username: "cs.a", password: "demo1234"}) { accessToken errors { code } } }
"""
MISSPELLINGS = {
    "field": "{ viewr { username } }",
    "argument": "{ units(frist: 1) { totalCount } }",
    "type": '{ node(id: "x") { ... on Unti { id } } }',
}
LEAKED_DETAIL = "connection to 10.20.30.40 refused for user wuye_admin"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def production(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await build_runtime(
        Settings.model_validate({**settings.model_dump(), "env": "production", "secret_key": SECRET})
    )
    yield runtime
    await runtime.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def development(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await build_runtime(Settings.model_validate({**settings.model_dump(), "env": "development"}))
    yield runtime
    await runtime.close()


@pytest_asyncio.fixture(loop_scope="session")
async def prod(production: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with client_at(production, "127.0.0.1") as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def dev(development: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with client_at(development, "127.0.0.1") as client:
        yield client


def _failing_login(**_kwargs: Any) -> Any:
    raise RuntimeError(LEAKED_DETAIL)


# Settings


def test_production_without_a_secret_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.delenv("WUYE_SECRET_KEY", raising=False)
    # when / then
    with pytest.raises(ValidationError, match="WUYE_SECRET_KEY is required"):
        Settings(env="production")
    with pytest.raises(ValidationError, match="WUYE_SECRET_KEY is required"):
        Settings(env="production", secret_key="")


def test_production_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.setenv("WUYE_ENV", "production")
    monkeypatch.setenv("WUYE_SECRET_KEY", SECRET)
    # when
    settings = Settings()
    # then: signing uses the configured secret, never a built-in one
    assert settings.env is Environment.PRODUCTION
    assert settings.production
    assert settings.signing_key == SECRET


def test_production_from_the_environment_without_a_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.setenv("WUYE_ENV", "production")
    monkeypatch.delenv("WUYE_SECRET_KEY", raising=False)
    # when / then
    with pytest.raises(ValidationError):
        Settings()


# Introspection and GraphiQL


@pytest.mark.parametrize("document", [INTROSPECTION, TYPE_INTROSPECTION], ids=["schema", "type"])
async def test_production_refuses_introspection(prod: httpx.AsyncClient, document: str) -> None:
    # when
    response = await post(prod, document)
    # then
    body = response.json()
    assert "data" not in body
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}
    assert all("introspection has been disabled" in error["message"] for error in body["errors"])


async def test_production_still_answers_typename(prod: httpx.AsyncClient) -> None:
    # when
    response = await post(prod, TYPENAME)
    # then
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_development_allows_introspection(dev: httpx.AsyncClient) -> None:
    # when
    response = await post(dev, INTROSPECTION)
    # then
    assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


async def test_production_serves_no_graphiql(prod: httpx.AsyncClient) -> None:
    # when
    response = await prod.get("/graphql", headers={"accept": "text/html"})
    # then
    assert response.status_code == 400
    assert "text/html" not in response.headers["content-type"]
    assert "graphiql" not in response.text.lower()


async def test_development_serves_graphiql(dev: httpx.AsyncClient) -> None:
    # when
    response = await dev.get("/graphql", headers={"accept": "text/html"})
    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


# Internal errors


async def test_production_masks_an_internal_error_with_a_request_id(
    prod: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setattr(service, "login", _failing_login)
    # when
    response = await post(prod, LOGIN)
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    (error,) = body["errors"]
    request_id = error["extensions"]["requestId"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert error["message"] == f"Internal server error (request id {request_id})."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    assert error["path"] == ["login"]
    assert LEAKED_DETAIL not in response.text
    assert "RuntimeError" not in response.text


async def test_production_uses_the_callers_request_id(prod: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.setattr(service, "login", _failing_login)
    # when
    response = await prod.post("/graphql", json={"query": LOGIN}, headers={"x-request-id": "req-from-the-edge-1"})
    # then
    (error,) = response.json()["errors"]
    assert error["extensions"]["requestId"] == "req-from-the-edge-1"
    assert error["message"] == "Internal server error (request id req-from-the-edge-1)."


async def test_development_shows_an_internal_errors_message(
    dev: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setattr(service, "login", _failing_login)
    # when
    response = await post(dev, LOGIN)
    # then
    (error,) = response.json()["errors"]
    assert error["message"] == LEAKED_DETAIL
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


async def test_production_does_not_mask_errors_meant_for_the_caller(prod: httpx.AsyncClient) -> None:
    # when: an anonymous mutation
    response = await post(prod, "mutation { markNotificationsRead(input: {}) { markedCount } }")
    # then
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["message"] == "Authentication required."


# Suggestions


@pytest.mark.parametrize("document", MISSPELLINGS.values(), ids=MISSPELLINGS.keys())
async def test_production_gives_no_suggestions(prod: httpx.AsyncClient, document: str) -> None:
    # when
    response = await post(prod, document)
    # then
    body = response.json()
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "Did you mean" not in response.text
    assert not re.search(r"'(viewer|first|Unit)'", response.text)


@pytest.mark.parametrize("document", MISSPELLINGS.values(), ids=MISSPELLINGS.keys())
async def test_development_suggests_the_right_name(dev: httpx.AsyncClient, document: str) -> None:
    # when
    response = await post(dev, document)
    # then
    (error,) = response.json()["errors"]
    assert "Did you mean" in error["message"]
    assert re.search(r"'(viewer|first|Unit)'", error["message"])
