"""Devices that speak MQTT: sensors, detectors, gate controllers, bound to an estate.

Alarm rules and bindings to assets and access points arrive with the alarms issue; the
register and each device's last known presence start here.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
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
    # The equipment the device watches (a pump's temperature sensor), if any.
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"), index=True)
    # Silence longer than this raises a device_offline alarm (None: the setting's default).
    offline_after_seconds: Mapped[int | None]
    created_at: Mapped[dt.datetime] = created_at_column()


class DeviceMessage(Base):
    """A device message handled, by its ``msgId``: the unique key makes a repeated msgId
    (a device's retry, a broker's redelivery) be processed once, whatever process gets it."""

    __tablename__ = "device_messages"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (Index("ix_device_messages_received", "received_at"),)


class TelemetryReading(Base):
    """A device's telemetry as received (time series; pruned by age)."""

    __tablename__ = "telemetry"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (Index("ix_telemetry_device_ts", "device_id", "ts"),)


class DeadLetter(Base):
    """A message the subscriber could not use — malformed JSON, a payload off the contract,
    an unknown device, too large — kept with the reason for staff to look at."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # MALFORMED, INVALID_PAYLOAD, UNKNOWN_DEVICE, TOO_LARGE, …
    detail: Mapped[str] = mapped_column(String(500), default="")
    payload: Mapped[str] = mapped_column(Text, default="")  # as received, truncated
    received_at: Mapped[dt.datetime] = created_at_column()
