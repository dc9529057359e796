"""Demo access control: the DEMO-A gate and a barrier, a visitor pass of owner.a1 for
tomorrow, and a few hundred swipes of the last days. Idempotent: run twice, nothing doubles
(the points are found by device id, the pass by its code, the swipes by their msgIds)."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.access.models import (
    AccessDirection,
    AccessEvent,
    AccessPoint,
    AccessPointKind,
    AccessResult,
    Credential,
    VisitorPass,
    VisitorPassKind,
)
from backend.accounts.models import User
from backend.db import utcnow
from backend.people.models import Occupancy
from backend.property.models import Estate

DEMO_POINTS = (
    ("DEMO-A-GATE-01", AccessPointKind.GATE, "南门人行通道", "南门"),
    ("DEMO-A-BARRIER-01", AccessPointKind.BARRIER, "南门车辆道闸", "南门车行入口"),
)
DEMO_PASS_CODE = "DEMOA1VISIT"
HISTORY_DAYS = 3
HISTORY_EVENTS = 300


async def ensure_demo_access(session: AsyncSession) -> int:
    """Returns how many swipes were added (0 on a second run)."""
    estate_id = await session.scalar(select(Estate.id).where(Estate.code == "DEMO-A"))
    if estate_id is None:
        return 0
    points: list[AccessPoint] = []
    for device_id, kind, name, location in DEMO_POINTS:
        point = await session.scalar(select(AccessPoint).where(AccessPoint.device_id == device_id))
        if point is None:
            point = AccessPoint(estate_id=estate_id, name=name, kind=kind, device_id=device_id, location=location)
            session.add(point)
            await session.flush()
        points.append(point)
    owner = await session.scalar(select(User).where(User.username == "owner.a1"))
    card = await session.scalar(select(Credential).where(Credential.identifier == "A1000001"))
    pass_id = await session.scalar(select(VisitorPass.id).where(VisitorPass.code == DEMO_PASS_CODE))
    if owner is not None and pass_id is None:
        unit_id = await session.scalar(select(Occupancy.unit_id).where(Occupancy.person_id == owner.person_id))
        if unit_id is not None:
            tomorrow = utcnow().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
            visitor_pass = VisitorPass(estate_id=estate_id, unit_id=unit_id, kind=VisitorPassKind.INVITED,
                                       code=DEMO_PASS_CODE, visitor_name="陈访客", visitor_phone="13900001111",
                                       valid_from=tomorrow, valid_until=tomorrow + dt.timedelta(hours=12),
                                       issued_by_id=owner.id)  # fmt: skip
            session.add(visitor_pass)
            await session.flush()
    rng = random.Random(20261122)
    now = utcnow()
    rows = []
    for i in range(HISTORY_EVENTS):
        point = points[i % len(points)]
        granted = rng.random() < 0.85
        own = card is not None and granted and rng.random() < 0.3
        rows.append(
            {
                "estate_id": estate_id,
                "access_point_id": point.id,
                "device_id": point.device_id,
                "occurred_at": now - dt.timedelta(seconds=rng.randint(60, HISTORY_DAYS * 86400)),
                "credential_ref": "card:A1000001" if own else f"card:D{rng.randint(1000000, 9999999)}",
                "credential_id": card.id if own and card is not None else None,
                "person_id": card.person_id if own and card is not None else None,
                "direction": AccessDirection.IN if rng.random() < 0.5 else AccessDirection.OUT,
                "result": AccessResult.GRANTED if granted else AccessResult.DENIED,
                "reason": None if granted else rng.choice(["unknown_credential", "credential_expired"]),
                "msg_id": f"demo-history-{i}",
            }
        )
    added = await session.execute(
        insert(AccessEvent).values(rows).on_conflict_do_nothing(index_elements=["device_id", "msg_id"])
        .returning(AccessEvent.id)
    )  # fmt: skip
    return len(added.all())
