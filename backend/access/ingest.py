"""Access events from MQTT: a gate controller's swipe → an appended ``AccessEvent``.

Implemented on the access branch; this placeholder lets the ingest pipeline call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from backend.access.models import AccessEvent
    from backend.devices.models import Device
    from iot.subscriber import DeviceMessage


async def record_access(session: AsyncSession, device: Device, message: DeviceMessage) -> AccessEvent | None:
    """Implemented on the access branch."""
    return None
