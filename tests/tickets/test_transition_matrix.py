"""Every status × every step × every role, over GraphQL.

The ticket is on owner.a1's flat in DEMO-A, reported by owner.a1, assigned to tech.a from
ASSIGNED on. For each cell a fresh ticket is brought to the status, then the role tries the step:

    allowed  — the effect happened: the target status, one event of the step's type, version + 1
    illegal  — ILLEGAL_TRANSITION in the payload, nothing changed (status, version, events)
    forbidden / not found / unauthenticated — FORBIDDEN or UNAUTHENTICATED at the top level, or
               NOT_FOUND in the payload (the ticket is outside the caller's scope); nothing changed
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from tickets_support import (
    ASSIGN,
    CANCEL,
    CLOSE,
    COMMENT,
    HOLD,
    RATE,
    REOPEN,
    RESOLVE,
    START,
    Demo,
    make_ticket,
    stored,
    tid,
)

from backend.tickets.models import TicketStatus

S = TicketStatus

ROLES = (
    "admin",
    "manager.north",
    "cs.a",
    "finance.north",
    "tech.a",
    "guard.a",
    "supervisor.north",
    "supervisor.south",
    "owner.a1",
    "owner.a2",
    None,
)


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    ILLEGAL = "illegal"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    UNAUTHENTICATED = "unauthenticated"


# step → (document, legal source statuses, target status (None: unchanged), event type)
STEPS: dict[str, tuple[str, frozenset[TicketStatus], TicketStatus | None, str]] = {
    "assign": (ASSIGN, frozenset({S.NEW, S.ASSIGNED}), S.ASSIGNED, "ASSIGNED"),
    "start": (START, frozenset({S.ASSIGNED, S.ON_HOLD}), S.IN_PROGRESS, "STARTED"),
    "hold": (HOLD, frozenset({S.IN_PROGRESS}), S.ON_HOLD, "HELD"),
    "resolve": (RESOLVE, frozenset({S.IN_PROGRESS}), S.RESOLVED, "RESOLVED"),
    "close": (CLOSE, frozenset({S.RESOLVED}), S.CLOSED, "CLOSED"),
    "cancel": (CANCEL, frozenset({S.NEW, S.ASSIGNED}), S.CANCELLED, "CANCELLED"),
    "reopen": (REOPEN, frozenset({S.RESOLVED}), S.ASSIGNED, "REOPENED"),
    "rate": (RATE, frozenset({S.RESOLVED, S.CLOSED}), None, "RATED"),
    "comment": (COMMENT, frozenset(S), None, "COMMENTED"),
}

# Who holds which step (authz/policy.csv): in the estate, as the assignee, as the reporter.
IN_ESTATE = {
    "admin": set(STEPS) - {"rate"},
    "manager.north": set(STEPS) - {"rate"},
    "cs.a": {"assign", "close", "cancel", "comment"},
    "supervisor.north": {"comment"},  # reads the estate's tickets: may comment, moves nothing
}
AS_ASSIGNEE = {"start", "hold", "resolve", "comment"}  # tech.a
AS_REPORTER = {"cancel", "reopen", "rate", "comment"}  # owner.a1 (cancel: only NEW)
RESIDENT_STEPS = AS_REPORTER  # owner.a2 holds them too, but cannot see the ticket


def expected(role: str | None, step: str, status: TicketStatus) -> Verdict:
    _doc, sources, _target, _event = STEPS[step]
    if role is None:
        return Verdict.UNAUTHENTICATED
    if role in IN_ESTATE:
        if step == "rate" and role in ("admin", "manager.north"):
            return Verdict.FORBIDDEN  # they hold rate_own, but did not report it
        if step not in IN_ESTATE[role]:
            return Verdict.FORBIDDEN
    elif role == "tech.a":
        if step not in AS_ASSIGNEE:
            return Verdict.FORBIDDEN
        if status is S.NEW:
            return Verdict.NOT_FOUND  # not assigned to them: not theirs to see
    elif role == "owner.a1":
        if step not in AS_REPORTER:
            return Verdict.FORBIDDEN
        if step == "cancel" and status is not S.NEW:
            return Verdict.ILLEGAL
    elif role == "owner.a2":
        return Verdict.NOT_FOUND if step in RESIDENT_STEPS else Verdict.FORBIDDEN
    elif role == "supervisor.south":  # reads tickets, but not of this estate
        return Verdict.NOT_FOUND if step == "comment" else Verdict.FORBIDDEN
    else:  # finance, guard: no ticket permission at all
        return Verdict.FORBIDDEN
    return Verdict.ALLOWED if status in sources else Verdict.ILLEGAL


def _input(step: str, ticket_id: int, demo: Demo) -> dict[str, Any]:
    values: dict[str, Any] = {"ticketId": tid(ticket_id)}
    values.update(
        {
            "assign": {"assigneeId": demo.gid("tech.a")},
            "hold": {"note": "等业主在家"},
            "resolve": {"resolution": "已疏通"},
            "close": {"returnVisitOutcome": "SATISFIED", "note": "业主满意"},
            "reopen": {"reason": "又漏了"},
            "rate": {"rating": 4, "comment": "及时"},
            "comment": {"text": "师傅下午到"},
            "cancel": {"note": "不需要了"},
        }.get(step, {})
    )
    return {"input": values}


def _verdict(body: dict[str, Any], field: str) -> tuple[Verdict, dict[str, Any] | None]:
    if body.get("errors"):
        codes = [e["extensions"]["code"] for e in body["errors"]]
        assert codes in (["FORBIDDEN"], ["UNAUTHENTICATED"]), body
        assert body.get("data") is None, body
        return Verdict(codes[0].lower()), None
    payload: dict[str, Any] = body["data"][field]
    codes = [e["code"] for e in payload["errors"]]
    if not codes:
        return Verdict.ALLOWED, payload
    assert codes in (["NOT_FOUND"], ["ILLEGAL_TRANSITION"]), payload
    return (Verdict.NOT_FOUND if codes == ["NOT_FOUND"] else Verdict.ILLEGAL), payload


@pytest.mark.parametrize("status", list(S), ids=[s.name for s in S])
@pytest.mark.parametrize("step", list(STEPS))
async def test_the_transition_matrix(as_user: Any, runtime: Any, demo: Demo, step: str, status: TicketStatus) -> None:
    document, _sources, target, event_type = STEPS[step]
    field = f"{step}Ticket"
    for role in ROLES:
        # given a fresh ticket in the status
        ticket_id = await make_ticket(runtime, demo, status)
        before = await stored(runtime, ticket_id)
        assert before.status is status
        client = await as_user(role)
        # when
        body = await client.execute(document, _input(step, ticket_id, demo))
        # then
        verdict, payload = _verdict(body, field)
        want = expected(role, step, status)
        cell = f"{role or 'anonymous'} {step} on {status.name}"
        assert verdict is want, f"{cell}: {verdict.value}, expected {want.value}: {body}"
        after = await stored(runtime, ticket_id)
        if verdict is Verdict.ALLOWED:
            assert payload is not None
            assert after.status is (target or status), cell
            event = "RESUMED" if (step, status) == ("start", S.ON_HOLD) else event_type
            assert after.events == [*before.events, event], cell
            assert after.version == before.version + (0 if step == "comment" else 1), cell
            assert payload["ticket"]["status"] == after.status.name, cell
            assert payload["ticket"]["events"][-1]["type"] == event, cell
            if step == "rate":
                assert after.rating == 4
        else:
            assert after == before, f"{cell}: changed although {verdict.value}"
