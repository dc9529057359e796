"""Access events from the gate controllers (MQTT ``…/access``): recorded, linked, watched.

The controller decides GRANTED or DENIED; the backend records what it reported, linked to
whoever the credential belongs to: a person's :class:`Credential` (``card:``, ``qr:``,
``pin:``, ``face:``) or a visitor's pass by its code (``qr:<code>``). The link is made even
for an expired or revoked credential (the swipe was that card's); when the controller gave no
reason, the backend's own finding is kept (``unknown_credential``, ``credential_revoked``, …).

Five DENIED events at one access point within 60 s raise an ``access_denied_burst`` alarm
(MAJOR); every further denial inside the window counts as an occurrence of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.access.models import (
    AccessDirection,
    AccessEvent,
    AccessPoint,
    AccessResult,
    Credential,
    CredentialKind,
    VisitorPass,
)
from backend.alarms.automation import after_alarm_change
from backend.alarms.models import AlarmSeverity
from backend.alarms.service import AlarmChange, raise_alarm
from backend.devices.models import Device
from backend.events import EventBus, publish_after_commit
from iot.payloads import AccessPayload
from iot.subscriber import DeviceMessage

ACCESS_CHANNEL = "access_events"
DENIED_BURST_TYPE = "access_denied_burst"
DENIED_BURST_COUNT = 5
DENIED_BURST_WINDOW = dt.timedelta(seconds=60)
_REASON_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Holder:
    """Whom a credential reference belongs to, and what the backend finds wrong with it."""

    credential_id: int | None = None
    person_id: int | None = None
    visitor_pass_id: int | None = None
    problem: str | None = None  # unknown_credential, credential_revoked, credential_expired, …


@dataclass(frozen=True, slots=True)
class AccessOutcome:
    event: AccessEvent
    alarm: AlarmChange | None  # the denial burst's alarm, raised or counted by this event


def _validity(prefix: str, valid_from: dt.datetime, valid_until: dt.datetime | None,
              revoked_at: dt.datetime | None, at: dt.datetime) -> str | None:  # fmt: skip
    if revoked_at is not None and revoked_at <= at:
        return f"{prefix}_revoked"
    if at < valid_from:
        return f"{prefix}_not_yet_valid"
    if valid_until is not None and at >= valid_until:
        return f"{prefix}_expired"
    return None


async def resolve_holder(session: AsyncSession, reference: str, at: dt.datetime) -> Holder:
    """``kind:identifier`` → the credential or visitor pass it names (valid or not)."""
    kind_name, _, identifier = reference.partition(":")
    try:
        kind = CredentialKind(kind_name.lower())
    except ValueError:
        return Holder(problem="unknown_credential")
    if not identifier:
        return Holder(problem="unknown_credential")
    credential = await session.scalar(
        select(Credential).where(Credential.kind == kind, Credential.identifier == identifier)
    )
    if credential is not None:
        problem = _validity("credential", credential.valid_from, credential.valid_until, credential.revoked_at, at)
        return Holder(credential_id=credential.id, person_id=credential.person_id, problem=problem)
    if kind is CredentialKind.QR:
        visitor_pass = await session.scalar(select(VisitorPass).where(VisitorPass.code == identifier))
        if visitor_pass is not None:
            problem = _validity("pass", visitor_pass.valid_from, visitor_pass.valid_until, visitor_pass.revoked_at, at)
            return Holder(visitor_pass_id=visitor_pass.id, problem=problem)
    return Holder(problem="unknown_credential")


async def record_access(
    session: AsyncSession, device: Device, message: DeviceMessage, *, bus: EventBus | None = None
) -> AccessEvent | None:
    """Append the swipe ``message`` reported by ``device``; ``None`` for a repeated msgId (or a
    device bound to no estate). With ``bus``, the event is published after commit on
    ``ACCESS_CHANNEL``, and a burst alarm goes through the alarm automation (work order,
    supervisors told, published on ``ALARM_CHANNEL``). The caller commits."""
    outcome = await record_access_outcome(session, device, message, bus=bus)
    return outcome.event if outcome is not None else None


async def record_access_outcome(
    session: AsyncSession, device: Device, message: DeviceMessage, *, bus: EventBus | None = None
) -> AccessOutcome | None:
    """:func:`record_access`, also telling the burst alarm it raised or counted."""
    payload = message.payload
    assert isinstance(payload, AccessPayload), "record_access takes ACCESS messages"
    point = await session.scalar(select(AccessPoint).where(AccessPoint.device_id == device.device_id))
    estate_id = point.estate_id if point is not None else device.estate_id
    if estate_id is None:
        return None
    at = payload.ts
    holder = await resolve_holder(session, payload.credential, at)
    reason = payload.reason if payload.reason else holder.problem
    result = AccessResult.GRANTED if payload.result.value == "granted" else AccessResult.DENIED
    event_id = await session.scalar(
        insert(AccessEvent)
        .values(
            estate_id=estate_id,
            access_point_id=point.id if point is not None else None,
            device_id=device.device_id,
            occurred_at=at,
            credential_ref=payload.credential[:160],
            credential_id=holder.credential_id,
            person_id=holder.person_id,
            visitor_pass_id=holder.visitor_pass_id,
            direction=AccessDirection(payload.direction.value),
            result=result,
            reason=reason[:_REASON_LENGTH] if reason else None,
            msg_id=message.msg_id,
        )
        .on_conflict_do_nothing(index_elements=["device_id", "msg_id"])
        .returning(AccessEvent.id)
    )
    if event_id is None:
        return None  # this msgId of this device was recorded before
    event = await session.get_one(AccessEvent, event_id)
    alarm = None
    if result is AccessResult.DENIED and point is not None:
        alarm = await _watch_denials(session, point, at)
    if bus is not None:
        publish_after_commit(session, bus, ACCESS_CHANNEL, access_message(event))
        if alarm is not None:  # like any alarm: its work order, its supervisors, its live event
            await after_alarm_change(session, alarm, bus=bus)
    return AccessOutcome(event, alarm)


def access_message(event: AccessEvent) -> dict[str, int | None]:
    """What is published on ``ACCESS_CHANNEL``: subscribers load the event once by its id."""
    return {"id": event.id, "estateId": event.estate_id, "accessPointId": event.access_point_id}


async def _watch_denials(session: AsyncSession, point: AccessPoint, at: dt.datetime) -> AlarmChange | None:
    """One range read on (access_point_id, occurred_at): the denials of the last 60 s up to ``at``."""
    denials = await session.scalar(
        select(func.count()).where(
            AccessEvent.access_point_id == point.id,
            AccessEvent.occurred_at > at - DENIED_BURST_WINDOW,
            AccessEvent.occurred_at <= at,
            AccessEvent.result == AccessResult.DENIED,
        )
    )
    if (denials or 0) < DENIED_BURST_COUNT:
        return None
    return await raise_alarm(
        session,
        estate_id=point.estate_id,
        device_id=point.device_id or f"access-point-{point.id}",
        type_=DENIED_BURST_TYPE,
        severity=AlarmSeverity.MAJOR,
        message=f"{denials} denied passages at {point.name} within 60 s",
        details={"accessPointId": point.id, "denials": denials},
        access_point_id=point.id,
        at=at,
    )
