"""A live alarm event shows the alarm as the event left it when its message carries that state,
even when the alarm changed again before the hub loaded it (else the frame would announce the
first repeat with the second one's count and message)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alarms_support import estate_id

from backend.alarms.models import AlarmSeverity, AlarmStatus
from backend.alarms.service import AlarmChange, raise_alarm
from backend.events import InProcessEventBus
from schema.alarms.live import AlarmHub


async def _raise(runtime: Any, device: str, message: str) -> AlarmChange:
    async with runtime.sessionmaker() as session, session.begin():
        return await raise_alarm(session, estate_id=await estate_id(runtime, "DEMO-A"), device_id=device,
                                 type_="smoke", severity=AlarmSeverity.MAJOR, message=message)  # fmt: skip


async def test_an_event_shows_the_alarm_as_the_event_left_it(runtime: Any, devices: Callable[[], str]) -> None:
    # given an alarm raised ("first") and repeated ("second") before the hub loads the first event
    hub = AlarmHub(runtime.sessionmaker, InProcessEventBus())
    subscriber = hub.add(lambda _event: True)
    device = devices()
    first = await _raise(runtime, device, "first")
    first_message = first.message()  # as the ingest publishes it, with the state after the change
    second = await _raise(runtime, device, "second")
    # when the first event, carrying the alarm's state then, is dispatched, then the second one
    await hub.dispatch(first_message)
    await hub.dispatch(second.message())
    # then the first shows the alarm as raised, the second as repeated
    shown = [subscriber.queue.get_nowait() for _ in range(2)]
    assert [(e.kind.value, e.alarm.occurrences, e.alarm.message, e.alarm.version) for e in shown] == [
        ("RAISED", 1, "first", 1),
        ("UPDATED", 2, "second", 2),
    ]
    assert shown[0].alarm.status is AlarmStatus.ACTIVE
    assert shown[0].alarm.estate.code == "DEMO-A"  # relations as loaded
    await hub.close()


async def test_without_the_state_an_event_shows_the_alarm_as_loaded(runtime: Any, devices: Callable[[], str]) -> None:
    # given the same, with messages that do not carry the state (an older publisher)
    hub = AlarmHub(runtime.sessionmaker, InProcessEventBus())
    subscriber = hub.add(lambda _event: True)
    device = devices()
    first = await _raise(runtime, device, "first")
    await _raise(runtime, device, "second")
    # when the first event is dispatched
    await hub.dispatch({key: value for key, value in first.message().items() if key != "alarm"})
    # then it shows the alarm as it is when loaded: already repeated
    event = subscriber.queue.get_nowait()
    assert (event.kind.value, event.alarm.occurrences, event.alarm.message) == ("RAISED", 2, "second")
    await hub.close()
