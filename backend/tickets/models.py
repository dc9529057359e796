"""Work orders (工单): repair (报修), complaint (投诉), inquiry, maintenance and alarm tickets,
their categories, SLA rules, the history of every transition, and escalations.

A ticket's status only changes through ``backend.tickets.lifecycle`` (a row lock and a
version check: of two concurrent transitions one wins, the other gets an error); each change
writes a ``TicketEvent``, and events are never edited (a trigger refuses it).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db import Base, created_at_column, enum_column

if TYPE_CHECKING:
    from backend.accounts.models import User
    from backend.assets.models import Asset
    from backend.property.models import Estate, Unit


class TicketKind(enum.Enum):
    REPAIR = "repair"  # 报修
    COMPLAINT = "complaint"  # 投诉
    INQUIRY = "inquiry"  # 咨询
    MAINTENANCE = "maintenance"  # 保养 (from a maintenance plan)
    ALARM = "alarm"  # from a sensor alarm


class TicketStatus(enum.Enum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class TicketPriority(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketChannel(enum.Enum):
    APP = "app"  # the owner's app
    PHONE = "phone"  # a call to the service desk
    WALK_IN = "walk_in"  # at the desk
    STAFF = "staff"  # raised by staff on their rounds
    SYSTEM = "system"  # a maintenance plan or an alarm


class ReturnVisitOutcome(enum.Enum):
    """回访: the service desk calls the reporter back before closing."""

    SATISFIED = "satisfied"
    UNSATISFIED = "unsatisfied"
    UNREACHABLE = "unreachable"
    NOT_NEEDED = "not_needed"


class TicketEventType(enum.Enum):
    SUBMITTED = "submitted"
    ASSIGNED = "assigned"
    STARTED = "started"
    HELD = "held"
    RESUMED = "resumed"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REOPENED = "reopened"
    RATED = "rated"
    COMMENTED = "commented"
    OVERDUE = "overdue"
    ESCALATED = "escalated"


class TicketCategory(Base):
    """A company's ticket categories (plumbing, electrical, …); technicians have skills in them."""

    __tablename__ = "ticket_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)

    __table_args__ = (UniqueConstraint("company_id", "code"),)


class TechnicianSkill(Base):
    """A technician can take tickets of a category (auto-assignment picks among these)."""

    __tablename__ = "technician_skills"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    category_id: Mapped[int] = mapped_column(
        ForeignKey("ticket_categories.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SlaRule(Base):
    """Response and resolution deadlines of a company, per priority and (optionally) category.
    A rule for the category wins over the priority's general one; without rules, defaults."""

    __tablename__ = "ticket_sla_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"))
    priority: Mapped[TicketPriority] = mapped_column(enum_column(TicketPriority))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_categories.id", ondelete="CASCADE"))
    response_minutes: Mapped[int]
    resolve_minutes: Mapped[int]

    __table_args__ = (
        UniqueConstraint("company_id", "priority", "category_id"),
        CheckConstraint("response_minutes > 0 AND resolve_minutes >= response_minutes", name="deadlines_order"),
    )


