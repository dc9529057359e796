"""What follows an alarm change: work orders, notifications, escalation.

Implemented on the alarms-API branch; this placeholder lets the ingest pipeline call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from backend.alarms.service import AlarmChange
    from backend.events import EventBus


async def after_alarm_change(session: AsyncSession, change: AlarmChange, *, bus: EventBus) -> None:
    """Implemented on the alarms-API branch."""
    return None
