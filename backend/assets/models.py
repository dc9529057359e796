"""The equipment register (设施设备), maintenance plans (保养计划) and their records."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Base, created_at_column, enum_column

if TYPE_CHECKING:
    from backend.accounts.models import User
    from backend.property.models import Building, Estate
    from backend.tickets.models import Ticket


class AssetType(enum.Enum):
    ELEVATOR = "elevator"
    WATER_PUMP = "water_pump"
    FIRE_EQUIPMENT = "fire_equipment"
    GENERATOR = "generator"
    TRANSFORMER = "transformer"
    HVAC = "hvac"
    LIGHTING = "lighting"
    CAMERA = "camera"
    DOOR_CONTROLLER = "door_controller"
    BARRIER_GATE = "barrier_gate"
    SENSOR = "sensor"
    OTHER = "other"


class AssetStatus(enum.Enum):
    IN_SERVICE = "in_service"
    FAULTY = "faulty"
    UNDER_MAINTENANCE = "under_maintenance"
    RETIRED = "retired"


class Asset(Base):
    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"))
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(32))  # unique per company
    tag: Mapped[str | None] = mapped_column(String(128))  # QR / RFID text on the equipment
    type: Mapped[AssetType] = mapped_column(enum_column(AssetType))
    name: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100), default="")
    manufacturer: Mapped[str] = mapped_column(String(100), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    install_date: Mapped[dt.date | None] = mapped_column(Date)
    warranty_until: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[AssetStatus] = mapped_column(enum_column(AssetStatus), default=AssetStatus.IN_SERVICE)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="RESTRICT"))
    # The MQTT device id of a sensor (CONTRACT.md topics), if the asset reports by itself.
    device_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = created_at_column()

    estate: Mapped[Estate] = relationship(lazy="raise")
    building: Mapped[Building | None] = relationship(lazy="raise")
    parent: Mapped[Asset | None] = relationship(lazy="raise", remote_side=[id])
    # Read-only views for the GraphQL layer (no schema change).
    children: Mapped[list[Asset]] = relationship(lazy="raise", viewonly=True, order_by="Asset.id")
    tickets: Mapped[list[Ticket]] = relationship(lazy="raise", viewonly=True, order_by="Ticket.id.desc()")
    maintenance_records: Mapped[list[MaintenanceRecord]] = relationship(
        lazy="raise", viewonly=True, order_by="MaintenanceRecord.performed_at.desc()"
    )

    __table_args__ = (
        UniqueConstraint("company_id", "code"),
        UniqueConstraint("company_id", "tag"),
        Index("ix_assets_estate_type", "estate_id", "type"),
    )


class MaintenancePlan(Base):
    """Planned maintenance of one asset, or of every asset of a type in an estate: every
    ``interval_days`` or ``interval_months`` (or by a cron expression). A job opens one
    MAINTENANCE ticket per occurrence ``lead_days`` ahead; completing it sets the next due
    date from the completion."""

    __tablename__ = "maintenance_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="RESTRICT"), index=True)
    asset_type: Mapped[AssetType | None] = mapped_column(enum_column(AssetType))
    interval_days: Mapped[int | None]
    interval_months: Mapped[int | None]
    cron: Mapped[str | None] = mapped_column(String(64))
    lead_days: Mapped[int] = mapped_column(default=3)
    # [{"item": "检查曳引机油位"}, …]
    checklist: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    next_due_date: Mapped[dt.date] = mapped_column(Date)
    last_completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = created_at_column()

    asset: Mapped[Asset | None] = relationship(lazy="raise")
    estate: Mapped[Estate] = relationship(lazy="raise")
    assignee: Mapped[User | None] = relationship(lazy="raise", foreign_keys=[assignee_id], viewonly=True)

    __table_args__ = (
        CheckConstraint("(asset_id IS NULL) <> (asset_type IS NULL)", name="one_asset_or_a_type"),
        CheckConstraint(
            "(interval_days IS NOT NULL)::int + (interval_months IS NOT NULL)::int + (cron IS NOT NULL)::int = 1",
            name="one_schedule",
        ),
        CheckConstraint(
            "(interval_days IS NULL OR interval_days > 0) AND (interval_months IS NULL OR interval_months > 0)"
            " AND lead_days >= 0",
            name="positive_intervals",
        ),
    )


class MaintenanceRecord(Base):
    """Maintenance done: who, when, the checklist's results and notes. Written when the
    plan's ticket is resolved."""

    __tablename__ = "maintenance_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance_plans.id", ondelete="RESTRICT"), index=True)
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="RESTRICT"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="RESTRICT"), unique=True)
    performed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    performed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # [{"item": "…", "ok": true, "note": "…"}, …]
    checklist_results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = created_at_column()

    plan: Mapped[MaintenancePlan | None] = relationship(lazy="raise", viewonly=True)
    asset: Mapped[Asset | None] = relationship(lazy="raise", viewonly=True)
    performed_by: Mapped[User | None] = relationship(lazy="raise", viewonly=True)
