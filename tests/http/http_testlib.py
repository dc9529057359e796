"""Helpers for the HTTP-level tests: accounts of their own, callers at addresses of their own,
hand-made access tokens, and the throttle counters they leave behind in Redis."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
from sqlalchemy import select

from backend.accounts.models import User, UserKind
from backend.accounts.passwords import hash_password
from backend.app import Runtime, create_app

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

USERNAME_PREFIX = "http-test-"
# Addresses from the benchmarking range (RFC 2544): never the 127.0.0.1 the shared client uses.
IP_PREFIX = "198.18."

LOGIN = """
mutation Login($username: String!, $password: String!) {
  login(input: {username: $username, password: $password}) {
    accessToken refreshToken expiresAt viewer { id username } errors { field code message }
  }
}
"""


def new_username() -> str:
    return f"{USERNAME_PREFIX}{uuid.uuid4().hex[:12]}"


def new_ip() -> str:
    return f"{IP_PREFIX}{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"


async def create_user(
    runtime: Runtime, *, password: str, password_hash: str | None = None, is_active: bool = True
) -> User:
    """A staff account of the test's own, with no roles."""
    async with runtime.sessionmaker() as session:
        user = User(
            username=new_username(),
            password_hash=password_hash or hash_password(password),
            kind=UserKind.STAFF,
            display_name="HTTP test",
            is_active=is_active,
        )
        session.add(user)
        await session.commit()
        return user


async def stored_hash(runtime: Runtime, username: str) -> str:
    async with runtime.sessionmaker() as session:
        return str(await session.scalar(select(User.password_hash).where(User.username == username)))


async def user_id(runtime: Runtime, username: str) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(User.id).where(User.username == username)) or 0)


@contextlib.asynccontextmanager
async def client_at(runtime: Runtime, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on ``runtime`` whose requests come from ``ip``."""
    transport = httpx.ASGITransport(app=create_app(runtime.settings, runtime=runtime), client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://wuye.test") as client:
        yield client


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    accept: str = JSON,
) -> httpx.Response:
    headers = {"accept": accept}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    response = await post(client, LOGIN, {"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def tokens_for(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    """The ``login`` payload of a successful login."""
    body = await login(client, username, password)
    payload: dict[str, Any] = body["data"]["login"]
    assert payload["errors"] == [], body
    return payload


def claims_for(runtime: Runtime, *, user_id: int, username: str) -> dict[str, Any]:
    """Claims exactly like those the server issues, valid for a minute."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    settings = runtime.settings
    return {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(minutes=1),
        "jti": secrets.token_hex(8),
        "name": username,
        "kind": "STAFF",
        "pid": None,
    }


def sign(claims: dict[str, Any], key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]


async def forget_login_failures(runtime: Runtime) -> None:
    """Drop the throttle counters of this package's accounts and addresses."""
    for pattern in (f"wuye:login:fail:user:{USERNAME_PREFIX}*", f"wuye:login:fail:ip:{IP_PREFIX}*"):
        keys = [key async for key in runtime.redis.scan_iter(match=pattern)]
        if keys:
            await runtime.redis.delete(*keys)
