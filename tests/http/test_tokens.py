"""Access-token attacks are refused before anything runs; refresh tokens rotate, are single-use,
and a reused one burns its whole family."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from http_testlib import (
    GRAPHQL_RESPONSE,
    claims_for,
    create_user,
    error_codes,
    post,
    sign,
    tokens_for,
    user_id,
)
from pydantic import ValidationError
from sqlalchemy import delete, func, select, update

from backend.accounts.models import RefreshToken
from backend.accounts.tokens import hash_refresh_token
from backend.app import Runtime
from backend.people.models import Person
from backend.settings import Settings

PASSWORD = "tokens-test-password"

VIEWER = "{ viewer { id username } }"

CREATE_PERSON = """
mutation CreatePerson($orgUnitId: ID!, $name: String!) {
  createPerson(input: {orgUnitId: $orgUnitId, name: $name}) { person { id } errors { code } }
}
"""

ADMIN_ORG_UNIT = "{ viewer { roles { role orgUnit { id } } } }"

REFRESH = """
mutation Refresh($refreshToken: String!) {
  refreshToken(input: {refreshToken: $refreshToken}) { accessToken refreshToken expiresAt errors { field code message } }
}
"""

LOGOUT = """
mutation Logout($refreshToken: String!) {
  logout(input: {refreshToken: $refreshToken}) { errors { code } }
}
"""


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value, default=str).encode()).decode().rstrip("=")

    payload = {**claims, "iat": int(claims["iat"].timestamp()), "exp": int(claims["exp"].timestamp())}
    payload.pop("nbf")
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _tampered(claims: dict[str, Any], key: str) -> str:
    """A genuine token whose payload was then edited: another account, the old signature."""
    header, _payload, signature = sign(claims, key).split(".")
    edited = sign({**claims, "sub": str(int(claims["sub"]) + 1)}, key).split(".")[1]
    return f"{header}.{edited}.{signature}"


def _ago(claims: dict[str, Any], minutes: int) -> dict[str, Any]:
    shift = dt.timedelta(minutes=minutes)
    return {**claims, "iat": claims["iat"] - shift, "nbf": claims["nbf"] - shift, "exp": claims["exp"] - shift}


def _without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


# Each forgery differs from a token the server would accept in exactly one respect.
FORGERIES: dict[str, Callable[[dict[str, Any], str], str]] = {
    "alg_none": lambda claims, key: _unsigned(claims),
    "other_algorithm": lambda claims, key: sign(claims, key, "HS512"),
    "expired": lambda claims, key: sign(_ago(claims, 30), key),
    "not_yet_valid": lambda claims, key: sign({**claims, "nbf": claims["nbf"] + dt.timedelta(minutes=10)}, key),
    "wrong_audience": lambda claims, key: sign({**claims, "aud": "someone-else"}, key),
    "wrong_issuer": lambda claims, key: sign({**claims, "iss": "evil"}, key),
    "other_key": lambda claims, key: sign(claims, "the-secret-key-of-another-installation-of-wuye-somewhere-else"),
    "tampered_payload": _tampered,
    "missing_exp": lambda claims, key: sign(_without(claims, "exp"), key),
    "missing_sub": lambda claims, key: sign(_without(claims, "sub"), key),
    "garbage": lambda claims, key: "not-a-jwt",
}


async def _admin_claims(runtime: Runtime) -> dict[str, Any]:
    return claims_for(runtime, user_id=await user_id(runtime, "admin"), username="admin")


async def _persons_named(runtime: Runtime, name: str) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Person).where(Person.name == name)) or 0)


async def _refresh(http: httpx.AsyncClient, refresh_token: str) -> dict[str, Any]:
    response = await post(http, REFRESH, {"refreshToken": refresh_token})
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()["data"]["refreshToken"]
    return payload


async def _viewer(http: httpx.AsyncClient, access_token: str) -> dict[str, Any]:
    response = await post(http, VIEWER, token=access_token)
    body: dict[str, Any] = response.json()
    return body


def _refused(payload: dict[str, Any]) -> bool:
    return payload["accessToken"] is None and [e["code"] for e in payload["errors"]] == ["INVALID_REFRESH_TOKEN"]


async def test_a_token_made_like_the_servers_is_accepted(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given: the control for the forgeries below
    token = sign(await _admin_claims(runtime), runtime.settings.signing_key)
    # when
    body = await _viewer(http, token)
    # then
    assert "errors" not in body
    assert body["data"]["viewer"]["username"] == "admin"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_bad_access_token_is_unauthenticated(
    http: httpx.AsyncClient, runtime: Runtime, forgery: Callable[[dict[str, Any], str], str]
) -> None:
    # given
    token = forgery(await _admin_claims(runtime), runtime.settings.signing_key)
    # when
    as_json = await post(http, VIEWER, token=token)
    as_graphql_response = await post(http, VIEWER, token=token, accept=GRAPHQL_RESPONSE)
    # then: the one error, and no `data`: nothing was executed
    assert as_json.status_code == 200
    assert as_json.json() == {
        "errors": [{"message": "The access token is invalid or expired.", "extensions": {"code": "UNAUTHENTICATED"}}]
    }
    assert as_graphql_response.status_code == 401
    assert as_graphql_response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert as_graphql_response.json() == as_json.json()


@pytest.mark.parametrize("header", ["Basic YWRtaW46ZGVtbzEyMzQ=", "Bearer", "Bearer    ", "Token abc"])
async def test_an_authorization_header_without_a_bearer_token_is_unauthenticated(
    http: httpx.AsyncClient, header: str
) -> None:
    # when
    response = await http.post("/graphql", json={"query": VIEWER}, headers={"authorization": header})
    # then
    assert response.status_code == 200
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    assert "data" not in response.json()


@pytest.mark.parametrize("forgery", ["alg_none", "expired", "other_key", "wrong_audience"])
async def test_a_mutation_with_a_bad_token_writes_nothing(
    http: httpx.AsyncClient, runtime: Runtime, as_user: Any, forgery: str
) -> None:
    # given: a document that writes a row when sent with the admin's real token
    admin = await as_user("admin")
    org_unit_id = (await admin.data(ADMIN_ORG_UNIT))["viewer"]["roles"][0]["orgUnit"]["id"]
    control_name, forged_name = f"token-control-{forgery}", f"token-forged-{forgery}"
    control = await post(http, CREATE_PERSON, {"orgUnitId": org_unit_id, "name": control_name}, token=admin.token)
    token = FORGERIES[forgery](await _admin_claims(runtime), runtime.settings.signing_key)
    try:
        # when
        response = await post(http, CREATE_PERSON, {"orgUnitId": org_unit_id, "name": forged_name}, token=token)
        # then
        assert control.json()["data"]["createPerson"]["errors"] == []
        assert await _persons_named(runtime, control_name) == 1
        assert error_codes(response.json()) == ["UNAUTHENTICATED"]
        assert "data" not in response.json()
        assert await _persons_named(runtime, forged_name) == 0
    finally:
        async with runtime.sessionmaker() as session:
            await session.execute(delete(Person).where(Person.name.in_([control_name, forged_name])))
            await session.commit()


async def test_an_access_token_lives_at_most_15_minutes(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    # when
    payload = await tokens_for(http, user.username, PASSWORD)
    # then
    claims = jwt.decode(payload["accessToken"], options={"verify_signature": False})
    assert 0 < claims["exp"] - claims["iat"] <= 15 * 60
    assert dt.datetime.fromisoformat(payload["expiresAt"]).timestamp() == claims["exp"]
    assert jwt.get_unverified_header(payload["accessToken"])["alg"] == "HS256"


def test_settings_refuse_an_access_token_lifetime_over_15_minutes() -> None:
    # when / then
    with pytest.raises(ValidationError):
        Settings(access_token_ttl_seconds=15 * 60 + 1)


async def test_refresh_rotates_the_pair(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    first = await tokens_for(http, user.username, PASSWORD)
    # when
    second = await _refresh(http, first["refreshToken"])
    third = await _refresh(http, second["refreshToken"])
    # then
    assert second["errors"] == []
    assert third["errors"] == []
    assert len({first["refreshToken"], second["refreshToken"], third["refreshToken"]}) == 3
    assert (await _viewer(http, third["accessToken"]))["data"]["viewer"]["username"] == user.username


async def test_a_spent_refresh_token_is_refused(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    first = await tokens_for(http, user.username, PASSWORD)
    await _refresh(http, first["refreshToken"])
    # when
    again = await _refresh(http, first["refreshToken"])
    # then
    assert _refused(again)
    assert again["errors"][0]["message"] == "The refresh token is not valid."


async def test_reusing_a_spent_refresh_token_revokes_its_family(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given: the rotation's token, stolen, was used by the thief; the owner retries the spent one
    user = await create_user(runtime, password=PASSWORD)
    other_login = await tokens_for(http, user.username, PASSWORD)
    first = await tokens_for(http, user.username, PASSWORD)
    rotated = await _refresh(http, first["refreshToken"])
    # when
    reuse = await _refresh(http, first["refreshToken"])
    # then: the token issued by the rotation is dead too, and only this login's family is
    assert _refused(reuse)
    assert _refused(await _refresh(http, rotated["refreshToken"]))
    assert (await _refresh(http, other_login["refreshToken"]))["errors"] == []


async def test_logout_revokes_the_refresh_token(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    first = await tokens_for(http, user.username, PASSWORD)
    rotated = await _refresh(http, first["refreshToken"])
    # when
    response = await post(http, LOGOUT, {"refreshToken": rotated["refreshToken"]}, token=rotated["accessToken"])
    # then
    assert response.json() == {"data": {"logout": {"errors": []}}}
    assert _refused(await _refresh(http, rotated["refreshToken"]))


async def test_an_unknown_refresh_token_is_refused(http: httpx.AsyncClient) -> None:
    # when
    payload = await _refresh(http, "made-up-refresh-token")
    # then
    assert _refused(payload)


async def test_an_expired_refresh_token_is_refused(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    first = await tokens_for(http, user.username, PASSWORD)
    async with runtime.sessionmaker() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_refresh_token(first["refreshToken"]))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        await session.commit()
    # when
    payload = await _refresh(http, first["refreshToken"])
    # then
    assert _refused(payload)


async def test_refresh_tokens_are_stored_hashed(http: httpx.AsyncClient, runtime: Runtime) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    # when
    payload = await tokens_for(http, user.username, PASSWORD)
    # then
    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(RefreshToken.token_hash).where(RefreshToken.user_id == user.id))).all()
    assert stored == [hash_refresh_token(payload["refreshToken"])]
