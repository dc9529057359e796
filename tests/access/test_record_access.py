"""record_access: swipes are appended once, linked to the credential's holder or the visitor's
pass, with the backend's finding as reason; five denials in 60 s raise one alarm."""

from __future__ import annotations

import datetime as dt
from typing import Any

from access_support import Gate, MakeGate, People
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql

from backend.access.ingest import ACCESS_CHANNEL, DENIED_BURST_TYPE, record_access
from backend.access.models import AccessEvent, AccessResult, VisitorPass, VisitorPassKind
from backend.alarms.models import Alarm, AlarmSeverity, AlarmStatus
from backend.alarms.service import ALARM_CHANNEL
from backend.db import utcnow
from backend.events import Event, InProcessEventBus
from backend.notifications.models import Notification
from backend.property.models import Unit
from backend.tickets.models import Ticket, TicketKind, TicketPriority


async def _record(runtime: Any, gate: Gate, message: Any) -> AccessEvent | None:
    async with runtime.sessionmaker() as session, session.begin():
        event = await record_access(session, gate.device, message)
        if event is not None:
            session.expunge(event)
        return event


async def _events(runtime: Any, gate: Gate) -> list[AccessEvent]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(AccessEvent).where(AccessEvent.device_id == gate.device.device_id).order_by(AccessEvent.id)
        )
        return list(rows.all())


async def _alarms(runtime: Any, gate: Gate) -> list[Alarm]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(Alarm).where(Alarm.device_id == gate.device.device_id))
        return list(rows.all())


async def _pass(runtime: Any, people: People, gate: Gate, **values: Any) -> str:
    async with runtime.sessionmaker() as session, session.begin():
        unit = await session.scalar(select(Unit).where(Unit.estate_id == gate.estate_id).limit(1))
        assert unit is not None
        code = f"T{utcnow().strftime('%H%M%S%f')}"
        visitor_pass = VisitorPass(estate_id=gate.estate_id, unit_id=unit.id, kind=VisitorPassKind.INVITED, code=code,
                                   visitor_name="访客", **values)  # fmt: skip
        session.add(visitor_pass)
        await session.flush()
        people.pass_ids.append(visitor_pass.id)
    return code


async def test_a_card_swipe_is_linked_to_its_holder(runtime: Any, make_gate: MakeGate, people: People) -> None:
    # given
    gate = await make_gate("DEMO-A")
    person_id, reference = await people.with_card()
    # when
    event = await _record(runtime, gate, gate.message(reference, result="granted"))
    # then
    assert event is not None
    assert (event.person_id, event.access_point_id, event.estate_id) == (person_id, gate.point.id, gate.estate_id)
    assert event.credential_id is not None
    assert event.visitor_pass_id is None
    assert event.result is AccessResult.GRANTED
    assert event.reason is None
    assert event.credential_ref == reference


async def test_a_pass_code_is_linked_to_the_pass(runtime: Any, make_gate: MakeGate, people: People) -> None:
    # given
    gate = await make_gate("DEMO-A")
    now = utcnow()
    code = await _pass(
        runtime, people, gate, valid_from=now - dt.timedelta(hours=1), valid_until=now + dt.timedelta(hours=1)
    )
    # when
    event = await _record(runtime, gate, gate.message(f"qr:{code}"))
    # then
    assert event is not None
    assert event.visitor_pass_id == people.pass_ids[-1]
    assert event.person_id is None
    assert event.reason is None


async def test_an_unknown_credential_is_recorded_with_its_reason(runtime: Any, make_gate: MakeGate) -> None:
    # given
    gate = await make_gate("DEMO-A")
    # when
    event = await _record(runtime, gate, gate.message("card:NOBODY-HAS-THIS", result="denied"))
    # then
    assert event is not None
    assert (event.person_id, event.visitor_pass_id, event.credential_id) == (None, None, None)
    assert event.result is AccessResult.DENIED
    assert event.reason == "unknown_credential"


