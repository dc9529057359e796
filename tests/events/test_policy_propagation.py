"""A role granted or revoked through one API process reaches every other process's authorizer
over the events bus, within a second and without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from events_support import VIEWER, Grant, RoleGrants, eventually, subscriber_count, user_id, wait_for_subscribers

from authz.rules import subject
from backend.accounts.roles import POLICY_CHANNEL
from backend.app import Runtime, build_runtime, create_app
from backend.settings import Settings

PROPAGATION_SECONDS = 1.0
GRANTEE = "supervisor.south"  # supervisor of branch South: sees DEMO-C only
GRANTED_ROLE = "supervisor"

ESTATES = """
query Estates { estates(first: 50) { edges { node { code } } } }
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def runtime_b(settings: Settings, runtime: Runtime) -> AsyncIterator[Runtime]:
    """A second API process on the same database and Redis, listening for policy changes."""
    before = await subscriber_count(runtime.redis, POLICY_CHANNEL)
    second = await build_runtime(settings)
    await wait_for_subscribers(runtime.redis, POLICY_CHANNEL, more_than=before)
    yield second
    await second.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http_b(settings: Settings, runtime_b: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime_b), client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://api-b.test") as client:
        yield client


async def _estates_through_b(http_b: httpx.AsyncClient, token: str) -> set[str]:
    response = await http_b.post("/graphql", json={"query": ESTATES}, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return {edge["node"]["code"] for edge in body["data"]["estates"]["edges"]}


async def _north_supervisor_grant(as_user: Any) -> Grant:
    grantee = (await (await as_user(GRANTEE)).data(VIEWER))["viewer"]
    north = (await (await as_user("manager.north")).data(VIEWER))["viewer"]["roles"][0]["orgUnit"]
    assert north["name"] == "North", north
    return Grant(grantee["id"], GRANTED_ROLE, north["id"])


async def _holds_in_b(runtime: Runtime, runtime_b: Runtime, username: str, role: str) -> set[str]:
    """The org-unit paths where process B's authorizer has ``username`` holding ``role``."""
    sub = subject(await user_id(runtime, username))
    return {path for held, path in runtime_b.authorizer.grants(sub) if held == role}


async def test_a_grant_through_process_a_reaches_process_b_within_a_second(
    runtime: Runtime, runtime_b: Runtime, http_b: httpx.AsyncClient, as_user: Any, role_grants: RoleGrants
) -> None:
    # given
    grant = await _north_supervisor_grant(as_user)
    token = (await as_user(GRANTEE)).token
    held_before = await _holds_in_b(runtime, runtime_b, GRANTEE, GRANTED_ROLE)
    assert await _estates_through_b(http_b, token) == {"DEMO-C"}
    # when
    await role_grants.grant(grant)  # through process A's app
    started = asyncio.get_running_loop().time()

    # then
    async def b_sees_the_grant() -> bool:
        return len(await _holds_in_b(runtime, runtime_b, GRANTEE, GRANTED_ROLE)) == len(held_before) + 1

    await eventually(b_sees_the_grant, within=PROPAGATION_SECONDS, message="process B never saw the grant")
    assert asyncio.get_running_loop().time() - started < PROPAGATION_SECONDS
    assert await _estates_through_b(http_b, token) == {"DEMO-A", "DEMO-B", "DEMO-C"}


async def test_a_revoke_through_process_a_reaches_process_b_within_a_second(
    runtime: Runtime, runtime_b: Runtime, http_b: httpx.AsyncClient, as_user: Any, role_grants: RoleGrants
) -> None:
    # given a grant that process B already enforces
    grant = await _north_supervisor_grant(as_user)
    token = (await as_user(GRANTEE)).token
    held_before = await _holds_in_b(runtime, runtime_b, GRANTEE, GRANTED_ROLE)
    await role_grants.grant(grant)

    async def b_holds(count: int) -> bool:
        return len(await _holds_in_b(runtime, runtime_b, GRANTEE, GRANTED_ROLE)) == count

    await eventually(lambda: b_holds(len(held_before) + 1), within=PROPAGATION_SECONDS)
    assert await _estates_through_b(http_b, token) == {"DEMO-A", "DEMO-B", "DEMO-C"}
    # when
    await role_grants.revoke(grant)  # through process A's app
    # then
    await eventually(lambda: b_holds(len(held_before)), within=PROPAGATION_SECONDS, message="B kept the grant")
    assert await _estates_through_b(http_b, token) == {"DEMO-C"}
