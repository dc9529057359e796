"""Maintenance plans (保养计划): their occurrences as MAINTENANCE tickets, and completions.

A plan falls due on ``next_due_date``. From ``lead_days`` before it, the daily job opens one
MAINTENANCE ticket for that occurrence: exactly once per (plan, due date) — the plan row is
locked and re-checked, and the unique key on tickets (maintenance_plan_id, plan_due_date)
stands behind it, so two workers at once still make one ticket. The ticket must be resolved
by the end of the due day (its ``resolve_due_at``), so an overdue plan's ticket escalates
like any late ticket.

Resolving the ticket calls :func:`complete_occurrence`: a maintenance record (who, when, the
checklist's results, notes) and the next due date counted FROM THE COMPLETION, not from the
old schedule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import String, and_, cast, exists, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authz.models import CasbinRule
from backend.accounts.models import User, UserKind
from backend.assets.errors import AssetError, AssetErrorCode
from backend.assets.models import Asset, AssetStatus, AssetType, MaintenancePlan, MaintenanceRecord
from backend.assets.schedule import next_due, parse_cron
from backend.audit import service as audit
from backend.db import local_today, utcnow
from backend.property.models import Estate
from backend.tickets.lifecycle import Action, transition
from backend.tickets.models import Ticket, TicketChannel, TicketKind, TicketPriority, TicketStatus
from backend.tickets.service import NewTicket, open_ticket

log = structlog.get_logger(__name__)

MAX_CHECKLIST_ITEMS = 50
MAX_INTERVAL_DAYS = 3660
MAX_INTERVAL_MONTHS = 120
MAX_LEAD_DAYS = 365
CLOSED_STATUSES = (TicketStatus.RESOLVED, TicketStatus.CLOSED, TicketStatus.CANCELLED)

# The ticket category of a plan's occurrences, by the asset type (the company's default categories).
CATEGORY_OF_TYPE = {
    AssetType.ELEVATOR: "elevator",
    AssetType.WATER_PUMP: "plumbing",
    AssetType.FIRE_EQUIPMENT: "security",
    AssetType.GENERATOR: "electrical",
    AssetType.TRANSFORMER: "electrical",
    AssetType.HVAC: "electrical",
    AssetType.LIGHTING: "electrical",
    AssetType.CAMERA: "security",
    AssetType.DOOR_CONTROLLER: "doors_locks",
    AssetType.BARRIER_GATE: "doors_locks",
    AssetType.SENSOR: "security",
    AssetType.OTHER: "other",
}


# -- plans ---------------------------------------------------------------------------------


@dataclass(slots=True)
class PlanData:
    name: str
    first_due_date: dt.date
    asset_id: int | None = None
    asset_type: AssetType | None = None
    interval_days: int | None = None
    interval_months: int | None = None
    cron: str | None = None
    lead_days: int = 3
    checklist: list[str] = field(default_factory=list)
    assignee_id: int | None = None


def _name(value: str) -> str:
    name = (value or "").strip()
    if not 1 <= len(name) <= 100:
        raise AssetError(AssetErrorCode.INVALID_INPUT, "A name of 1 to 100 characters.", "name")
    return name


def check_schedule(interval_days: int | None, interval_months: int | None, cron: str | None) -> str | None:
    """Exactly one of the three, in range; returns the cron expression normalised."""
    given = [v for v in (interval_days, interval_months, cron) if v is not None]
    if len(given) != 1:
        raise AssetError(
            AssetErrorCode.INVALID_SCHEDULE, "Give exactly one of intervalDays, intervalMonths, cron.", "intervalDays"
        )
    if interval_days is not None and not 1 <= interval_days <= MAX_INTERVAL_DAYS:
        raise AssetError(AssetErrorCode.INVALID_SCHEDULE, f"1 to {MAX_INTERVAL_DAYS} days.", "intervalDays")
    if interval_months is not None and not 1 <= interval_months <= MAX_INTERVAL_MONTHS:
        raise AssetError(AssetErrorCode.INVALID_SCHEDULE, f"1 to {MAX_INTERVAL_MONTHS} months.", "intervalMonths")
    if cron is not None:
        cron = " ".join(cron.split())
        parse_cron(cron)
    return cron


def _lead_days(value: int) -> int:
    if not 0 <= value <= MAX_LEAD_DAYS:
        raise AssetError(AssetErrorCode.INVALID_INPUT, f"Lead days from 0 to {MAX_LEAD_DAYS}.", "leadDays")
    return value


def check_checklist(items: Sequence[str]) -> list[dict[str, Any]]:
    """Up to 50 distinct items of 1 to 200 characters, stored as ``[{"item": …}]``."""
    cleaned = [(item or "").strip() for item in items]
    if len(cleaned) > MAX_CHECKLIST_ITEMS or any(not 1 <= len(i) <= 200 for i in cleaned):
        raise AssetError(AssetErrorCode.INVALID_CHECKLIST, "Up to 50 items of 1 to 200 characters each.", "checklist")
    if len(set(cleaned)) != len(cleaned):
        raise AssetError(AssetErrorCode.INVALID_CHECKLIST, "Checklist items are distinct.", "checklist")
    return [{"item": item} for item in cleaned]


async def check_assignee(session: AsyncSession, estate: Estate, assignee_id: int | None) -> None:
    """An active staff account holding a role at or above the estate's org unit."""
    if assignee_id is None:
        return
    found = await session.scalar(
        select(User.id).where(
            User.id == assignee_id,
            User.kind == UserKind.STAFF,
            User.is_active,
            exists().where(
                CasbinRule.ptype == "g",
                CasbinRule.v0 == literal("u:") + cast(User.id, String),
                literal(estate.org_path).startswith(CasbinRule.v2),
            ),
        )
    )
    if found is None:
        raise AssetError(AssetErrorCode.INVALID_ASSIGNEE, "Not a staff member of the estate.", "assigneeId")


