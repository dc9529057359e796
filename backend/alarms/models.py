"""Alarms, ThingsBoard's way: one open alarm per (device, type), enforced by the database;
repeats count ``occurrences``; ACTIVE → ACKNOWLEDGED → CLEARED; a new event after clearing
opens a new alarm. Rules turn telemetry into alarms with hysteresis and an optional
duration; device events raise and clear alarms directly."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Base, created_at_column, enum_column

if TYPE_CHECKING:
    from backend.accounts.models import User
    from backend.assets.models import Asset
    from backend.property.models import Estate
    from backend.tickets.models import Ticket


class AlarmSeverity(enum.Enum):
    # Ordered: CRITICAL is the most severe (the rank is the column order used in filters).
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"

    @property
    def rank(self) -> int:
        return {"critical": 4, "major": 3, "minor": 2, "warning": 1}[self.value]


class AlarmStatus(enum.Enum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


class AlarmEventKind(enum.Enum):
    RAISED = "raised"
    UPDATED = "updated"  # a repeat: occurrences + 1
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"
    COMMENTED = "commented"
    ESCALATED = "escalated"
    REMINDED = "reminded"


class RuleOperator(enum.Enum):
    ABOVE = "above"  # raise when the value is above raise_threshold; clear at or below clear_threshold
    BELOW = "below"  # raise when below; clear at or above


class AlarmRule(Base):
    """A telemetry threshold: for one device, or every device of a kind (optionally in one
    estate). ``clear_threshold`` gives the hysteresis; ``duration_seconds`` how long the
    value must stay beyond the threshold before the alarm is raised."""

    __tablename__ = "alarm_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"))
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"))
    device_id: Mapped[str | None] = mapped_column(String(64))
    device_kind: Mapped[str | None] = mapped_column(String(24))  # DeviceKind name
    metric: Mapped[str] = mapped_column(String(64))
    operator: Mapped[RuleOperator] = mapped_column(enum_column(RuleOperator))
    raise_threshold: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    clear_threshold: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    duration_seconds: Mapped[int] = mapped_column(default=0)
    alarm_type: Mapped[str] = mapped_column(String(48))
    severity: Mapped[AlarmSeverity] = mapped_column(enum_column(AlarmSeverity))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (
        CheckConstraint("(device_id IS NULL) <> (device_kind IS NULL)", name="one_target"),
        CheckConstraint(
            "(operator = 'ABOVE' AND clear_threshold <= raise_threshold)"
            " OR (operator = 'BELOW' AND clear_threshold >= raise_threshold)",
            name="hysteresis",
        ),
        CheckConstraint("duration_seconds >= 0", name="duration_non_negative"),
    )


class AlarmRuleState(Base):
    """Since when a device has been beyond a rule's threshold (for rules with a duration)."""

    __tablename__ = "alarm_rule_states"

    rule_id: Mapped[int] = mapped_column(ForeignKey("alarm_rules.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    breached_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    updated_at: Mapped[dt.datetime] = created_at_column()


class Alarm(Base):
    __tablename__ = "alarms"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"))
    device_id: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"), index=True)
    access_point_id: Mapped[int | None] = mapped_column(ForeignKey("access_points.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(48))
    severity: Mapped[AlarmSeverity] = mapped_column(enum_column(AlarmSeverity))
    status: Mapped[AlarmStatus] = mapped_column(enum_column(AlarmStatus), default=AlarmStatus.ACTIVE)
    message: Mapped[str] = mapped_column(String(500), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    occurrences: Mapped[int] = mapped_column(default=1)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))  # None: the device
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alarm_rules.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = created_at_column()

    estate: Mapped[Estate] = relationship(lazy="raise")
    asset: Mapped[Asset | None] = relationship(lazy="raise")
    ticket: Mapped[Ticket | None] = relationship(lazy="raise")
    rule: Mapped[AlarmRule | None] = relationship(lazy="raise")
    events: Mapped[list[AlarmEvent]] = relationship(lazy="raise", viewonly=True, order_by="AlarmEvent.id")

    __table_args__ = (
        # One open alarm per device and type: repeats are occurrences of it.
        Index(
            "uq_alarms_open_device_type",
            "device_id",
            "type",
            unique=True,
            postgresql_where=text("status <> 'CLEARED'"),
        ),
        Index("ix_alarms_estate_status", "estate_id", "status"),
        Index("ix_alarms_last_seen", "last_seen_at"),
        CheckConstraint("occurrences >= 1", name="occurrences_positive"),
    )


class AlarmEvent(Base):
    """An alarm's history: raised, repeats, acknowledgement, clearing, comments, escalations."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[AlarmEventKind] = mapped_column(enum_column(AlarmEventKind))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[dt.datetime] = created_at_column()

    actor: Mapped[User | None] = relationship(lazy="raise")


class AlarmEscalation(Base):
    """An unacknowledged alarm's escalation steps: step 1 to the branch manager, then a
    reminder every N minutes. Unique per (alarm, step): a retried job never repeats one."""

    __tablename__ = "alarm_escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="RESTRICT"))
    step: Mapped[int] = mapped_column(SmallInteger)
    notified_user_ids: Mapped[list[int]] = mapped_column(JSONB, default=list)
    created_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (UniqueConstraint("alarm_id", "step"),)
