"""Organisation tree and the physical property: estates, buildings, entrances, units."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Area, Base, created_at_column, enum_column


class OrgUnitKind(enum.Enum):
    COMPANY = "company"
    BRANCH = "branch"
    OFFICE = "office"


class UnitUsage(enum.Enum):
    RESIDENTIAL = "residential"
    COMMERCIAL = "commercial"
    PARKING = "parking"
    STORAGE = "storage"


class UnitStatus(enum.Enum):
    VACANT = "vacant"
    OCCUPIED = "occupied"
    RENTED = "rented"
    RENOVATING = "renovating"
    UNSOLD = "unsold"


class OrgUnit(Base):
    """A node of the company → branch → office tree. ``path`` is ``/1/4/9/`` and is the Casbin domain."""

    __tablename__ = "org_units"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"))
    kind: Mapped[OrgUnitKind] = mapped_column(enum_column(OrgUnitKind))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (CheckConstraint("path LIKE '/%/'", name="path_format"),)


class Estate(Base):
    """A residential estate (小区), managed by one office. ``org_path`` mirrors the office's path."""

    __tablename__ = "estates"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"), index=True)
    org_path: Mapped[str] = mapped_column(String(255), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(255), default="")
    # Tickets submitted here go to a technician of the office with the category's skill
    # and the fewest open tickets (派单), instead of waiting in the service desk's queue.
    auto_assign_tickets: Mapped[bool] = mapped_column(default=False, server_default="false")
    created_at: Mapped[dt.datetime] = created_at_column()

    org_unit: Mapped[OrgUnit] = relationship(lazy="raise")
    buildings: Mapped[list[Building]] = relationship(back_populates="estate", lazy="raise", order_by="Building.id")


class Building(Base):
    __tablename__ = "buildings"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    floors: Mapped[int | None]
    created_at: Mapped[dt.datetime] = created_at_column()

    estate: Mapped[Estate] = relationship(back_populates="buildings", lazy="raise")
    entrances: Mapped[list[Entrance]] = relationship(back_populates="building", lazy="raise", order_by="Entrance.id")
    units: Mapped[list[Unit]] = relationship(lazy="raise", order_by="Unit.id", viewonly=True)

    __table_args__ = (UniqueConstraint("estate_id", "code"),)


class Entrance(Base):
    """A stairwell entrance (单元) of a building."""

    __tablename__ = "entrances"

    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))

    building: Mapped[Building] = relationship(back_populates="entrances", lazy="raise")

    __table_args__ = (UniqueConstraint("building_id", "code"),)


class Unit(Base):
    """A room (房间) or a parking space / storage room, coded ``B-E-FFNN`` within its estate."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"))
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="RESTRICT"), index=True)
    entrance_id: Mapped[int | None] = mapped_column(ForeignKey("entrances.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    floor: Mapped[int]
    building_area: Mapped[Area]
    inner_area: Mapped[Area]
    usage: Mapped[UnitUsage] = mapped_column(enum_column(UnitUsage))
    status: Mapped[UnitStatus] = mapped_column(enum_column(UnitStatus), default=UnitStatus.VACANT)
    created_at: Mapped[dt.datetime] = created_at_column()

    building: Mapped[Building] = relationship(lazy="raise")
    entrance: Mapped[Entrance | None] = relationship(lazy="raise")
    estate: Mapped[Estate] = relationship(lazy="raise")
    occupancies: Mapped[list[Occupancy]] = relationship(back_populates="unit", lazy="raise", order_by="Occupancy.id")

    __table_args__ = (
        UniqueConstraint("estate_id", "code"),
        Index("ix_units_estate_code", "estate_id", "code", postgresql_ops={"code": "text_pattern_ops"}),
        CheckConstraint("building_area >= 0 AND inner_area >= 0", name="areas_non_negative"),
        CheckConstraint("inner_area <= building_area", name="inner_within_building"),
    )

    @property
    def area(self) -> Decimal:
        return self.building_area


from backend.people.models import Occupancy  # noqa: E402