async def test_expired_and_revoked_credentials_are_linked_with_the_finding(
    runtime: Any, make_gate: MakeGate, people: People
) -> None:
    # given
    gate = await make_gate("DEMO-A")
    now = utcnow()
    expired_person, expired = await people.with_card(valid_until=now - dt.timedelta(days=1))
    revoked_person, revoked = await people.with_card(revoked_at=now - dt.timedelta(minutes=1))
    future_person, future = await people.with_card(valid_from=now + dt.timedelta(days=1))
    # when
    events = [await _record(runtime, gate, gate.message(ref, result="denied")) for ref in (expired, revoked, future)]
    # then
    assert [(e.person_id, e.reason) for e in events if e is not None] == [
        (expired_person, "credential_expired"),
        (revoked_person, "credential_revoked"),
        (future_person, "credential_not_yet_valid"),
    ]


async def test_the_controllers_reason_wins_over_the_finding(runtime: Any, make_gate: MakeGate) -> None:
    # given
    gate = await make_gate("DEMO-A")
    # when
    event = await _record(runtime, gate, gate.message("card:NOBODY", result="denied", reason="anti_passback"))
    # then
    assert event is not None
    assert event.reason == "anti_passback"


async def test_a_revoked_or_expired_pass_is_linked_and_the_controllers_denial_recorded(
    runtime: Any, make_gate: MakeGate, people: People
) -> None:
    # given
    gate = await make_gate("DEMO-A")
    now = utcnow()
    revoked = await _pass(runtime, people, gate, valid_from=now - dt.timedelta(hours=1),
                          valid_until=now + dt.timedelta(hours=1), revoked_at=now - dt.timedelta(minutes=5))  # fmt: skip
    expired = await _pass(runtime, people, gate, valid_from=now - dt.timedelta(days=2),
                          valid_until=now - dt.timedelta(days=1))  # fmt: skip
    # when
    first = await _record(runtime, gate, gate.message(f"qr:{revoked}", result="denied"))
    second = await _record(runtime, gate, gate.message(f"qr:{expired}", result="denied"))
    # then
    assert first is not None
    assert second is not None
    assert (first.visitor_pass_id, first.result, first.reason) == (
        people.pass_ids[0],
        AccessResult.DENIED,
        "pass_revoked",
    )
    assert (second.visitor_pass_id, second.reason) == (people.pass_ids[1], "pass_expired")


async def test_a_repeated_msg_id_is_recorded_once(runtime: Any, make_gate: MakeGate) -> None:
    # given
    gate = await make_gate("DEMO-A")
    message = gate.message("card:NOBODY", msg_id="same-id-1")
    first = await _record(runtime, gate, message)
    # when
    again = await _record(runtime, gate, gate.message("card:NOBODY", msg_id="same-id-1"))
    # then
    assert first is not None
    assert again is None
    assert len(await _events(runtime, gate)) == 1


async def test_five_denials_within_a_minute_raise_one_alarm(runtime: Any, make_gate: MakeGate) -> None:
    # given
    gate = await make_gate("DEMO-A")
    start = utcnow()
    # when
    for i in range(5):
        await _record(
            runtime, gate, gate.message("card:NOBODY", result="denied", at=start + dt.timedelta(seconds=10 * i))
        )
    # then
    alarms = await _alarms(runtime, gate)
    assert len(alarms) == 1
    alarm = alarms[0]
    assert (alarm.type, alarm.severity, alarm.status) == (DENIED_BURST_TYPE, AlarmSeverity.MAJOR, AlarmStatus.ACTIVE)
    assert (alarm.access_point_id, alarm.occurrences, alarm.estate_id) == (gate.point.id, 1, gate.estate_id)


async def test_more_denials_count_as_occurrences(runtime: Any, make_gate: MakeGate) -> None:
    # given
    gate = await make_gate("DEMO-A")
    start = utcnow()
    # when
    for i in range(8):
        await _record(runtime, gate, gate.message("card:NOBODY", result="denied", at=start + dt.timedelta(seconds=i)))
    # then
    alarms = await _alarms(runtime, gate)
    assert [(a.type, a.occurrences) for a in alarms] == [(DENIED_BURST_TYPE, 4)]


