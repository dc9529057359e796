"""Helpers and fixtures of the access tests: gates (a device and its access point) and people with credentials."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from sqlalchemy import delete, select, text

from backend.access.models import (
    AccessEvent,
    AccessPoint,
    AccessPointKind,
    Credential,
    CredentialKind,
    VisitorPass,
)
from backend.alarms.models import Alarm, AlarmEvent
from backend.db import utcnow
from backend.devices.models import Device, DeviceKind
from backend.people.models import Person
from backend.property.models import Estate
from iot.payloads import AccessPayload
from iot.subscriber import DeviceMessage
from iot.topics import DeviceTopic, MessageKind

_msg_ids = itertools.count(1)


@dataclass
class Gate:
    estate_id: int
    estate_code: str
    device: Device
    point: AccessPoint
    person_ids: list[int] = field(default_factory=list)
    pass_ids: list[int] = field(default_factory=list)

    def message(
        self,
        credential: str,
        *,
        result: str = "granted",
        at: dt.datetime | None = None,
        msg_id: str | None = None,
        reason: str | None = None,
        direction: str = "in",
    ) -> DeviceMessage:
        payload = AccessPayload.model_validate(
            {
                "ts": at or utcnow(),
                "credential": credential,
                "direction": direction,
                "result": result,
                "reason": reason,
                "msgId": msg_id or f"m-{next(_msg_ids)}-{uuid.uuid4().hex[:6]}",
            },
            strict=False,
        )
        topic = DeviceTopic(self.estate_code, self.device.device_id, MessageKind.ACCESS)
        return DeviceMessage(topic=topic, payload=payload)


MakeGate = Callable[[str], Awaitable[Gate]]


@pytest_asyncio.fixture(loop_scope="session")
async def make_gate(runtime: Any) -> AsyncIterator[MakeGate]:
    gates: list[Gate] = []

    async def make(estate_code: str = "DEMO-A") -> Gate:
        device_id = f"T-GATE-{uuid.uuid4().hex[:8].upper()}"
        async with runtime.sessionmaker() as session, session.begin():
            estate = await session.scalar(select(Estate).where(Estate.code == estate_code))
            assert estate is not None
            device = Device(device_id=device_id, estate_id=estate.id, kind=DeviceKind.GATE_CONTROLLER, name="测试闸机")
            point = AccessPoint(estate_id=estate.id, name=f"测试门 {device_id}", kind=AccessPointKind.GATE,
                                device_id=device_id)  # fmt: skip
            session.add_all([device, point])
            await session.flush()
            session.expunge_all()
        gate = Gate(estate.id, estate_code, device, point)
        gates.append(gate)
        return gate

    yield make
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        for gate in gates:
            alarms = select(Alarm.id).where(Alarm.device_id == gate.device.device_id)
            await session.execute(delete(AlarmEvent).where(AlarmEvent.alarm_id.in_(alarms)))
            await session.execute(delete(Alarm).where(Alarm.device_id == gate.device.device_id))
            await session.execute(delete(AccessEvent).where(AccessEvent.device_id == gate.device.device_id))
            await session.execute(delete(AccessPoint).where(AccessPoint.id == gate.point.id))
            await session.execute(delete(Device).where(Device.id == gate.device.id))


@dataclass
class People:
    runtime: Any
    person_ids: list[int] = field(default_factory=list)
    pass_ids: list[int] = field(default_factory=list)

    async def with_card(
        self,
        *,
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
        revoked_at: dt.datetime | None = None,
        kind: CredentialKind = CredentialKind.CARD,
    ) -> tuple[int, str]:
        """A new person holding one credential: (person id, ``kind:identifier``)."""
        identifier = f"T{uuid.uuid4().hex[:10].upper()}"
        async with self.runtime.sessionmaker() as session, session.begin():
            person = Person(org_path="/", name="测试持卡人")
            session.add(person)
            await session.flush()
            session.add(
                Credential(person_id=person.id, kind=kind, identifier=identifier,
                           valid_from=valid_from or utcnow() - dt.timedelta(days=30), valid_until=valid_until,
                           revoked_at=revoked_at)
            )  # fmt: skip
        self.person_ids.append(person.id)
        return person.id, f"{kind.value}:{identifier}"


@pytest_asyncio.fixture(loop_scope="session")
async def people(runtime: Any) -> AsyncIterator[People]:
    found = People(runtime)
    yield found
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(delete(AccessEvent).where(AccessEvent.person_id.in_(found.person_ids)))
        await session.execute(delete(Credential).where(Credential.person_id.in_(found.person_ids)))
        await session.execute(delete(Person).where(Person.id.in_(found.person_ids)))
        await session.execute(delete(AccessEvent).where(AccessEvent.visitor_pass_id.in_(found.pass_ids)))
        await session.execute(delete(VisitorPass).where(VisitorPass.id.in_(found.pass_ids)))
