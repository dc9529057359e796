"""The accessEventAdded hub: one statement per swipe, whatever the number of subscribers, and the
swipe offered (the same object) only to the subscribers whose row scope and filter include it."""

from __future__ import annotations

from typing import Any

from access_support import MakeGate
from sqlalchemy import select

from authz.principal import Permissions, Principal
from backend.access.ingest import access_message, record_access
from backend.accounts.models import User
from backend.events import InProcessEventBus
from schema.access.live import AccessHub


async def _permissions(runtime: Any, username: str) -> Permissions:
    async with runtime.sessionmaker() as session:
        user = await session.scalar(select(User).where(User.username == username))
    assert user is not None
    principal = Principal(user_id=user.id, username=user.username, kind=user.kind.value, person_id=user.person_id)
    return Permissions(principal, runtime.authorizer)


async def test_one_statement_per_swipe_offered_to_whoever_may_see_it(
    runtime: Any, make_gate: MakeGate, count_statements: Any
) -> None:
    # given subscribers: two guards of DEMO-A, one of them filtering another gate; DEMO-C's
    # supervisor; the card's owner; another owner
    gate, other_gate = await make_gate("DEMO-A"), await make_gate("DEMO-A")
    hub = AccessHub(runtime.sessionmaker, InProcessEventBus())
    guard = hub.add(await _permissions(runtime, "guard.a"))
    guard_elsewhere = hub.add(await _permissions(runtime, "guard.a"), access_point_id=other_gate.point.id)
    south = hub.add(await _permissions(runtime, "supervisor.south"))
    owner = hub.add(await _permissions(runtime, "owner.a1"))
    other_owner = hub.add(await _permissions(runtime, "owner.a2"))
    # when owner.a1's card is swiped at the gate and the event dispatched
    async with runtime.sessionmaker() as session, session.begin():
        event = await record_access(session, gate.device, gate.message("card:A1000001"))
    assert event is not None
    count_statements.statements.clear()
    offered = await hub.dispatch(access_message(event))
    # then one statement loaded it, and the guard and the owner hold the very same swipe
    assert len(count_statements.statements) == 1
    assert offered == 2
    held = [guard.queue.get_nowait(), owner.queue.get_nowait()]
    assert held[0] is held[1]
    assert (held[0].id, held[0].access_point.name, held[0].estate.code) == (event.id, gate.point.name, "DEMO-A")
    assert all(s.queue.empty() for s in (guard_elsewhere, south, other_owner))
    # and the same event again is not dispatched twice
    assert await hub.dispatch(access_message(event)) == 0
    await hub.close()
