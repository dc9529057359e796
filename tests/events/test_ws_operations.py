"""Queries over the websocket: each operation is its own unit of work on the connection."""

from __future__ import annotations

from typing import Any

from events_support import graphql_ws, next_payload, subscribe
from sqlalchemy import text

UNITS = "{ units(first: 2) { edges { node { code building { name } occupants { person { name } } } } } }"


async def _open_sessions(runtime: Any) -> int:
    async with runtime.engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in%'")
        )
    return int(count or 0)


async def test_queries_over_one_connection_answer_alike_and_leave_no_transaction_open(
    live_api: str, as_user: Any, runtime: Any
) -> None:
    # given
    token = (await as_user("owner.a1")).token
    async with graphql_ws(f"ws://{live_api}/graphql", token) as ws:
        # when
        answers = []
        for operation_id in ("q1", "q2"):
            await subscribe(ws, UNITS, operation_id=operation_id)
            answers.append(await next_payload(ws, within=5))
            await ws.recv()  # complete
        idle_in_transaction = await _open_sessions(runtime)
    # then
    assert answers[0] == answers[1]
    assert [e["node"]["code"] for e in answers[0]["data"]["units"]["edges"]] == ["1-1-101"]
    assert idle_in_transaction == 0
