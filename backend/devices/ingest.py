"""Device messages → rows: one database transaction per message.

- The device is looked up with its estate. An unknown device id is recorded as a PENDING
  device for staff to bind (in the topic's estate when that estate exists) and the message
  becomes an ``UNKNOWN_DEVICE`` dead letter; so does every message of a device still
  PENDING. A RETIRED device's messages are ``RETIRED_DEVICE`` dead letters, a device
  publishing under another estate's topic ``ESTATE_MISMATCH``.
- ``msgId`` dedup: ``INSERT INTO device_messages … ON CONFLICT DO NOTHING`` in the same
  transaction as the message's work, so a repeat — a device's retry, a broker's
  redelivery after a crash, another replica — is processed once, and a message whose
  transaction did not commit is processed when redelivered. (The Redis ``SET NX`` fast
  path is not used: a claim taken before a crash would make the redelivery a "duplicate".)
- Heard from: ``last_seen_at`` and ``online``; a device that was offline clears its
  ``device_offline`` alarm. ``status`` ``{"online": false}`` (the last will) marks it
  offline and raises ``device_offline`` at once.
- telemetry → a ``telemetry`` row and the alarm rules (``backend.alarms.rules``); event →
  raise / clear the (device, type) alarm; access → ``backend.access.ingest.record_access``.
- Every alarm change goes through ``after_alarm_change`` (automation) and is published on
  ``ALARM_CHANNEL`` after commit; presence changes on ``DEVICES_CHANNEL``.

Messages that fail validation reach :meth:`DeviceIngest.dead_letter` (the subscriber's
``on_invalid`` hook). Counters by dead-letter reason are served on ``/metrics``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, Final

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.access.ingest import ACCESS_CHANNEL, access_message, record_access_outcome
from backend.alarms.automation import after_alarm_change
from backend.alarms.models import AlarmSeverity
from backend.alarms.rules import RuleTarget, evaluate
from backend.alarms.service import AlarmChange, clear_open, raise_alarm
from backend.devices.models import DeadLetter, Device, DeviceKind, DeviceStatus, TelemetryReading
from backend.devices.models import DeviceMessage as HandledMessage
from backend.events import EventBus, publish_after_commit
from backend.property.models import Estate
from iot.payloads import AccessPayload, EventPayload, StatusPayload, TelemetryPayload
from iot.subscriber import DeviceMessage, InvalidMessage
from iot.topics import MessageKind

log = structlog.get_logger(__name__)

DEVICES_CHANNEL = "devices"
OFFLINE_ALARM = "device_offline"
DEAD_LETTER_PAYLOAD_CHARS: Final = 4096

# Dead-letter reasons besides the subscriber's (BAD_TOPIC, MALFORMED, INVALID_PAYLOAD, TOO_LARGE).
UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
RETIRED_DEVICE = "RETIRED_DEVICE"
ESTATE_MISMATCH = "ESTATE_MISMATCH"
HANDLER_ERROR = "HANDLER_ERROR"


def company_of(org_path: str) -> int:
    """The company id of an estate's ``org_path`` (``/company/branch/office/``)."""
    return int(org_path.strip("/").split("/")[0])


def truncated(payload: bytes | str) -> str:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return text[:DEAD_LETTER_PAYLOAD_CHARS].replace("\x00", "\ufffd")


async def publish_alarm_change(session: AsyncSession, bus: EventBus, change: AlarmChange) -> None:
    """What every alarm change made here gets: the automation (work order, notifications),
    which also publishes the change after commit."""
    await after_alarm_change(session, change, bus=bus)