async def create_plan(
    session: AsyncSession, *, estate: Estate, data: PlanData, actor_id: int | None, request_id: str | None
) -> MaintenancePlan:
    if (data.asset_id is None) == (data.asset_type is None):
        raise AssetError(AssetErrorCode.INVALID_TARGET, "Give exactly one of assetId, assetType.", "assetId")
    if data.asset_id is not None:
        asset = await session.get(Asset, data.asset_id)
        if asset is None or asset.estate_id != estate.id:
            raise AssetError(AssetErrorCode.INVALID_TARGET, "Not an asset of the estate.", "assetId")
        if asset.status is AssetStatus.RETIRED:
            raise AssetError(AssetErrorCode.ASSET_RETIRED, "A retired asset is not maintained.", "assetId")
    cron = check_schedule(data.interval_days, data.interval_months, data.cron)
    await check_assignee(session, estate, data.assignee_id)
    plan = MaintenancePlan(
        estate_id=estate.id,
        name=_name(data.name),
        asset_id=data.asset_id,
        asset_type=data.asset_type,
        interval_days=data.interval_days,
        interval_months=data.interval_months,
        cron=cron,
        lead_days=_lead_days(data.lead_days),
        checklist=check_checklist(data.checklist),
        assignee_id=data.assignee_id,
        next_due_date=data.first_due_date,
        active=True,
        created_by_id=actor_id,
    )
    session.add(plan)
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="maintenance_plan.create",
        target_type="MaintenancePlan",
        target_id=plan.id,
        request_id=request_id,
        detail={"estateId": estate.id, "assetId": data.asset_id, "nextDueDate": plan.next_due_date.isoformat()},
    )
    return plan


