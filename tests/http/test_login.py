"""Logging in: no user enumeration, throttling per account and per address, argon2id hashes
at today's parameters (old ones upgraded on the next login)."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import argon2
import httpx
import pytest_asyncio
from http_testlib import (
    client_at,
    create_user,
    forget_login_failures,
    login,
    new_ip,
    new_username,
    stored_hash,
)

from backend.app import Runtime

PASSWORD = "login-test-password"
WRONG = "not-the-password"

# OWASP's minimum for argon2id: 19 MiB, two passes, one lane.
MIN_MEMORY_KIB = 19 * 1024
MIN_TIME_COST = 2


@pytest_asyncio.fixture
async def throttle_counters(runtime: Runtime) -> AsyncIterator[None]:
    """The failures these tests record would lock their accounts and addresses for a minute."""
    yield
    await forget_login_failures(runtime)


async def _timed_login(client: httpx.AsyncClient, username: str, password: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    body = await login(client, username, password)
    return time.perf_counter() - started, body


def _rate_limited(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    extensions: dict[str, Any] = error["extensions"]
    return extensions


async def test_wrong_password_and_unknown_user_answer_alike(runtime: Runtime, throttle_counters: None) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    async with client_at(runtime, new_ip()) as client:
        # when
        wrong_password = await login(client, user.username, WRONG)
        unknown_user = await login(client, new_username(), WRONG)
    # then
    assert wrong_password == unknown_user
    assert wrong_password == {
        "data": {
            "login": {
                "accessToken": None,
                "refreshToken": None,
                "expiresAt": None,
                "viewer": None,
                "errors": [{"field": None, "code": "INVALID_CREDENTIALS", "message": "Wrong username or password."}],
            }
        }
    }


async def test_a_disabled_account_answers_like_a_wrong_password(runtime: Runtime, throttle_counters: None) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD, is_active=False)
    async with client_at(runtime, new_ip()) as client:
        # when
        right_password = await login(client, user.username, PASSWORD)
        unknown_user = await login(client, new_username(), PASSWORD)
    # then
    assert right_password == unknown_user


async def test_wrong_password_and_unknown_user_take_similar_time(runtime: Runtime, throttle_counters: None) -> None:
    # given: interleaved, within both throttles (5 failures on the account, 11 from the address)
    user = await create_user(runtime, password=PASSWORD)
    wrong_password: list[float] = []
    unknown_user: list[float] = []
    async with client_at(runtime, new_ip()) as client:
        await login(client, new_username(), WRONG)  # the first unknown user also makes the dummy hash
        # when
        for _ in range(5):
            wrong_password.append((await _timed_login(client, user.username, WRONG))[0])
            unknown_user.append((await _timed_login(client, new_username(), WRONG))[0])
    # then
    ratio = statistics.median(wrong_password) / statistics.median(unknown_user)
    assert 0.5 <= ratio <= 2.0, (wrong_password, unknown_user)


async def test_the_sixth_failure_in_a_minute_locks_the_account(runtime: Runtime, throttle_counters: None) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    async with client_at(runtime, new_ip()) as client:
        failures = [await login(client, user.username, WRONG) for _ in range(5)]
        # when: the right password, from the same address and from another one
        locked = await login(client, user.username, PASSWORD)
    async with client_at(runtime, new_ip()) as elsewhere:
        locked_elsewhere = await login(elsewhere, user.username, PASSWORD)
    # then
    assert all(body["data"]["login"]["errors"][0]["code"] == "INVALID_CREDENTIALS" for body in failures)
    for body in (locked, locked_elsewhere):
        extensions = _rate_limited(body)
        assert isinstance(extensions["retryAfter"], int)
        assert 1 <= extensions["retryAfter"] <= 60


async def test_a_successful_login_clears_the_account_failures(runtime: Runtime, throttle_counters: None) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    async with client_at(runtime, new_ip()) as client:
        for _ in range(4):
            await login(client, user.username, WRONG)
        await login(client, user.username, PASSWORD)
        for _ in range(4):
            await login(client, user.username, WRONG)
        # when
        body = await login(client, user.username, PASSWORD)
    # then
    assert body["data"]["login"]["errors"] == []
    assert body["data"]["login"]["accessToken"]


async def test_twenty_failures_from_an_address_lock_it_for_every_account(
    runtime: Runtime, throttle_counters: None
) -> None:
    # given: twenty failures, one per made-up username, so no account throttle is reached
    user = await create_user(runtime, password=PASSWORD)
    address = new_ip()
    async with client_at(runtime, address) as client:
        failures = [await login(client, new_username(), WRONG) for _ in range(20)]
        # when
        locked = await login(client, user.username, PASSWORD)
    async with client_at(runtime, new_ip()) as elsewhere:
        elsewhere_body = await login(elsewhere, user.username, PASSWORD)
    # then
    assert all(body["data"]["login"]["errors"][0]["code"] == "INVALID_CREDENTIALS" for body in failures)
    assert 1 <= _rate_limited(locked)["retryAfter"] <= 60
    assert elsewhere_body["data"]["login"]["errors"] == []


async def test_stored_hashes_are_argon2id_with_owasp_parameters(runtime: Runtime, throttle_counters: None) -> None:
    # given
    user = await create_user(runtime, password=PASSWORD)
    # when
    hashes = [await stored_hash(runtime, user.username), await stored_hash(runtime, "admin")]
    # then
    for password_hash in hashes:
        parameters = argon2.extract_parameters(password_hash)
        assert parameters.type is argon2.Type.ID
        assert parameters.memory_cost >= MIN_MEMORY_KIB
        assert parameters.time_cost >= MIN_TIME_COST
        assert parameters.parallelism == 1


async def test_a_weaker_hash_is_upgraded_on_login(runtime: Runtime, throttle_counters: None) -> None:
    # given: a hash from before the parameters were raised
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    user = await create_user(runtime, password=PASSWORD, password_hash=weak)
    async with client_at(runtime, new_ip()) as client:
        # when
        body = await login(client, user.username, PASSWORD)
    # then
    assert body["data"]["login"]["errors"] == []
    upgraded = await stored_hash(runtime, user.username)
    assert upgraded != weak
    parameters = argon2.extract_parameters(upgraded)
    assert parameters.memory_cost >= MIN_MEMORY_KIB
    assert parameters.time_cost >= MIN_TIME_COST
    assert parameters.parallelism == 1
    assert argon2.PasswordHasher().verify(upgraded, PASSWORD)


async def test_a_wrong_password_leaves_a_weaker_hash_alone(runtime: Runtime, throttle_counters: None) -> None:
    # given
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    user = await create_user(runtime, password=PASSWORD, password_hash=weak)
    async with client_at(runtime, new_ip()) as client:
        # when
        await login(client, user.username, WRONG)
    # then
    assert await stored_hash(runtime, user.username) == weak
