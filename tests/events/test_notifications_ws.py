"""Notifications over a real websocket on a real uvicorn server: the graphql-transport-ws
handshake and its refusals, then a role grant travelling notify() → outbox → relay → arq
worker → events bus → the grantee's ``notificationAdded`` subscription, and no one else's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from arq.connections import ArqRedis
from events_support import (
    NOTIFICATION_ADDED,
    TRANSPORT_WS,
    VIEWER,
    Grant,
    RoleGrants,
    drain_outbox,
    graphql_ws,
    next_payload,
    nothing_arrives,
    notification_channel,
    subscribe,
    subscriber_count,
    user_id,
    wait_for_subscribers,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from backend.accounts.tokens import issue_access_token
from backend.app import Runtime
from backend.settings import Settings
from workers.runtime import WorkerRuntime

GRANTEE = "tech.a"  # technician at office N1; granted security_guard there for a while
BYSTANDER = "cs.a"
GRANTED_ROLE = "security_guard"
GRANTED_TITLE = f"You were granted the role {GRANTED_ROLE}"

UNREAD_NOTIFICATIONS = """
query Unread { viewer { unreadNotificationCount notifications(first: 50, status: UNREAD) {
  edges { node { id kind title readAt } } } } }
"""

MARK_NOTIFICATIONS_READ = """
mutation MarkRead($ids: [ID!]) { markNotificationsRead(input: {ids: $ids}) { markedCount errors { code } } }
"""


async def _grant_to(as_user: Any, username: str) -> Grant:
    """The grant of GRANTED_ROLE at the user's own office (where they hold their first role)."""
    viewer = (await (await as_user(username)).data(VIEWER))["viewer"]
    return Grant(viewer["id"], GRANTED_ROLE, viewer["roles"][0]["orgUnit"]["id"])


async def _subscribed(runtime: Runtime, ws: Any, username: str) -> None:
    """Subscribe to notificationAdded and wait until the server listens on the user's channel."""
    channel = notification_channel(await user_id(runtime, username))
    before = await subscriber_count(runtime.redis, channel)
    await subscribe(ws, NOTIFICATION_ADDED)
    await wait_for_subscribers(runtime.redis, channel, more_than=before)


async def _close_code(ws: Any) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), timeout=5)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


async def test_connection_init_with_a_valid_token_is_acknowledged(live_api: str, as_user: Any) -> None:
    # given
    token = (await as_user("owner.a1")).token
    async with connect(f"ws://{live_api}/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # when
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        # then
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=5))["type"] == "connection_ack"
        assert ws.subprotocol == TRANSPORT_WS


def _expired_token(settings: Settings) -> str:
    expired = settings.model_copy(update={"access_token_ttl_seconds": -120})
    return issue_access_token(expired, user_id=1, username="admin", kind="STAFF", person_id=None)[0]