async def lock_plan(session: AsyncSession, plan_id: int) -> MaintenancePlan:
    plan = await session.scalar(
        select(MaintenancePlan)
        .where(MaintenancePlan.id == plan_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if plan is None:
        raise AssetError(AssetErrorCode.NOT_FOUND, "No such maintenance plan.", "planId")
    return plan


SCHEDULE_FIELDS = ("interval_days", "interval_months", "cron")


async def update_plan(
    session: AsyncSession, *, plan_id: int, changes: Mapping[str, Any], actor_id: int | None, request_id: str | None
) -> MaintenancePlan:
    """Change a plan's name, lead days, checklist, assignee, next due date or schedule (any
    schedule field given replaces the schedule: exactly one of the three then)."""
    plan = await lock_plan(session, plan_id)
    if not plan.active:
        raise AssetError(AssetErrorCode.PLAN_INACTIVE, "The plan is deactivated.", "planId")
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = _name(changes["name"])
    if "lead_days" in changes:
        values["lead_days"] = _lead_days(changes["lead_days"])
    if "checklist" in changes:
        values["checklist"] = check_checklist(changes["checklist"] or [])
    if "assignee_id" in changes:
        estate = await session.get(Estate, plan.estate_id)
        assert estate is not None
        await check_assignee(session, estate, changes["assignee_id"])
        values["assignee_id"] = changes["assignee_id"]
    if "next_due_date" in changes:
        if changes["next_due_date"] is None:
            raise AssetError(AssetErrorCode.INVALID_INPUT, "nextDueDate cannot be null.", "nextDueDate")
        values["next_due_date"] = changes["next_due_date"]
    if any(name in changes for name in SCHEDULE_FIELDS):
        schedule = {name: changes.get(name) for name in SCHEDULE_FIELDS}
        schedule["cron"] = check_schedule(**schedule)
        values.update(schedule)
    for name, value in values.items():
        setattr(plan, name, value)
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="maintenance_plan.update",
        target_type="MaintenancePlan",
        target_id=plan.id,
        request_id=request_id,
        detail={"fields": sorted(values)},
    )
    return plan


async def deactivate_plan(
    session: AsyncSession, *, plan_id: int, actor_id: int | None, request_id: str | None
) -> MaintenancePlan:
    plan = await lock_plan(session, plan_id)
    if not plan.active:
        raise AssetError(AssetErrorCode.PLAN_INACTIVE, "The plan is deactivated already.", "planId")
    plan.active = False
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="maintenance_plan.deactivate",
        target_type="MaintenancePlan",
        target_id=plan.id,
        request_id=request_id,
    )
    return plan


# -- occurrences -----------------------------------------------------------------------------