class TicketCounter(Base):
    """The next ticket number of a company, taken under a row lock."""

    __tablename__ = "ticket_counters"

    company_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"), primary_key=True)
    next_number: Mapped[int] = mapped_column(default=1)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"))
    number: Mapped[str] = mapped_column(String(32))  # human-readable, unique per company
    kind: Mapped[TicketKind] = mapped_column(enum_column(TicketKind))
    status: Mapped[TicketStatus] = mapped_column(enum_column(TicketStatus), default=TicketStatus.NEW)
    priority: Mapped[TicketPriority] = mapped_column(enum_column(TicketPriority), default=TicketPriority.NORMAL)
    category_id: Mapped[int] = mapped_column(ForeignKey("ticket_categories.id", ondelete="RESTRICT"))
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id", ondelete="RESTRICT"))
    # The reporter's own unit, or None for a public area of the estate (described in location).
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    location: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    contact_phone: Mapped[str | None] = mapped_column(String(32))  # personal data: masked by policy
    appointment_start: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    appointment_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    photo_urls: Mapped[list[str]] = mapped_column(ARRAY(String(500)), default=list)
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="RESTRICT"), index=True)
    channel: Mapped[TicketChannel] = mapped_column(enum_column(TicketChannel))
    reporter_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    reporter_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    response_due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    resolve_due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    assigned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # first response on site
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str] = mapped_column(Text, default="")
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    rating_comment: Mapped[str] = mapped_column(String(500), default="")
    rated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    return_visit_outcome: Mapped[ReturnVisitOutcome | None] = mapped_column(enum_column(ReturnVisitOutcome))
    return_visit_note: Mapped[str] = mapped_column(String(500), default="")
    reopen_count: Mapped[int] = mapped_column(default=0)
    # Bumped by every transition: a transition checks the version it read (no lost update).
    version: Mapped[int] = mapped_column(default=1)
    # A maintenance plan's occurrence: one ticket per plan and due date.
    maintenance_plan_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance_plans.id", ondelete="RESTRICT"))
    plan_due_date: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime] = created_at_column()

    estate: Mapped[Estate] = relationship(lazy="raise")
    unit: Mapped[Unit | None] = relationship(lazy="raise")
    category: Mapped[TicketCategory] = relationship(lazy="raise")
    asset: Mapped[Asset | None] = relationship(lazy="raise")
    reporter: Mapped[User | None] = relationship(lazy="raise", foreign_keys=[reporter_user_id])
    assignee: Mapped[User | None] = relationship(lazy="raise", foreign_keys=[assignee_id])
    events: Mapped[list[TicketEvent]] = relationship(lazy="raise", viewonly=True, order_by="TicketEvent.id")

    __table_args__ = (
        UniqueConstraint("company_id", "number"),
        UniqueConstraint("maintenance_plan_id", "plan_due_date"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        CheckConstraint("(maintenance_plan_id IS NULL) = (plan_due_date IS NULL)", name="plan_occurrence"),
        CheckConstraint(
            "appointment_end IS NULL OR appointment_start IS NOT NULL AND appointment_end > appointment_start",
            name="appointment_order",
        ),
        Index("ix_tickets_estate_status", "estate_id", "status"),
        Index("ix_tickets_unit", "unit_id"),
        Index(
            "ix_tickets_open_deadlines",
            "resolve_due_at",
            postgresql_where=text("status IN ('NEW', 'ASSIGNED', 'IN_PROGRESS', 'ON_HOLD')"),
        ),
    )


class TicketEvent(Base):
    """One step of a ticket's history: a transition (from → to), a comment, a rating, an
    escalation. Only ever added."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="RESTRICT"), index=True)
    type: Mapped[TicketEventType] = mapped_column(enum_column(TicketEventType))
    from_status: Mapped[TicketStatus | None] = mapped_column(enum_column(TicketStatus, "from_status"))
    to_status: Mapped[TicketStatus | None] = mapped_column(enum_column(TicketStatus, "to_status"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[dt.datetime] = created_at_column()

    actor: Mapped[User | None] = relationship(lazy="raise")


class TicketEscalation(Base):
    """An SLA step taken for a ticket: overdue → the assignee, then the office manager, then
    the branch manager. Unique per (ticket, deadline, level): a retried or duplicated job
    takes each step once."""

    __tablename__ = "ticket_escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="RESTRICT"))
    deadline: Mapped[str] = mapped_column(String(16))  # RESPONSE or RESOLUTION
    level: Mapped[int] = mapped_column(SmallInteger)  # 1 assignee, 2 office manager, 3 branch manager
    notified_user_ids: Mapped[list[int]] = mapped_column(JSONB, default=list)
    created_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (UniqueConstraint("ticket_id", "deadline", "level"),)
