"""Offline detection: an ACTIVE device silent for longer than its ``offline_after_seconds``
(else the setting) is marked offline and raises a MINOR ``device_offline`` alarm — once,
at the transition (a device already marked offline is skipped); the device's next message
clears it (``backend.devices.ingest``). A device never heard from counts from its
registration."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.devices.ingest import publish_alarm_change, raise_offline
from backend.devices.models import Device, DeviceStatus
from backend.events import EventBus, publish_after_commit


async def mark_silent_devices(
    session: AsyncSession, *, now: dt.datetime, default_after_seconds: int, bus: EventBus, limit: int = 500
) -> int:
    """Mark up to ``limit`` silent devices offline and raise their alarms; return how many."""
    silence = func.make_interval(0, 0, 0, 0, 0, 0, func.coalesce(Device.offline_after_seconds, default_after_seconds))
    rows = (
        await session.execute(
            select(Device.id, Device.device_id, Device.estate_id, Device.asset_id, Device.last_seen_at)
            .where(
                Device.status == DeviceStatus.ACTIVE,
                Device.estate_id.is_not(None),
                Device.online.is_distinct_from(False),
                func.coalesce(Device.last_seen_at, Device.created_at) < now - silence,
            )
            .order_by(Device.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return 0
    await session.execute(update(Device).where(Device.id.in_([r.id for r in rows])).values(online=False))
    for row in rows:
        assert row.estate_id is not None
        since = row.last_seen_at.isoformat() if row.last_seen_at else "never"
        change = await raise_offline(
            session, row.estate_id, row.device_id, row.asset_id, at=now, message=f"no message since {since}"
        )
        await publish_alarm_change(session, bus, change)
        publish_after_commit(session, bus, "devices", {"deviceId": row.device_id, "online": False})
    return len(rows)