class DeviceIngest:
    """The handlers of the MQTT subscriber (one per :class:`MessageKind`) and its dead-letter hook."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], bus: EventBus) -> None:
        self._sessionmaker = sessionmaker
        self._bus = bus
        self.handled = 0
        self.duplicates = 0
        self.dead_letters: Counter[str] = Counter()
        self.alarm_changes = 0

    def handlers(self) -> dict[MessageKind, Any]:
        return {kind: self.handle for kind in MessageKind}

    def metrics(self) -> dict[str, int]:
        return {"handled": self.handled, "duplicates": self.duplicates, "alarm_changes": self.alarm_changes}

    # ------------------------------------------------------------------ dead letters

    async def dead_letter(self, message: InvalidMessage) -> None:
        """The subscriber's ``on_invalid`` hook: keep the message with its reason."""
        async with self._sessionmaker() as session, session.begin():
            self._add_dead_letter(
                session, message.topic, message.device_id, message.reason, message.detail, message.payload
            )
        self.dead_letters[message.reason] += 1

    def _add_dead_letter(
        self,
        session: AsyncSession,
        topic: str,
        device_id: str | None,
        reason: str,
        detail: str,
        payload: bytes | str,
    ) -> None:
        session.add(
            DeadLetter(
                topic=topic[:255],
                device_id=device_id[:64] if device_id else None,
                reason=reason,
                detail=detail[:500],
                payload=truncated(payload),
            )
        )
        count = session.info.setdefault("dead_letter_reasons", [])
        count.append(reason)

    # ------------------------------------------------------------------ messages

    async def handle(self, message: DeviceMessage) -> None:
        """Process one validated message in one transaction (raises if it failed: the
        subscriber counts it; the message is kept as a HANDLER_ERROR dead letter)."""
        try:
            async with self._sessionmaker() as session:
                async with session.begin():
                    outcome = await self._process(session, message)
                reasons = session.info.pop("dead_letter_reasons", [])
        except Exception as exc:
            await self._keep_failed(message, exc)
            raise
        for reason in reasons:
            self.dead_letters[reason] += 1
        if outcome == "duplicate":
            self.duplicates += 1
        elif outcome == "handled":
            self.handled += 1

    async def _keep_failed(self, message: DeviceMessage, exc: Exception) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                self._add_dead_letter(
                    session,
                    str(message.topic),
                    message.device_id,
                    HANDLER_ERROR,
                    type(exc).__name__,
                    message.payload.to_json(),
                )
            self.dead_letters[HANDLER_ERROR] += 1
        except Exception:
            log.warning("iot.dead_letter_failed", topic=str(message.topic))

    async def _process(self, session: AsyncSession, message: DeviceMessage) -> str:
        row = (
            await session.execute(
                select(Device, Estate.code, Estate.org_path)
                .outerjoin(Estate, Estate.id == Device.estate_id)
                .where(Device.device_id == message.device_id)
            )
        ).one_or_none()
        if row is None:
            await self._record_pending(session, message)
            return self._reject(session, message, UNKNOWN_DEVICE, "no such device: recorded as pending")
        device, estate_code, org_path = row
        if device.status is DeviceStatus.PENDING:
            return self._reject(session, message, UNKNOWN_DEVICE, "the device is pending: not bound yet")
        if device.status is DeviceStatus.RETIRED:
            return self._reject(session, message, RETIRED_DEVICE, "the device is retired")
        if estate_code is None or estate_code != message.estate_code:
            return self._reject(session, message, ESTATE_MISMATCH, "the device belongs to another estate")
        assert device.estate_id is not None
        assert org_path is not None

        if message.msg_id is not None:
            claimed = await session.scalar(
                insert(HandledMessage)
                .values(device_id=device.device_id, msg_id=message.msg_id, kind=message.kind.value)
                .on_conflict_do_nothing()
                .returning(HandledMessage.device_id)
            )
            if claimed is None:
                return "duplicate"

        at = message.received_at
        payload = message.payload
        was_online = device.online  # (the UPDATEs below refresh the loaded row)
        changes: list[AlarmChange] = []
        if isinstance(payload, StatusPayload) and not payload.online:
            await session.execute(update(Device).where(Device.id == device.id).values(online=False))
            if was_online is not False:
                changes.append(await self._raise_offline(session, device, at, "the device went offline (last will)"))
            self._presence(session, device.device_id, online=False)
        else:
            await session.execute(update(Device).where(Device.id == device.id).values(online=True, last_seen_at=at))
            if was_online is False:
                cleared = await clear_open(session, device_id=device.device_id, type_=OFFLINE_ALARM,
                                           note="the device is back", at=at)  # fmt: skip
                if cleared is not None:
                    changes.append(cleared)
            if was_online is not True or isinstance(payload, StatusPayload):
                self._presence(session, device.device_id, online=True)

        if isinstance(payload, TelemetryPayload):
            await session.execute(
                insert(TelemetryReading).values(device_id=device.device_id, ts=payload.ts, metrics=payload.metrics)
            )
            target = RuleTarget(
                device_id=device.device_id,
                kind=device.kind.name,
                estate_id=device.estate_id,
                company_id=company_of(org_path),
                asset_id=device.asset_id,
            )
            changes += await evaluate(session, target, payload.metrics, at=at)
        elif isinstance(payload, EventPayload):
            change = await self._event(session, device, payload, at)
            if change is not None:
                changes.append(change)
        elif isinstance(payload, AccessPayload):
            outcome = await record_access_outcome(session, device, message)
            if outcome is not None:
                publish_after_commit(session, self._bus, ACCESS_CHANNEL, access_message(outcome.event))
                if outcome.alarm is not None:  # a burst of denials: an alarm like any other
                    changes.append(outcome.alarm)

        for change in changes:
            await publish_alarm_change(session, self._bus, change)
        self.alarm_changes += len(changes)
        return "handled"

    async def _event(
        self, session: AsyncSession, device: Device, payload: EventPayload, at: dt.datetime
    ) -> AlarmChange | None:
        assert device.estate_id is not None
        if payload.state.value == "cleared":
            return await clear_open(session, device_id=device.device_id, type_=payload.type,
                                    note=payload.message or "", at=at)  # fmt: skip
        return await raise_alarm(
            session,
            estate_id=device.estate_id,
            device_id=device.device_id,
            type_=payload.type,
            severity=AlarmSeverity[payload.severity.name],
            message=payload.message or "",
            details={"ts": payload.ts.isoformat()},
            asset_id=device.asset_id,
            at=at,
        )

    async def _raise_offline(self, session: AsyncSession, device: Device, at: dt.datetime, why: str) -> AlarmChange:
        assert device.estate_id is not None
        return await raise_offline(session, device.estate_id, device.device_id, device.asset_id, at=at, message=why)

    def _presence(self, session: AsyncSession, device_id: str, *, online: bool) -> None:
        publish_after_commit(session, self._bus, DEVICES_CHANNEL, {"deviceId": device_id, "online": online})

    async def _record_pending(self, session: AsyncSession, message: DeviceMessage) -> None:
        estate_id = select(Estate.id).where(Estate.code == message.estate_code).scalar_subquery()
        await session.execute(
            insert(Device)
            .values(
                device_id=message.device_id,
                estate_id=estate_id,
                kind=DeviceKind.OTHER,
                name=message.device_id,
                status=DeviceStatus.PENDING,
            )
            .on_conflict_do_nothing(index_elements=[Device.device_id])
        )

    def _reject(self, session: AsyncSession, message: DeviceMessage, reason: str, detail: str) -> str:
        self._add_dead_letter(session, str(message.topic), message.device_id, reason, detail, message.payload.to_json())
        return "dead_letter"


async def raise_offline(
    session: AsyncSession,
    estate_id: int,
    device_id: str,
    asset_id: int | None,
    *,
    at: dt.datetime,
    message: str,
) -> AlarmChange:
    return await raise_alarm(
        session,
        estate_id=estate_id,
        device_id=device_id,
        type_=OFFLINE_ALARM,
        severity=AlarmSeverity.MINOR,
        message=message,
        asset_id=asset_id,
        at=at,
    )