async def test_four_denials_or_five_spread_over_more_than_a_minute_raise_nothing(
    runtime: Any, make_gate: MakeGate
) -> None:
    # given
    gate = await make_gate("DEMO-A")
    spread = await make_gate("DEMO-A")
    start = utcnow()
    # when
    for i in range(4):
        await _record(runtime, gate, gate.message("card:NOBODY", result="denied", at=start + dt.timedelta(seconds=i)))
        await _record(runtime, gate, gate.message("card:X", result="granted", at=start + dt.timedelta(seconds=i)))
    for i in range(5):
        await _record(runtime, spread, spread.message("card:NOBODY", result="denied",
                                                      at=start + dt.timedelta(seconds=16 * i)))  # fmt: skip
    # then
    assert await _alarms(runtime, gate) == []
    assert await _alarms(runtime, spread) == []
    assert len(await _events(runtime, gate)) == 8


async def test_the_burst_check_is_one_statement_on_the_point_time_index(runtime: Any, make_gate: MakeGate) -> None:
    # given
    gate = await make_gate("DEMO-A")
    await _record(runtime, gate, gate.message("card:NOBODY", result="denied"))
    query = select(func.count()).where(
        AccessEvent.access_point_id == gate.point.id,
        AccessEvent.occurred_at > utcnow() - dt.timedelta(seconds=60),
        AccessEvent.occurred_at <= utcnow(),
        AccessEvent.result == AccessResult.DENIED,
    )
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    # when: the planner is told not to prefer a scan of the (test-sized) table
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join((await session.execute(text("EXPLAIN " + sql))).scalars().all())
    # then
    assert "ix_access_events_point_time" in plan


async def test_the_demo_access_seed_is_idempotent(runtime: Any) -> None:
    # given
    from backend.seed_access import DEMO_PASS_CODE, HISTORY_EVENTS, ensure_demo_access

    async with runtime.sessionmaker() as session, session.begin():
        first = await ensure_demo_access(session)
    # when
    async with runtime.sessionmaker() as session, session.begin():
        second = await ensure_demo_access(session)
        passes = await session.scalar(select(func.count()).where(VisitorPass.code == DEMO_PASS_CODE))
        history = await session.scalar(select(func.count()).where(AccessEvent.msg_id.like("demo-history-%")))
    # then
    assert first in (0, HISTORY_EVENTS)
    assert second == 0
    assert passes == 1
    assert history == HISTORY_EVENTS


async def test_a_burst_goes_through_the_alarm_automation(runtime: Any, make_gate: MakeGate) -> None:
    # given a gate and a bus that keeps what is published
    gate = await make_gate("DEMO-A")
    bus = InProcessEventBus()
    published: list[tuple[str, Event]] = []
    original = bus.publish

    async def keep(channel: str, event: Event) -> None:
        published.append((channel, event))
        await original(channel, event)

    bus.publish = keep  # type: ignore[method-assign]
    start = utcnow()
    # when five denials are recorded with the bus (as the ingest records them)
    for i in range(5):
        async with runtime.sessionmaker() as session, session.begin():
            denied = gate.message("card:NOBODY", result="denied", at=start + dt.timedelta(seconds=i))
            await record_access(session, gate.device, denied, bus=bus)
    # then the MAJOR burst alarm opened its security work order and was published once, RAISED
    (alarm,) = await _alarms(runtime, gate)
    assert alarm.ticket_id is not None
    async with runtime.sessionmaker() as session:
        ticket = await session.get_one(Ticket, alarm.ticket_id)
        told = await session.scalar(
            select(func.count()).select_from(Notification).where(Notification.kind == "alarm_raised",
                                                                 Notification.data["type"].astext == DENIED_BURST_TYPE)
        )  # fmt: skip
    assert (ticket.kind, ticket.priority) == (TicketKind.ALARM, TicketPriority.HIGH)
    assert told is not None
    assert told >= 1
    alarm_events = [e for c, e in published if c == ALARM_CHANNEL]
    assert [(e["alarmId"], e["kind"]) for e in alarm_events] == [(alarm.id, "RAISED")]
    assert len([1 for c, _e in published if c == ACCESS_CHANNEL]) == 5
