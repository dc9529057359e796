"""Row scopes: one registry turning the caller's permissions into a SQL predicate per model.

Every list, by-id, ``node(id)`` and nested collection goes through :func:`scoped`. No rule
for a model, or no permission, means no rows (default deny). An object outside the scope is
simply not found, never "forbidden".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, String, and_, any_, cast, exists, false, func, literal, or_, select

from authz.models import CasbinRule
from authz.principal import Permissions, Principal
from backend.access.models import AccessEvent, AccessPoint, Credential, VisitorPass
from backend.accounts.models import User
from backend.alarms.models import Alarm, AlarmEvent
from backend.assets.models import Asset, MaintenancePlan, MaintenanceRecord
from backend.billing.models import (
    Bill,
    BillLine,
    DunningNotice,
    FeeItem,
    FeeRate,
    Meter,
    MeterReading,
    Payment,
    Refund,
    UnitAreaChange,
)
from backend.db import local_today
from backend.notifications.models import Announcement, AnnouncementEstate, Notification
from backend.people.models import Occupancy, Person
from backend.property.models import Building, Entrance, Estate, OrgUnit, Unit
from backend.tickets.models import Ticket, TicketEvent

S = TypeVar("S", bound=Select[Any])

StaffRule = Callable[[tuple[str, ...]], ColumnElement[bool]]
OwnRule = Callable[[Principal], ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class RowRule:
    obj: str
    staff: StaffRule | None = None
    own: OwnRule | None = None  # with ``{action}_own``: a resident's own rows
    assigned: OwnRule | None = None  # with ``{action}_assigned``: the rows assigned to the caller (technicians)


def _under(column: Any, domains: tuple[str, ...]) -> ColumnElement[bool]:
    return or_(*(column.startswith(domain, autoescape=True) for domain in domains))


def estates_under(domains: tuple[str, ...]) -> Select[int]:
    return select(Estate.id).where(_under(Estate.org_path, domains))


def occupancy_current() -> ColumnElement[bool]:
    """Occupancies in force today (in the company's time zone): started, not yet ended."""
    today = local_today()
    return and_(Occupancy.start_date <= today, or_(Occupancy.end_date.is_(None), Occupancy.end_date > today))


def _active_occupancy(person_id: int | None) -> ColumnElement[bool]:
    return and_(Occupancy.person_id == person_id, occupancy_current())


def own_unit_ids(principal: Principal) -> Select[int]:
    return select(Occupancy.unit_id).where(_active_occupancy(principal.person_id))


def own_estate_ids(principal: Principal) -> Select[int]:
    return select(Unit.estate_id).where(Unit.id.in_(own_unit_ids(principal)))


def own_bill_paid_by(person_id: int | None) -> ColumnElement[bool]:
    """The payment is for a bill of a unit the person occupies now."""
    return exists().where(
        Bill.id == any_(Payment.bill_ids),
        Bill.unit_id.in_(select(Occupancy.unit_id).where(_active_occupancy(person_id))),
    )


def own_ticket(principal: Principal) -> ColumnElement[bool]:
    """Tickets the resident reported, and those of the units they occupy now."""
    return or_(Ticket.reporter_user_id == principal.user_id, Ticket.unit_id.in_(own_unit_ids(principal)))


def _person_under(domains: tuple[str, ...]) -> ColumnElement[bool]:
    """Persons of the org units, or occupying a unit of their estates (the Person staff rule)."""
    return or_(
        _under(Person.org_path, domains),
        exists().where(
            Occupancy.person_id == Person.id,
            Occupancy.unit_id == Unit.id,
            Unit.estate_id.in_(estates_under(domains)),
        ),
    )


def own_access_event(principal: Principal) -> ColumnElement[bool]:
    """A resident's own swipes (their credentials') and those of the passes they issued."""
    passes = select(VisitorPass.id).where(VisitorPass.issued_by_id == principal.user_id)
    if principal.person_id is None:
        return AccessEvent.visitor_pass_id.in_(passes)
    return or_(AccessEvent.person_id == principal.person_id, AccessEvent.visitor_pass_id.in_(passes))


RULES: dict[type[Any], RowRule] = {
    OrgUnit: RowRule("OrgUnit", staff=lambda d: _under(OrgUnit.path, d)),
    Estate: RowRule(
        "Estate",
        staff=lambda d: _under(Estate.org_path, d),
        own=lambda p: Estate.id.in_(own_estate_ids(p)),
    ),
    Building: RowRule(
        "Building",
        staff=lambda d: Building.estate_id.in_(estates_under(d)),
        own=lambda p: Building.id.in_(select(Unit.building_id).where(Unit.id.in_(own_unit_ids(p)))),
    ),
    # An entrance is part of its building: whoever may read the building reads its entrances.
    Entrance: RowRule(
        "Building",
        staff=lambda d: Entrance.building_id.in_(select(Building.id).where(Building.estate_id.in_(estates_under(d)))),
        own=lambda p: Entrance.id.in_(select(Unit.entrance_id).where(Unit.id.in_(own_unit_ids(p)))),
    ),
    Unit: RowRule(
        "Unit",
        staff=lambda d: Unit.estate_id.in_(estates_under(d)),
        own=lambda p: Unit.id.in_(own_unit_ids(p)),
    ),
    Person: RowRule(
        "Person",
        staff=lambda d: or_(
            _under(Person.org_path, d),
            exists().where(
                Occupancy.person_id == Person.id,
                Occupancy.unit_id == Unit.id,
                Unit.estate_id.in_(estates_under(d)),
            ),
        ),
        own=lambda p: Person.id == p.person_id,
    ),
    Occupancy: RowRule(
        "Occupancy",
        staff=lambda d: Occupancy.unit_id.in_(select(Unit.id).where(Unit.estate_id.in_(estates_under(d)))),
        own=lambda p: _active_occupancy(p.person_id),
    ),
    Announcement: RowRule(
        "Announcement",
        staff=lambda d: Announcement.id.in_(
            select(AnnouncementEstate.announcement_id).where(AnnouncementEstate.estate_id.in_(estates_under(d)))
        ),
        own=lambda p: and_(
            Announcement.id.in_(
                select(AnnouncementEstate.announcement_id).where(AnnouncementEstate.estate_id.in_(own_estate_ids(p)))
            ),
            or_(Announcement.expires_at.is_(None), Announcement.expires_at > func.now()),
        ),
    ),
    # Staff accounts holding a role under the caller's org units; residents of their estates.
    User: RowRule(
        "User",
        staff=lambda d: or_(
            exists().where(
                CasbinRule.ptype == "g",
                CasbinRule.v0 == literal("u:") + cast(User.id, String),
                or_(*(CasbinRule.v2.startswith(domain, autoescape=True) for domain in d)),
            ),
            exists().where(
                Occupancy.person_id == User.person_id,
                Occupancy.unit_id == Unit.id,
                Unit.estate_id.in_(estates_under(d)),
            ),
        ),
        own=lambda p: User.id == p.user_id,
    ),
    Bill: RowRule(
        "Bill",
        staff=lambda d: Bill.estate_id.in_(estates_under(d)),
        own=lambda p: Bill.unit_id.in_(own_unit_ids(p)),
    ),
    # Payments are seen by whoever sees the estate's bills; residents see the payments they
    # made and those for bills of their units (pending ones included: they have no lines yet).
    Payment: RowRule(
        "Bill",
        staff=lambda d: Payment.estate_id.in_(estates_under(d)),
        own=lambda p: or_(Payment.created_by_id == p.user_id, own_bill_paid_by(p.person_id)),
    ),
    Refund: RowRule(
        "Bill",
        staff=lambda d: Refund.payment_id.in_(select(Payment.id).where(Payment.estate_id.in_(estates_under(d)))),
    ),
    # A fee item's rates are seen with the item.
    FeeRate: RowRule(
        "FeeItem",
        staff=lambda d: FeeRate.fee_item_id.in_(select(FeeItem.id).where(FeeItem.estate_id.in_(estates_under(d)))),
        own=lambda p: FeeRate.fee_item_id.in_(select(Bill.fee_item_id).where(Bill.unit_id.in_(own_unit_ids(p)))),
    ),
    # A bill's lines are seen with the bill.
    BillLine: RowRule(
        "Bill",
        staff=lambda d: BillLine.bill_id.in_(select(Bill.id).where(Bill.estate_id.in_(estates_under(d)))),
        own=lambda p: BillLine.bill_id.in_(select(Bill.id).where(Bill.unit_id.in_(own_unit_ids(p)))),
    ),
    # A bill's dunning notices (催缴) are seen with the bill.
    DunningNotice: RowRule(
        "Bill",
        staff=lambda d: DunningNotice.bill_id.in_(select(Bill.id).where(Bill.estate_id.in_(estates_under(d)))),
        own=lambda p: DunningNotice.bill_id.in_(select(Bill.id).where(Bill.unit_id.in_(own_unit_ids(p)))),
    ),
    FeeItem: RowRule(
        "FeeItem",
        staff=lambda d: FeeItem.estate_id.in_(estates_under(d)),
        own=lambda p: FeeItem.id.in_(select(Bill.fee_item_id).where(Bill.unit_id.in_(own_unit_ids(p)))),
    ),
    # Meters and readings: staff of the estate; residents those of their own units.
    Meter: RowRule(
        "Meter",
        staff=lambda d: Meter.estate_id.in_(estates_under(d)),
        own=lambda p: Meter.unit_id.in_(own_unit_ids(p)),
    ),
    MeterReading: RowRule(
        "Meter",
        staff=lambda d: MeterReading.meter_id.in_(select(Meter.id).where(Meter.estate_id.in_(estates_under(d)))),
        own=lambda p: MeterReading.meter_id.in_(select(Meter.id).where(Meter.unit_id.in_(own_unit_ids(p)))),
    ),
    # Area corrections are seen by whoever sees the estate's bills.
    UnitAreaChange: RowRule(
        "Bill",
        staff=lambda d: UnitAreaChange.unit_id.in_(select(Unit.id).where(Unit.estate_id.in_(estates_under(d)))),
        own=lambda p: UnitAreaChange.unit_id.in_(own_unit_ids(p)),
    ),
    # Tickets: staff by estate; residents those they reported and those of their current
    # units; technicians (``read_assigned``) only those assigned to them.
    Ticket: RowRule(
        "Ticket",
        staff=lambda d: Ticket.estate_id.in_(estates_under(d)),
        own=lambda p: own_ticket(p),
        assigned=lambda p: Ticket.assignee_id == p.user_id,
    ),
    # A ticket's history is seen with the ticket.
    TicketEvent: RowRule(
        "Ticket",
        staff=lambda d: TicketEvent.ticket_id.in_(select(Ticket.id).where(Ticket.estate_id.in_(estates_under(d)))),
        own=lambda p: TicketEvent.ticket_id.in_(select(Ticket.id).where(own_ticket(p))),
        assigned=lambda p: TicketEvent.ticket_id.in_(select(Ticket.id).where(Ticket.assignee_id == p.user_id)),
    ),
    # The equipment register: staff of the estate (policy: managers, customer service,
    # technicians, guards, supervisors); residents see no assets, plans or records.
    Asset: RowRule("Asset", staff=lambda d: Asset.estate_id.in_(estates_under(d))),
    MaintenancePlan: RowRule("MaintenancePlan", staff=lambda d: MaintenancePlan.estate_id.in_(estates_under(d))),
    # A maintenance record is part of its asset's (or plan's) history: seen with the asset.
    MaintenanceRecord: RowRule(
        "Asset",
        staff=lambda d: or_(
            MaintenanceRecord.asset_id.in_(select(Asset.id).where(Asset.estate_id.in_(estates_under(d)))),
            MaintenanceRecord.plan_id.in_(
                select(MaintenancePlan.id).where(MaintenancePlan.estate_id.in_(estates_under(d)))
            ),
        ),
    ),
    # Access control (门禁): staff of the estate (guards, supervisors, managers; customer
    # service for points, credentials and passes); residents their own credentials, the passes
    # they issued, and the swipes of both.
    AccessPoint: RowRule("AccessPoint", staff=lambda d: AccessPoint.estate_id.in_(estates_under(d))),
    AccessEvent: RowRule(
        "AccessEvent",
        staff=lambda d: AccessEvent.estate_id.in_(estates_under(d)),
        own=own_access_event,
    ),
    VisitorPass: RowRule(
        "VisitorPass",
        staff=lambda d: VisitorPass.estate_id.in_(estates_under(d)),
        own=lambda p: VisitorPass.issued_by_id == p.user_id,
    ),
    Credential: RowRule(
        "Credential",
        staff=lambda d: Credential.person_id.in_(select(Person.id).where(_person_under(d))),
        own=lambda p: Credential.person_id == p.person_id if p.person_id is not None else false(),
    ),
    # Alarms: staff of the estate (policy: supervisors, guards, customer service, technicians,
    # managers); residents none. An alarm's history is seen with the alarm.
    Alarm: RowRule("Alarm", staff=lambda d: Alarm.estate_id.in_(estates_under(d))),
    AlarmEvent: RowRule(
        "Alarm",
        staff=lambda d: AlarmEvent.alarm_id.in_(select(Alarm.id).where(Alarm.estate_id.in_(estates_under(d)))),
    ),
    # Notifications are personal: nobody, whatever their role, reads another user's.
    Notification: RowRule("Notification", own=lambda p: Notification.user_id == p.user_id),
}


def predicate(model: type[Any], permissions: Permissions, action: str = "read") -> ColumnElement[bool]:
    rule = RULES.get(model)
    principal = permissions.principal
    if rule is None or principal is None:
        return false()
    domains = permissions.domains(rule.obj, action) if rule.staff is not None else ()
    own = rule.own is not None and (model is Notification or permissions.anywhere(rule.obj, f"{action}_own"))
    assigned = rule.assigned is not None and permissions.anywhere(rule.obj, f"{action}_assigned")
    return _predicate(
        model,  # type: ignore[arg-type]  # classes are hashable
        domains,
        principal if own else None,
        principal if assigned else None,
        local_today(),
    )


@lru_cache(maxsize=4096)
def _predicate(
    model: type[Any],
    domains: tuple[str, ...],
    own_principal: Principal | None,
    assigned_principal: Principal | None,
    today: dt.date,
) -> ColumnElement[bool]:
    """SQL expressions are immutable: one is built per (model, domains, principal, day) and
    reused by every request of that caller that day (``today`` is in the key because the
    occupancy rules compare with it)."""
    rule = RULES[model]
    clauses: list[ColumnElement[bool]] = []
    if domains and rule.staff is not None:
        clauses.append(rule.staff(domains))
    if own_principal is not None and rule.own is not None:
        clauses.append(rule.own(own_principal))
    if assigned_principal is not None and rule.assigned is not None:
        clauses.append(rule.assigned(assigned_principal))
    if not clauses:
        return false()
    return or_(*clauses) if len(clauses) > 1 else clauses[0]


def scoped(statement: S, model: type[Any], permissions: Permissions, action: str = "read") -> S:
    """``statement`` restricted to the rows of ``model`` the caller may ``action``."""
    return statement.where(predicate(model, permissions, action))
