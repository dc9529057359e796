"""Persons and their occupancy of units (owner, tenant, family) with history."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Base, created_at_column, enum_column

if TYPE_CHECKING:
    from backend.property.models import Unit


class OccupancyRole(enum.Enum):
    OWNER = "owner"
    TENANT = "tenant"
    FAMILY = "family"


class Person(Base):
    """A natural person known to the company. ``org_path`` is the org unit that registered them."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_path: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    id_number: Mapped[str | None] = mapped_column(String(18))
    email: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = created_at_column()

    occupancies: Mapped[list[Occupancy]] = relationship(back_populates="person", lazy="raise")


class Occupancy(Base):
    """A person's tie to a unit over a period. Ending one sets ``end_date``; rows are never deleted."""

    __tablename__ = "occupancies"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"), index=True)
    role: Mapped[OccupancyRole] = mapped_column(enum_column(OccupancyRole))
    share: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = created_at_column()

    unit: Mapped[Unit] = relationship(back_populates="occupancies", lazy="raise")
    person: Mapped[Person] = relationship(back_populates="occupancies", lazy="raise")

    __table_args__ = (
        Index("ix_occupancies_unit_active", "unit_id", postgresql_where=text("end_date IS NULL")),
        Index("ix_occupancies_unit", "unit_id"),
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="period_order"),
        CheckConstraint("share IS NULL OR (share > 0 AND share <= 100)", name="share_range"),
    )

    def active_on(self, day: dt.date) -> bool:
        return self.start_date <= day and (self.end_date is None or self.end_date > day)
