"""Access credentials (门禁卡, QR, PIN, face) held by persons; validity and revocation."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Identity, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Base, created_at_column, enum_column

if TYPE_CHECKING:
    from backend.people.models import Person
    from backend.property.models import Estate, Unit


class CredentialKind(enum.Enum):
    CARD = "card"
    QR = "qr"
    PIN = "pin"
    FACE = "face"


class Credential(Base):
    """``kind:identifier`` is what a gate controller reports, e.g. ``card:A1000001``."""

    __tablename__ = "access_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[CredentialKind] = mapped_column(enum_column(CredentialKind))
    identifier: Mapped[str] = mapped_column(String(128))
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = created_at_column()

    person: Mapped[Person] = relationship(lazy="raise")

    __table_args__ = (UniqueConstraint("kind", "identifier"),)

    @property
    def reference(self) -> str:
        return f"{self.kind.value}:{self.identifier}"


class AccessPointKind(enum.Enum):
    GATE = "gate"  # pedestrian gate
    DOOR = "door"  # a building entrance's door
    BARRIER = "barrier"  # vehicle barrier


class AccessPoint(Base):
    """Where people pass: bound to the controller (an MQTT device) that reports the swipes."""

    __tablename__ = "access_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[AccessPointKind] = mapped_column(enum_column(AccessPointKind))
    device_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    location: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = created_at_column()

    estate: Mapped[Estate] = relationship(lazy="raise")


class VisitorPassKind(enum.Enum):
    INVITED = "invited"  # issued by an owner from the app
    WALK_IN = "walk_in"  # registered by a guard at the gate


class VisitorPass(Base):
    """A visitor's pass to an estate for a unit, for a window of at most 7 days; its code is
    what the visitor shows at the gate (``qr:<code>`` on the controller)."""

    __tablename__ = "visitor_passes"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[VisitorPassKind] = mapped_column(enum_column(VisitorPassKind))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    visitor_name: Mapped[str] = mapped_column(String(64))
    visitor_phone: Mapped[str | None] = mapped_column(String(32))  # personal data: masked by policy
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[dt.datetime] = created_at_column()

    estate: Mapped[Estate] = relationship(lazy="raise")
    unit: Mapped[Unit] = relationship(lazy="raise")

    __table_args__ = (
        CheckConstraint("valid_until > valid_from AND valid_until <= valid_from + interval '7 days'", name="window"),
    )


class AccessDirection(enum.Enum):
    IN = "in"
    OUT = "out"


class AccessResult(enum.Enum):
    GRANTED = "granted"
    DENIED = "denied"


class AccessEvent(Base):
    """A swipe at an access point, as the controller reported it. Only ever added."""

    __tablename__ = "access_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"))
    access_point_id: Mapped[int | None] = mapped_column(ForeignKey("access_points.id", ondelete="RESTRICT"))
    device_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    credential_ref: Mapped[str | None] = mapped_column(String(160))  # e.g. card:A1000001; masked by policy
    credential_id: Mapped[int | None] = mapped_column(ForeignKey("access_credentials.id", ondelete="RESTRICT"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"))
    visitor_pass_id: Mapped[int | None] = mapped_column(ForeignKey("visitor_passes.id", ondelete="RESTRICT"))
    direction: Mapped[AccessDirection] = mapped_column(enum_column(AccessDirection))
    result: Mapped[AccessResult] = mapped_column(enum_column(AccessResult))
    reason: Mapped[str | None] = mapped_column(String(64))
    msg_id: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[dt.datetime] = created_at_column()

    estate: Mapped[Estate] = relationship(lazy="raise")
    access_point: Mapped[AccessPoint | None] = relationship(lazy="raise")
    person: Mapped[Person | None] = relationship(lazy="raise")
    visitor_pass: Mapped[VisitorPass | None] = relationship(lazy="raise")

    __table_args__ = (
        Index("ix_access_events_point_time", "access_point_id", "occurred_at"),
        Index("ix_access_events_estate_time", "estate_id", "occurred_at"),
        Index("ix_access_events_person_time", "person_id", "occurred_at"),
        Index("ix_access_events_pass", "visitor_pass_id"),
        UniqueConstraint("device_id", "msg_id"),
    )
