"""Devices that speak MQTT: sensors, detectors, gate controllers, bound to an estate.

Alarm rules and bindings to assets and access points arrive with the alarms issue; the
register and each device's last known presence start here.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, created_at_column, enum_column


class DeviceKind(enum.Enum):
    SMOKE_DETECTOR = "smoke_detector"
    TEMPERATURE_SENSOR = "temperature_sensor"
    WATER_LEAK_DETECTOR = "water_leak_detector"
    GATE_CONTROLLER = "gate_controller"
    DOOR_CONTROLLER = "door_controller"
    ELEVATOR_MONITOR = "elevator_monitor"
    OTHER = "other"


class DeviceStatus(enum.Enum):
    PENDING = "pending"  # seen on MQTT but not yet bound by staff
    ACTIVE = "active"
    RETIRED = "retired"


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), unique=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[DeviceKind] = mapped_column(enum_column(DeviceKind))
    name: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[DeviceStatus] = mapped_column(enum_column(DeviceStatus), default=DeviceStatus.ACTIVE)
    online: Mapped[bool | None]
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = created_at_column()
