"""Device messages → rows, in batches: one database transaction per batch.

- Batching: :meth:`DeviceIngest.submit` (the subscriber's :class:`~iot.subscriber.Queued`
  handler) puts a message in one of ``lanes`` queues by its device, so one device's messages
  stay in order; each lane takes everything queued (up to ``max_batch``) and handles it in
  ONE transaction with a fixed number of statements for the batch (the devices, the msgId
  claims, the telemetry rows, the presence update, the rules), plus the statements of what
  actually changes (an alarm raised or cleared, an access event). Nothing waits to fill a
  batch: a lone message is a batch of one, under load batches grow by themselves. Every
  message of a batch is acknowledged (its future completes) only after the commit. If the
  batch fails while the database answers, its messages are retried one per transaction, so
  one bad message cannot take the others with it (it becomes a ``HANDLER_ERROR`` dead
  letter); if the database does not answer, the batch waits and is tried again (back-off up
  to 5 s) until it does — unacknowledged, so the broker keeps it and what follows.

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

import asyncio
import contextlib
import datetime as dt
import zlib
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, Final

import structlog
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.access.ingest import ACCESS_CHANNEL, access_message, record_access_outcome
from backend.alarms.automation import after_alarm_change
from backend.alarms.models import AlarmSeverity
from backend.alarms.rules import RuleBook, RuleTarget
from backend.alarms.service import AlarmChange, clear_open, raise_alarm
from backend.db import MEMO
from backend.devices.models import DeadLetter, Device, DeviceKind, DeviceStatus, TelemetryReading
from backend.devices.models import DeviceMessage as HandledMessage
from backend.events import EventBus, publish_after_commit
from backend.property.models import Estate
from iot.payloads import AccessPayload, EventPayload, StatusPayload, TelemetryPayload
from iot.subscriber import DeviceMessage, InvalidMessage, Queued
from iot.topics import MessageKind

log = structlog.get_logger(__name__)

DEVICES_CHANNEL = "devices"
OFFLINE_ALARM = "device_offline"
DEAD_LETTER_PAYLOAD_CHARS: Final = 4096
LANES: Final = 2
MAX_BATCH: Final = 500
OUTAGE_MIN_DELAY: Final = 0.2  # seconds between attempts while the database is away, doubling
OUTAGE_MAX_DELAY: Final = 5.0

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


Waiter = tuple[DeviceMessage, "asyncio.Future[None]"]


class _Lane:
    __slots__ = ("queue", "task")

    def __init__(self) -> None:
        self.queue: deque[Waiter] = deque()
        self.task: asyncio.Task[None] | None = None


class DeviceIngest:
    """The handlers of the MQTT subscriber (one per :class:`MessageKind`) and its dead-letter hook."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        lanes: int = LANES,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if lanes < 1 or max_batch < 1:
            raise ValueError("lanes and max_batch must be at least 1")
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._lanes = [_Lane() for _ in range(lanes)]
        self._max_batch = max_batch
        self.handled = 0
        self.duplicates = 0
        self.dead_letters: Counter[str] = Counter()
        self.alarm_changes = 0
        self.batches = 0
        self.failed_batches = 0
        self.outages = 0  # batches retried because the database was unreachable

    def handlers(self) -> dict[MessageKind, Any]:
        queued = Queued(self.submit)
        return {kind: queued for kind in MessageKind}

    def metrics(self) -> dict[str, int]:
        return {
            "handled": self.handled,
            "duplicates": self.duplicates,
            "alarm_changes": self.alarm_changes,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "outages": self.outages,
        }

    # ------------------------------------------------------------------ batching

    def submit(self, message: DeviceMessage) -> asyncio.Future[None]:
        """Queue ``message`` behind its device's earlier ones (synchronously); the future
        completes when its batch has committed, or fails with the message's error."""
        loop = asyncio.get_running_loop()
        lane = self._lanes[zlib.crc32(message.device_id.encode()) % len(self._lanes)]
        future: asyncio.Future[None] = loop.create_future()
        lane.queue.append((message, future))
        if lane.task is None or lane.task.done():
            lane.task = loop.create_task(self._drain(lane), name="iot-ingest-lane")
        return future

    async def _drain(self, lane: _Lane) -> None:
        # No await between the last emptiness check and returning: a submit that finds
        # this task done always starts a new one.
        while lane.queue:
            batch = [lane.queue.popleft() for _ in range(min(len(lane.queue), self._max_batch))]
            try:
                await self._run_batch(batch)
            except asyncio.CancelledError:
                for _message, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # a bug of ours: fail these messages, keep the lane going
                log.exception("iot.lane_failed", size=len(batch))
                for _message, future in batch:
                    if not future.done():
                        future.set_exception(exc)

    async def close(self, grace: float = 5.0) -> None:
        """Let the queued batches finish (up to ``grace`` seconds), then cancel what is left: those
        messages were never acknowledged, so the broker delivers them again."""
        tasks = [lane.task for lane in self._lanes if lane.task is not None and not lane.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for lane in self._lanes:
            if lane.task is not None and not lane.task.done():
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task
            while lane.queue:
                lane.queue.popleft()[1].cancel()

    async def _run_batch(self, batch: Sequence[Waiter]) -> None:
        messages = [message for message, _future in batch]
        delay = OUTAGE_MIN_DELAY
        while True:
            try:
                outcomes, reasons = await self._commit(messages)
            except asyncio.CancelledError:
                raise
            except Exception:
                if await self._database_reachable():
                    await self._one_by_one(batch)  # the batch's own fault
                    return
                # The database is away: nothing of this batch is acknowledged, so the broker
                # keeps it (and holds back what follows); try again until it is back.
                self.outages += 1
                log.warning("iot.database_unreachable", batch=len(batch), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_MAX_DELAY)
                continue
            break
        self.batches += 1
        self._count(outcomes, reasons)
        for _message, future in batch:
            if not future.done():
                future.set_result(None)

    async def _one_by_one(self, batch: Sequence[Waiter]) -> None:
        """A batch that failed with the database up: each message in a transaction of its own,
        so the bad one fails alone (kept as a HANDLER_ERROR dead letter)."""
        if len(batch) > 1:
            self.failed_batches += 1
            log.warning("iot.batch_failed", size=len(batch))
        for message, future in batch:
            try:
                await self.handle(message)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(None)

    async def _database_reachable(self) -> bool:
        try:
            async with self._sessionmaker() as session:
                await session.execute(text("SELECT 1"))
        except asyncio.CancelledError:
            raise
        except Exception:
            return False
        return True

    async def _commit(self, messages: Sequence[DeviceMessage]) -> tuple[list[str], list[str]]:
        async with self._sessionmaker() as session:
            session.info[MEMO] = {}  # the batch's alarms share their look-ups (automation)
            async with session.begin():
                outcomes = await self._process_many(session, messages)
            return outcomes, session.info.pop("dead_letter_reasons", [])

    def _count(self, outcomes: Sequence[str], reasons: Sequence[str]) -> None:
        for reason in reasons:
            self.dead_letters[reason] += 1
        for outcome in outcomes:
            if outcome == "duplicate":
                self.duplicates += 1
            elif outcome == "handled":
                self.handled += 1

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
        """Process one message in its own transaction (a batch of one; raises if it failed,
        after keeping the message as a HANDLER_ERROR dead letter)."""
        try:
            outcomes, reasons = await self._commit([message])
        except Exception as exc:
            await self._keep_failed(message, exc)
            raise
        self._count(outcomes, reasons)

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

    async def _process_many(self, session: AsyncSession, messages: Sequence[DeviceMessage]) -> list[str]:
        """The batch in arrival order: runs of telemetry, event and access messages together,
        ``status`` messages (presence changes of their own) one by one between them."""
        outcomes: list[str] = []
        run: list[DeviceMessage] = []
        for message in messages:
            if isinstance(message.payload, StatusPayload):
                if run:
                    outcomes += await self._process_run(session, run)
                    run = []
                outcomes.append(await self._process(session, message))
            else:
                run.append(message)
        if run:
            outcomes += await self._process_run(session, run)
        return outcomes

    async def _process_run(self, session: AsyncSession, messages: Sequence[DeviceMessage]) -> list[str]:
        """Telemetry, event and access messages: the devices in one SELECT, the msgIds claimed in
        one INSERT, the readings in one INSERT, presence in one UPDATE, the rules read once."""
        found = {
            device.device_id: (device, code, path)
            for device, code, path in await session.execute(
                select(Device, Estate.code, Estate.org_path)
                .outerjoin(Estate, Estate.id == Device.estate_id)
                .where(Device.device_id.in_({message.device_id for message in messages}))
                .execution_options(populate_existing=True)
            )
        }
        outcomes: list[str] = ["handled"] * len(messages)
        accepted: list[int] = []
        pending: set[str] = set()
        for index, message in enumerate(messages):
            row = found.get(message.device_id)
            if row is None:
                if message.device_id not in pending:
                    pending.add(message.device_id)
                    await self._record_pending(session, message)
                outcomes[index] = self._reject(session, message, UNKNOWN_DEVICE, "no such device: recorded as pending")
                continue
            verdict = self._refusal(row, message)
            if verdict is not None:
                outcomes[index] = self._reject(session, message, *verdict)
                continue
            accepted.append(index)

        keyed = [index for index in accepted if messages[index].msg_id is not None]
        if keyed:
            result = await session.execute(
                insert(HandledMessage)
                .values(
                    [
                        {
                            "device_id": messages[index].device_id,
                            "msg_id": messages[index].msg_id,
                            "kind": messages[index].kind.value,
                        }
                        for index in keyed
                    ]
                )
                .on_conflict_do_nothing()
                .returning(HandledMessage.device_id, HandledMessage.msg_id)
            )
            claimed = {(device_id, msg_id) for device_id, msg_id in result}
            for index in keyed:
                key = (messages[index].device_id, messages[index].msg_id)
                if key in claimed:
                    claimed.discard(key)  # a second copy in this batch is a duplicate
                else:
                    outcomes[index] = "duplicate"
            accepted = [index for index in accepted if outcomes[index] == "handled"]

        targets: dict[str, RuleTarget] = {}
        readings: list[tuple[RuleTarget, dict[str, float]]] = []
        for index in accepted:
            payload = messages[index].payload
            if isinstance(payload, TelemetryPayload):
                device, _code, org_path = found[messages[index].device_id]
                target = targets.get(device.device_id)
                if target is None:
                    assert device.estate_id is not None
                    assert org_path is not None
                    target = targets[device.device_id] = RuleTarget(
                        device_id=device.device_id,
                        kind=device.kind.name,
                        estate_id=device.estate_id,
                        company_id=company_of(org_path),
                        asset_id=device.asset_id,
                    )
                readings.append((target, payload.metrics))
        book = await RuleBook.load(session, readings)

        online: dict[str, bool | None] = {}
        seen: dict[int, dt.datetime] = {}
        rows: list[dict[str, Any]] = []
        for index in accepted:
            message = messages[index]
            device = found[message.device_id][0]
            assert device.estate_id is not None
            at = message.received_at
            payload = message.payload
            changes: list[AlarmChange] = []
            was_online = online.get(device.device_id, device.online)
            if was_online is False:
                cleared = await clear_open(session, device_id=device.device_id, type_=OFFLINE_ALARM,
                                           note="the device is back", at=at)  # fmt: skip
                if cleared is not None:
                    changes.append(cleared)
            if was_online is not True:
                self._presence(session, device.device_id, online=True)
            online[device.device_id] = True
            seen[device.id] = at
            if isinstance(payload, TelemetryPayload):
                rows.append({"device_id": device.device_id, "ts": payload.ts, "metrics": payload.metrics})
                changes += await book.apply(session, targets[device.device_id], payload.metrics, at=at)
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
                book.track(change)
                await publish_alarm_change(session, self._bus, change)
            self.alarm_changes += len(changes)

        if rows:
            await session.execute(insert(TelemetryReading), rows)
        if seen:
            table = Device.__table__
            await session.execute(
                update(table)  # type: ignore[arg-type]
                .where(table.c.id == bindparam("b_id"))
                .values(online=True, last_seen_at=bindparam("b_at")),
                [{"b_id": device_pk, "b_at": at} for device_pk, at in seen.items()],
            )
        return outcomes

    @staticmethod
    def _refusal(row: tuple[Device, str | None, str | None], message: DeviceMessage) -> tuple[str, str] | None:
        device, estate_code, org_path = row
        if device.status is DeviceStatus.PENDING:
            return UNKNOWN_DEVICE, "the device is pending: not bound yet"
        if device.status is DeviceStatus.RETIRED:
            return RETIRED_DEVICE, "the device is retired"
        if estate_code is None or org_path is None or estate_code != message.estate_code:
            return ESTATE_MISMATCH, "the device belongs to another estate"
        return None

    async def _process(self, session: AsyncSession, message: DeviceMessage) -> str:
        """A ``status`` message: online (the birth, a retained status) or offline (the last
        will, which raises ``device_offline`` at once)."""
        payload = message.payload
        assert isinstance(payload, StatusPayload)
        row = (
            await session.execute(
                select(Device, Estate.code, Estate.org_path)
                .outerjoin(Estate, Estate.id == Device.estate_id)
                .where(Device.device_id == message.device_id)
                .execution_options(populate_existing=True)
            )
        ).one_or_none()
        if row is None:
            await self._record_pending(session, message)
            return self._reject(session, message, UNKNOWN_DEVICE, "no such device: recorded as pending")
        verdict = self._refusal((row[0], row[1], row[2]), message)
        if verdict is not None:
            return self._reject(session, message, *verdict)
        device = row[0]
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
        was_online = device.online
        changes: list[AlarmChange] = []
        if not payload.online:
            await session.execute(update(Device).where(Device.id == device.id).values(online=False))
            if was_online is not False:
                changes.append(await self._raise_offline(session, device, at, "the device went offline (last will)"))
        else:
            await session.execute(update(Device).where(Device.id == device.id).values(online=True, last_seen_at=at))
            if was_online is False:
                cleared = await clear_open(session, device_id=device.device_id, type_=OFFLINE_ALARM,
                                           note="the device is back", at=at)  # fmt: skip
                if cleared is not None:
                    changes.append(cleared)
        self._presence(session, device.device_id, online=payload.online)
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