def end_of_day(day: dt.date, zone: str) -> dt.datetime:
    """The first instant after ``day`` in the company's time zone."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZoneInfo(zone))


def start_of_day(day: dt.date, zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), ZoneInfo(zone))


def local_date(at: dt.datetime, zone: str) -> dt.date:
    return at.astimezone(ZoneInfo(zone)).date()


def _occurrence_ticket(plan_id: int, due: dt.date) -> Any:
    return and_(Ticket.maintenance_plan_id == plan_id, Ticket.plan_due_date == due)


def due_for_tickets(today: dt.date) -> Any:
    """Active plans inside their lead time whose current occurrence has no ticket yet."""
    return select(MaintenancePlan.id).where(
        MaintenancePlan.active,
        MaintenancePlan.next_due_date - MaintenancePlan.lead_days <= today,
        ~exists().where(
            Ticket.maintenance_plan_id == MaintenancePlan.id, Ticket.plan_due_date == MaintenancePlan.next_due_date
        ),
    )


def _description(plan: MaintenancePlan, assets: Sequence[Asset]) -> str:
    lines = [f"保养计划: {plan.name}", f"到期日: {plan.next_due_date.isoformat()}"]
    if assets:
        lines.append("设备: " + ", ".join(f"{a.code} {a.name}" for a in assets))
    if plan.checklist:
        lines.append("检查项:")
        lines.extend(f"- {entry['item']}" for entry in plan.checklist)
    return "\n".join(lines)


async def open_occurrence(
    session: AsyncSession, plan_id: int, *, today: dt.date, zone: str, now: dt.datetime | None = None
) -> Ticket | None:
    """The MAINTENANCE ticket of the plan's current occurrence, if it is within the lead time
    and has none yet; ``None`` otherwise (inactive, too early, or opened already — by this
    run, an earlier one or a concurrent worker)."""
    now = now or utcnow()
    plan = await lock_plan(session, plan_id)
    due = plan.next_due_date
    if not plan.active or due - dt.timedelta(days=plan.lead_days) > today:
        return None
    if await session.scalar(select(Ticket.id).where(_occurrence_ticket(plan.id, due))) is not None:
        return None
    estate = await session.get(Estate, plan.estate_id)
    assert estate is not None
    if plan.asset_id is not None:
        assets = list((await session.scalars(select(Asset).where(Asset.id == plan.asset_id))).all())
    else:
        assets = list(
            (
                await session.scalars(
                    select(Asset)
                    .where(
                        Asset.estate_id == plan.estate_id,
                        Asset.type == plan.asset_type,
                        Asset.status != AssetStatus.RETIRED,
                    )
                    .order_by(Asset.code)
                )
            ).all()
        )
    asset_type = assets[0].type if plan.asset_id is not None and assets else plan.asset_type
    new = NewTicket(
        estate=estate,
        kind=TicketKind.MAINTENANCE,
        category_code=CATEGORY_OF_TYPE.get(asset_type or AssetType.OTHER, "other"),
        title=f"保养: {plan.name} {due.isoformat()}"[:120],
        channel=TicketChannel.SYSTEM,
        priority=TicketPriority.NORMAL,
        description=_description(plan, assets),
        location=(assets[0].location if plan.asset_id is not None and assets else ""),
        asset_id=plan.asset_id,
        maintenance_plan_id=plan.id,
        plan_due_date=due,
    )
    try:
        async with session.begin_nested():
            ticket = await open_ticket(session, new, actor_id=None, now=now)
    except IntegrityError as exc:  # a concurrent run took this occurrence
        if "uq_tickets_maintenance_plan_id_plan_due_date" in str(exc.orig):
            return None
        raise
    # Done by the end of the due day; work starts by the due day's morning at the latest.
    ticket.resolve_due_at = end_of_day(due, zone)
    ticket.response_due_at = min(max(ticket.response_due_at, start_of_day(due, zone)), ticket.resolve_due_at)
    await session.flush()
    if plan.assignee_id is not None:
        ticket, _ = await transition(
            session, ticket.id, Action.ASSIGN, actor_id=None, note="保养计划指派", assignee_id=plan.assignee_id, now=now
        )
        # The assignee hears of it like of any assignment (in-app and by text, once).
        from backend.tickets import dispatch

        await dispatch.after_assign(session, ticket, actor_id=None)
    return ticket


@dataclass(slots=True)
class PlanRunReport:
    opened: int = 0
    skipped: int = 0
    failed: int = 0
    ticket_ids: list[int] = field(default_factory=list)


async def open_due_occurrences(
    sessionmaker: async_sessionmaker[AsyncSession], *, today: dt.date, zone: str
) -> PlanRunReport:
    """The daily job's work: one small transaction per plan found due (set-based selection).
    Safe to run twice or on two workers at once (see the module's docstring)."""
    report = PlanRunReport()
    async with sessionmaker() as session:
        plan_ids = list((await session.scalars(due_for_tickets(today).order_by(MaintenancePlan.id))).all())
    for plan_id in plan_ids:
        try:
            async with sessionmaker() as session, session.begin():
                ticket = await open_occurrence(session, plan_id, today=today, zone=zone)
                ticket_id = ticket.id if ticket is not None else None
        except Exception:  # one bad plan does not stop the others
            log.exception("maintenance.occurrence_failed", plan_id=plan_id, day=today.isoformat())
            report.failed += 1
            continue
        if ticket_id is None:
            report.skipped += 1
        else:
            report.opened += 1
            report.ticket_ids.append(ticket_id)
    return report


@dataclass(frozen=True, slots=True)
class ChecklistResult:
    item: str
    ok: bool
    note: str = ""


def check_results(
    plan: MaintenancePlan, results: Sequence[ChecklistResult | Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Every item of the plan's checklist answered once, nothing else; as stored."""
    expected = [entry["item"] for entry in plan.checklist]
    answers: dict[str, ChecklistResult] = {}
    for raw in results:
        result = (
            raw
            if isinstance(raw, ChecklistResult)
            else ChecklistResult(item=str(raw.get("item", "")), ok=bool(raw.get("ok")), note=str(raw.get("note") or ""))
        )
        item = result.item.strip()
        if item not in expected or item in answers:
            raise AssetError(
                AssetErrorCode.INVALID_CHECKLIST,
                f"Not an item of the plan's checklist, or twice: {item!r}.",
                "checklist",
            )
        if len(result.note) > 500:
            raise AssetError(AssetErrorCode.INVALID_CHECKLIST, "A note of at most 500 characters.", "checklist")
        answers[item] = result
    missing = [item for item in expected if item not in answers]
    if missing:
        raise AssetError(AssetErrorCode.INVALID_CHECKLIST, f"Unanswered: {', '.join(missing)}.", "checklist")
    return [{"item": item, "ok": answers[item].ok, "note": answers[item].note.strip()} for item in expected]


async def complete_occurrence(
    session: AsyncSession,
    ticket: Ticket,
    *,
    checklist: Sequence[ChecklistResult | Mapping[str, Any]],
    notes: str,
    actor_id: int | None,
    now: dt.datetime | None = None,
    zone: str | None = None,
) -> MaintenanceRecord:
    """Record a plan's maintenance as done (called when its ticket is resolved, in the same
    transaction): the record, the plan's ``last_completed_at`` and its next due date counted
    from the completion day, and the asset back IN_SERVICE if it was UNDER_MAINTENANCE.
    A ticket resolved again after a reopen updates its record and counts from the new day."""
    from backend.settings import get_settings

    zone = zone or get_settings().timezone
    if ticket.maintenance_plan_id is None:
        raise AssetError(AssetErrorCode.INVALID_INPUT, "Not a maintenance plan's ticket.", "ticketId")
    if len(notes or "") > 4000:
        raise AssetError(AssetErrorCode.INVALID_INPUT, "Notes of at most 4000 characters.", "notes")
    plan = await lock_plan(session, ticket.maintenance_plan_id)
    stored = check_results(plan, checklist)
    performed_at = now or ticket.resolved_at or utcnow()
    asset_id = ticket.asset_id or plan.asset_id
    record = await session.scalar(select(MaintenanceRecord).where(MaintenanceRecord.ticket_id == ticket.id))
    if record is None:
        record = MaintenanceRecord(plan_id=plan.id, asset_id=asset_id, ticket_id=ticket.id)
        session.add(record)
    record.performed_by_id = actor_id
    record.performed_at = performed_at
    record.checklist_results = stored
    record.notes = (notes or "").strip()
    plan.last_completed_at = performed_at
    plan.next_due_date = next_due(
        local_date(performed_at, zone),
        interval_days=plan.interval_days,
        interval_months=plan.interval_months,
        cron=plan.cron,
    )
    if asset_id is not None:
        asset = await session.scalar(select(Asset).where(Asset.id == asset_id).with_for_update())
        if asset is not None and asset.status is AssetStatus.UNDER_MAINTENANCE:
            asset.status = AssetStatus.IN_SERVICE
    await session.flush()
    return record


# -- what is due -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DuePlan:
    plan: MaintenancePlan
    overdue: bool
    days_until_due: int
    open_ticket: Ticket | None


async def due_plans(
    session: AsyncSession, plan_filter: Any, *, within_days: int, today: dt.date | None = None
) -> list[DuePlan]:
    """Active plans due within ``within_days`` (overdue ones included), soonest first, each
    with the open ticket of its current occurrence. ``plan_filter`` is the caller's scope."""
    today = today or local_today()
    plans = list(
        (
            await session.scalars(
                select(MaintenancePlan)
                .where(
                    plan_filter,
                    MaintenancePlan.active,
                    MaintenancePlan.next_due_date <= today + dt.timedelta(days=within_days),
                )
                .order_by(MaintenancePlan.next_due_date, MaintenancePlan.id)
            )
        ).all()
    )
    tickets: dict[int, Ticket] = {}
    if plans:
        pairs = [_occurrence_ticket(p.id, p.next_due_date) for p in plans]
        for ticket in (
            await session.scalars(select(Ticket).where(or_(*pairs), Ticket.status.not_in(CLOSED_STATUSES)))
        ).all():
            assert ticket.maintenance_plan_id is not None
            tickets[ticket.maintenance_plan_id] = ticket
    return [
        DuePlan(
            plan=p,
            overdue=p.next_due_date < today,
            days_until_due=(p.next_due_date - today).days,
            open_ticket=tickets.get(p.id),
        )
        for p in plans
    ]