def _foreign_token(settings: Settings) -> str:
    other = settings.model_copy(update={"secret_key": "another-installations-secret-key-of-some-length"})
    return issue_access_token(other, user_id=1, username="admin", kind="STAFF", person_id=None)[0]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda _s: {"Authorization": "Bearer not-a-token"}, id="garbage"),
        pytest.param(lambda s: {"Authorization": f"Bearer {_expired_token(s)}"}, id="expired"),
        pytest.param(lambda s: {"Authorization": f"Bearer {_foreign_token(s)}"}, id="foreign-key"),
        pytest.param(lambda s: {"Authorization": f"Basic {_expired_token(s)}"}, id="not-bearer"),
        pytest.param(lambda _s: {}, id="missing"),
    ],
)
async def test_connection_init_without_a_valid_token_is_closed_with_4403(
    live_api: str, settings: Settings, payload: Any
) -> None:
    # given
    async with connect(f"ws://{live_api}/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # when
        await ws.send(json.dumps({"type": "connection_init", "payload": payload(settings)}))
        # then
        assert await _close_code(ws) == 4403


async def test_subscribing_before_connection_init_is_closed_with_4401(live_api: str) -> None:
    # given
    async with connect(f"ws://{live_api}/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        # when
        await subscribe(ws, NOTIFICATION_ADDED)
        # then
        assert await _close_code(ws) == 4401


async def test_the_legacy_graphql_ws_subprotocol_is_refused(live_api: str) -> None:
    # given
    legacy = Subprotocol("graphql-ws")
    # when
    async with connect(f"ws://{live_api}/graphql", subprotocols=[legacy]) as ws:
        # then: no subprotocol is agreed and the server closes at once
        assert ws.subprotocol is None
        assert await _close_code(ws) == 4406


async def test_a_granted_role_is_notified_to_the_grantee_over_the_websocket(
    live_api: str,
    runtime: Runtime,
    worker_runtime: WorkerRuntime,
    arq: ArqRedis,
    as_user: Any,
    role_grants: RoleGrants,
) -> None:
    # given
    grant = await _grant_to(as_user, GRANTEE)
    await drain_outbox(worker_runtime, arq)  # what earlier work owes (the demo's tickets) is delivered first
    async with graphql_ws(f"ws://{live_api}/graphql", (await as_user(GRANTEE)).token) as ws:
        await _subscribed(runtime, ws, GRANTEE)
        # when
        await role_grants.grant(grant)
        await drain_outbox(worker_runtime, arq)
        # then
        payload = await next_payload(ws, within=5)
    assert "errors" not in payload, payload
    notification = payload["data"]["notificationAdded"]
    assert notification["kind"] == "role_granted"
    assert notification["title"] == GRANTED_TITLE
    assert notification["readAt"] is None


async def test_another_users_subscription_receives_nothing(
    live_api: str,
    runtime: Runtime,
    worker_runtime: WorkerRuntime,
    arq: ArqRedis,
    as_user: Any,
    role_grants: RoleGrants,
) -> None:
    # given both users subscribed
    grant = await _grant_to(as_user, GRANTEE)
    await drain_outbox(worker_runtime, arq)  # what earlier work owes (the demo's tickets) is delivered first
    url = f"ws://{live_api}/graphql"
    async with (
        graphql_ws(url, (await as_user(GRANTEE)).token) as grantee,
        graphql_ws(url, (await as_user(BYSTANDER)).token) as bystander,
    ):
        await _subscribed(runtime, grantee, GRANTEE)
        await _subscribed(runtime, bystander, BYSTANDER)
        # when
        await role_grants.grant(grant)
        await drain_outbox(worker_runtime, arq)
        # then the grantee hears of it, the bystander does not
        payload = await next_payload(grantee, within=5)
        assert payload["data"]["notificationAdded"]["title"] == GRANTED_TITLE
        assert await nothing_arrives(bystander, within=1.0)


async def test_viewer_lists_the_notification_and_marks_it_read(
    worker_runtime: WorkerRuntime, arq: ArqRedis, as_user: Any, role_grants: RoleGrants
) -> None:
    # given a grantee with nothing unread, then granted a role
    grantee = await as_user(GRANTEE)
    await grantee.data(MARK_NOTIFICATIONS_READ, {"ids": None})
    await role_grants.grant(await _grant_to(as_user, GRANTEE))
    await drain_outbox(worker_runtime, arq)
    viewer = (await grantee.data(UNREAD_NOTIFICATIONS))["viewer"]
    (edge,) = viewer["notifications"]["edges"]
    assert (edge["node"]["title"], edge["node"]["readAt"]) == (GRANTED_TITLE, None)
    assert viewer["unreadNotificationCount"] == 1
    # when
    marked = (await grantee.data(MARK_NOTIFICATIONS_READ, {"ids": [edge["node"]["id"]]}))["markNotificationsRead"]
    # then
    assert marked == {"markedCount": 1, "errors": []}
    viewer = (await grantee.data(UNREAD_NOTIFICATIONS))["viewer"]
    assert viewer["unreadNotificationCount"] == 0
    assert viewer["notifications"]["edges"] == []


async def test_a_user_cannot_mark_another_users_notification_read(as_user: Any, role_grants: RoleGrants) -> None:
    # given an unread notification of the grantee
    grantee = await as_user(GRANTEE)
    await grantee.data(MARK_NOTIFICATIONS_READ, {"ids": None})
    await role_grants.grant(await _grant_to(as_user, GRANTEE))
    (edge,) = (await grantee.data(UNREAD_NOTIFICATIONS))["viewer"]["notifications"]["edges"]
    # when
    marked = await (await as_user(BYSTANDER)).data(MARK_NOTIFICATIONS_READ, {"ids": [edge["node"]["id"]]})
    # then
    assert marked["markNotificationsRead"]["markedCount"] == 0
    assert (await grantee.data(UNREAD_NOTIFICATIONS))["viewer"]["unreadNotificationCount"] == 1
