"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from authz.models import CasbinRule
from backend.access.models import Credential
from backend.accounts.models import RefreshToken, User
from backend.audit.models import AuditEntry
from backend.billing.models import Bill, BillLine, FeeBinding, FeeItem, FeeRate, Payment, ReceiptCounter, Refund
from backend.db import Base
from backend.devices.models import Device
from backend.notifications.models import Announcement, AnnouncementEstate, Notification
from backend.outbox import OutboxMessage
from backend.people.models import Occupancy, Person
from backend.property.models import Building, Entrance, Estate, OrgUnit, Unit

__all__ = [
    "Announcement",
    "AnnouncementEstate",
    "AuditEntry",
    "Base",
    "Bill",
    "BillLine",
    "Building",
    "CasbinRule",
    "Credential",
    "Device",
    "Entrance",
    "Estate",
    "FeeBinding",
    "FeeItem",
    "FeeRate",
    "Notification",
    "Occupancy",
    "OrgUnit",
    "OutboxMessage",
    "Payment",
    "Person",
    "ReceiptCounter",
    "RefreshToken",
    "Refund",
    "Unit",
    "User",
]
