"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from authz.models import CasbinRule
from backend.access.models import AccessEvent, AccessPoint, Credential, VisitorPass
from backend.accounts.models import RefreshToken, User
from backend.alarms.models import Alarm, AlarmEscalation, AlarmEvent, AlarmRule, AlarmRuleState
from backend.assets.models import Asset, MaintenancePlan, MaintenanceRecord
from backend.audit.models import AuditEntry
from backend.billing.models import (
    Bill,
    BillLine,
    DunningNotice,
    FeeBinding,
    FeeItem,
    FeeRate,
    Meter,
    MeterReading,
    Payment,
    PaymentCallback,
    ReceiptCounter,
    Refund,
    UnitAreaChange,
)
from backend.db import Base
from backend.devices.models import DeadLetter, Device, DeviceMessage, TelemetryReading
from backend.notifications.models import Announcement, AnnouncementEstate, Notification, SmsMessage
from backend.outbox import OutboxMessage
from backend.people.models import Occupancy, Person
from backend.property.models import Building, Entrance, Estate, OrgUnit, Unit
from backend.tickets.models import (
    SlaRule,
    TechnicianSkill,
    Ticket,
    TicketCategory,
    TicketCounter,
    TicketEscalation,
    TicketEvent,
)

__all__ = [
    "AccessEvent",
    "AccessPoint",
    "Alarm",
    "AlarmEscalation",
    "AlarmEvent",
    "AlarmRule",
    "AlarmRuleState",
    "Announcement",
    "AnnouncementEstate",
    "Asset",
    "AuditEntry",
    "Base",
    "Bill",
    "BillLine",
    "Building",
    "CasbinRule",
    "Credential",
    "DeadLetter",
    "Device",
    "DeviceMessage",
    "DunningNotice",
    "Entrance",
    "Estate",
    "FeeBinding",
    "FeeItem",
    "FeeRate",
    "MaintenancePlan",
    "MaintenanceRecord",
    "Meter",
    "MeterReading",
    "Notification",
    "Occupancy",
    "OrgUnit",
    "OutboxMessage",
    "Payment",
    "PaymentCallback",
    "Person",
    "ReceiptCounter",
    "RefreshToken",
    "Refund",
    "SlaRule",
    "SmsMessage",
    "TechnicianSkill",
    "TelemetryReading",
    "Ticket",
    "TicketCategory",
    "TicketCounter",
    "TicketEscalation",
    "TicketEvent",
    "Unit",
    "UnitAreaChange",
    "User",
    "VisitorPass",
]
