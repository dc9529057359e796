"""Maintenance plans: creating and editing them, who may, the daily job opening one ticket per
occurrence within the lead time, completion counting from the completion day, what is due."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from assets_support import CREATE_PLAN, DEACTIVATE_PLAN, MAINTENANCE_DUE, PLANS, UPDATE_PLAN, Site, codes
from sqlalchemy import func, select

from backend.accounts.models import User
from backend.assets import plans, service
from backend.assets.errors import AssetError, AssetErrorCode
from backend.assets.models import Asset, AssetStatus, AssetType, MaintenancePlan, MaintenanceRecord
from backend.db import local_today, to_global_id
from backend.property.models import Estate
from backend.tickets.lifecycle import Action, transition
from backend.tickets.models import Ticket, TicketCategory, TicketChannel, TicketKind, TicketStatus
from workers.maintenance import open_maintenance_tickets
from workers.runtime import WorkerRuntime

ZONE = "Asia/Shanghai"
ROLES = ("admin", "manager.north", "cs.a", "finance.north", "tech.a", "guard.a", "supervisor.north",
         "supervisor.south", "owner.a1", None)  # fmt: skip
WRITERS = {"admin", "manager.north"}
PLAN_READERS = {"admin", "manager.north", "cs.a", "tech.a", "supervisor.north"}
# The job runs on a day of its own, long past: no demo plan (due around the real today) is in its lead time.
DUE = dt.date(2001, 3, 20)
CHECKLIST = ["曳引机检查", "门锁检查", "润滑"]


async def _user_id(runtime: Any, username: str) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(User.id).where(User.username == username)) or 0)


async def _asset(runtime: Any, site: Site, code: str, type_: AssetType = AssetType.ELEVATOR) -> Asset:
    async with runtime.sessionmaker() as session, session.begin():
        data = service.AssetData(code=code, type=type_, name=f"设备 {code}", location="1号楼电梯井")
        asset = await service.create_asset(session, estate=site.estate, data=data, actor_id=None, request_id=None)
    site.assets[code] = asset
    return asset


async def _plan(runtime: Any, site: Site, *, due: dt.date = DUE, **fields: Any) -> MaintenancePlan:
    fields.setdefault("interval_days", 15)
    fields.setdefault("checklist", CHECKLIST)
    if "asset_id" not in fields:
        fields.setdefault("asset_type", AssetType.ELEVATOR)
    async with runtime.sessionmaker() as session, session.begin():
        estate = await session.get(Estate, site.estate.id)
        assert estate is not None
        plan = await plans.create_plan(
            session,
            estate=estate,
            data=plans.PlanData(name=fields.pop("name", "电梯半月保"), first_due_date=due, **fields),
            actor_id=None,
            request_id=None,
        )
    site.plans.append(plan)
    return plan


async def _tickets(runtime: Any, plan: MaintenancePlan) -> list[Ticket]:
    async with runtime.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Ticket).where(Ticket.maintenance_plan_id == plan.id).order_by(Ticket.plan_due_date)
                )
            ).all()
        )


async def _stored_plan(runtime: Any, plan_id: int) -> MaintenancePlan:
    async with runtime.sessionmaker() as session:
        stored = await session.get(MaintenancePlan, plan_id)
    assert stored is not None
    return stored


# -- creating and editing ----------------------------------------------------------------------


async def test_a_manager_plans_an_assets_maintenance(as_user: Any, runtime: Any, site: Site) -> None:
    # given
    asset = await _asset(runtime, site, "AS-PL-EL1")
    tech = await _user_id(runtime, "tech.a")
    # when
    body = await (await as_user("manager.north")).data(CREATE_PLAN, {"input": {
        "estateId": site.estate.gid, "name": " 1号梯半月保 ", "assetId": asset.gid, "intervalDays": 15,
        "leadDays": 2, "checklist": CHECKLIST, "assigneeId": to_global_id("User", tech),
        "firstDueDate": "2026-12-01"}})  # fmt: skip
    # then
    payload = body["createMaintenancePlan"]
    assert payload["errors"] == []
    plan = payload["maintenancePlan"]
    assert {k: v for k, v in plan.items() if k != "id"} == {
        "name": "1号梯半月保", "assetType": None, "intervalDays": 15, "intervalMonths": None, "cron": None,
        "leadDays": 2, "checklist": CHECKLIST, "nextDueDate": "2026-12-01", "lastCompletedAt": None, "active": True,
        "estate": {"code": site.estate.code}, "asset": {"code": "AS-PL-EL1"}, "assignee": {"username": "tech.a"},
    }  # fmt: skip


@pytest.mark.parametrize(("change", "code", "field"), [
    ({"assetType": "ELEVATOR"}, "INVALID_TARGET", "assetId"),  # an asset and a type
    ({"assetId": None}, "INVALID_TARGET", "assetId"),  # neither
    ({"assetId": "south"}, "INVALID_TARGET", "assetId"),  # an asset of another estate
    ({"assetId": "retired"}, "ASSET_RETIRED", "assetId"),
    ({"intervalMonths": 3}, "INVALID_SCHEDULE", "intervalDays"),  # two schedules
    ({"intervalDays": None}, "INVALID_SCHEDULE", "intervalDays"),  # none
    ({"intervalDays": 0}, "INVALID_SCHEDULE", "intervalDays"),
    ({"intervalDays": None, "intervalMonths": 0}, "INVALID_SCHEDULE", "intervalMonths"),
    ({"intervalDays": None, "cron": "0 8 31 2 *"}, "INVALID_CRON", "cron"),
    ({"intervalDays": None, "cron": "every day"}, "INVALID_CRON", "cron"),
    ({"leadDays": -1}, "INVALID_INPUT", "leadDays"),
    ({"name": ""}, "INVALID_INPUT", "name"),
    ({"checklist": ["润滑", "润滑"]}, "INVALID_CHECKLIST", "checklist"),
    ({"checklist": [""]}, "INVALID_CHECKLIST", "checklist"),
    ({"assigneeId": "owner.a1"}, "INVALID_ASSIGNEE", "assigneeId"),  # a resident
    ({"assigneeId": "supervisor.south"}, "INVALID_ASSIGNEE", "assigneeId"),  # staff of another branch
    ({"assigneeId": "not-an-id"}, "INVALID_ASSIGNEE", "assigneeId"),
])  # fmt: skip
async def test_an_invalid_plan_is_refused_with_its_code_and_nothing_is_written(
    as_user: Any, runtime: Any, site: Site, south_site: Site, change: dict[str, Any], code: str, field: str
) -> None:
    # given
    asset = await _asset(runtime, site, "AS-PL-OK")
    if change.get("assetId") == "south":
        change["assetId"] = (await _asset(runtime, south_site, "AS-PL-SOUTH")).gid
    if change.get("assetId") == "retired":
        retired = await _asset(runtime, site, "AS-PL-RET")
        async with runtime.sessionmaker() as session, session.begin():
            await service.retire_asset(session, asset_id=retired.id, actor_id=None, request_id=None)
        change["assetId"] = retired.gid
    if change.get("assigneeId") in ("owner.a1", "supervisor.south"):
        change["assigneeId"] = to_global_id("User", await _user_id(runtime, change["assigneeId"]))
    # when
    body = await (await as_user("admin")).data(CREATE_PLAN, {"input": {
        "estateId": site.estate.gid, "name": "保养", "assetId": asset.gid, "intervalDays": 15,
        "firstDueDate": "2026-12-01", **change}})  # fmt: skip
    # then
    payload = body["createMaintenancePlan"]
    assert payload["maintenancePlan"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)]
    async with runtime.sessionmaker() as session:
        made = await session.scalar(select(func.count()).where(MaintenancePlan.estate_id == site.estate.id))
    assert made == 0


async def test_a_plan_is_edited_and_deactivated(as_user: Any, runtime: Any, site: Site) -> None:
    # given
    plan = await _plan(runtime, site)
    manager = await as_user("manager.north")
    # when the schedule becomes a cron expression and the checklist shorter
    edited = await manager.data(UPDATE_PLAN, {"input": {
        "planId": plan.gid, "name": "电梯月保", "cron": "0 8 1 * *", "checklist": ["润滑"], "leadDays": 5,
        "nextDueDate": "2026-12-01"}})  # fmt: skip
    two = await manager.data(UPDATE_PLAN, {"input": {"planId": plan.gid, "intervalDays": 7, "intervalMonths": 1}})
    off = await manager.data(DEACTIVATE_PLAN, {"input": {"planId": plan.gid}})
    late = await manager.data(UPDATE_PLAN, {"input": {"planId": plan.gid, "name": "太迟"}})
    # then
    got = edited["updateMaintenancePlan"]["maintenancePlan"]
    assert (got["name"], got["cron"], got["intervalDays"], got["checklist"], got["leadDays"], got["nextDueDate"]) == (
        "电梯月保", "0 8 1 * *", None, ["润滑"], 5, "2026-12-01"
    )  # fmt: skip
    assert codes(two["updateMaintenancePlan"]) == ["INVALID_SCHEDULE"]
    assert off["deactivateMaintenancePlan"]["maintenancePlan"]["active"] is False
    assert codes(late["updateMaintenancePlan"]) == ["PLAN_INACTIVE"]
    stored = await _stored_plan(runtime, plan.id)
    assert (stored.name, stored.cron, stored.active) == ("电梯月保", "0 8 1 * *", False)


# -- who may -----------------------------------------------------------------------------------


def _verdict(body: dict[str, Any], field: str) -> str:
    if body.get("errors"):
        assert body.get("data") is None, body
        return str(body["errors"][0]["extensions"]["code"])
    return "NOT_FOUND" if codes(body["data"][field]) == ["NOT_FOUND"] else "ALLOWED"


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_create_edit_and_deactivate_plans(
    as_user: Any, runtime: Any, site: Site, role: str | None
) -> None:
    # given
    existing = await _plan(runtime, site, name="已有计划")
    client = await as_user(role)
    # when
    created = await client.execute(CREATE_PLAN, {"input": {
        "estateId": site.estate.gid, "name": "新计划", "assetType": "WATER_PUMP", "intervalMonths": 3,
        "firstDueDate": "2026-12-01"}})  # fmt: skip
    edited = await client.execute(UPDATE_PLAN, {"input": {"planId": existing.gid, "name": "改名"}})
    stopped = await client.execute(DEACTIVATE_PLAN, {"input": {"planId": existing.gid}})
    # then
    expected = "UNAUTHENTICATED" if role is None else "ALLOWED" if role in WRITERS else "FORBIDDEN"
    verdicts = (
        _verdict(created, "createMaintenancePlan"),
        _verdict(edited, "updateMaintenancePlan"),
        _verdict(stopped, "deactivateMaintenancePlan"),
    )
    assert verdicts == (expected, expected, expected)
    async with runtime.sessionmaker() as session:
        names = dict(
            (await session.execute(
                select(MaintenancePlan.name, MaintenancePlan.active).where(MaintenancePlan.estate_id == site.estate.id)
            )).all()
        )  # fmt: skip
    assert names == ({"新计划": True, "改名": False} if expected == "ALLOWED" else {"已有计划": True})


@pytest.mark.parametrize("role", ["manager.north", "supervisor.north"])
async def test_a_plan_out_of_scope_is_not_found(as_user: Any, runtime: Any, south_site: Site, role: str) -> None:
    # given a South plan
    plan = await _plan(runtime, south_site)
    # when
    body = await (await as_user(role)).execute(DEACTIVATE_PLAN, {"input": {"planId": plan.gid}})
    # then
    assert _verdict(body, "deactivateMaintenancePlan") == ("NOT_FOUND" if role == "manager.north" else "FORBIDDEN")
    assert (await _stored_plan(runtime, plan.id)).active is True


@pytest.mark.parametrize("role", [*ROLES, "owner.c1"])
async def test_who_sees_plans_and_what_is_due(
    as_user: Any, runtime: Any, site: Site, south_site: Site, role: str | None
) -> None:
    # given a plan due tomorrow in each site
    tomorrow = local_today() + dt.timedelta(days=1)
    north = await _plan(runtime, site, due=tomorrow, name="北区计划")
    south = await _plan(runtime, south_site, due=tomorrow, name="南区计划")
    client = await as_user(role)
    # when
    listed = await client.execute(PLANS, {"filter": {"active": True}})
    due = {
        name: await client.execute(MAINTENANCE_DUE, {"estateId": s.estate.gid, "withinDays": 7})
        for name, s in (("北区计划", site), ("南区计划", south_site))
    }
    # then
    if role is None:
        assert listed["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert all(d["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" for d in due.values())
        return
    sees = {"北区计划": role in PLAN_READERS, "南区计划": role in ("admin", "supervisor.south")}
    seen_ids = {e["node"]["id"] for e in listed["data"]["maintenancePlans"]["edges"]}
    assert (north.gid in seen_ids, south.gid in seen_ids) == (sees["北区计划"], sees["南区计划"])
    for name, reply in due.items():
        assert [d["plan"]["name"] for d in reply["data"]["maintenanceDue"]] == ([name] if sees[name] else [])


# -- the daily job -----------------------------------------------------------------------------


async def test_the_job_opens_a_ticket_only_within_the_lead_time_and_once(runtime: Any, site: Site) -> None:
    # given an elevator's plan due DUE, three days' lead, assigned to tech.a
    asset = await _asset(runtime, site, "AS-JOB-EL1")
    tech = await _user_id(runtime, "tech.a")
    plan = await _plan(runtime, site, asset_id=asset.id, lead_days=3, assignee_id=tech)
    sessionmaker = runtime.sessionmaker
    # when the job runs four days ahead, then three days ahead twice
    early = await plans.open_due_occurrences(sessionmaker, today=DUE - dt.timedelta(days=4), zone=ZONE)
    tickets_early = await _tickets(runtime, plan)
    first = await plans.open_due_occurrences(sessionmaker, today=DUE - dt.timedelta(days=3), zone=ZONE)
    second = await plans.open_due_occurrences(sessionmaker, today=DUE - dt.timedelta(days=3), zone=ZONE)
    # then
    assert tickets_early == []
    assert early.failed == first.failed == second.failed == 0
    tickets = await _tickets(runtime, plan)
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket.id in first.ticket_ids
    assert ticket.id not in second.ticket_ids
    assert (ticket.kind, ticket.channel, ticket.status, ticket.assignee_id) == (
        TicketKind.MAINTENANCE, TicketChannel.SYSTEM, TicketStatus.ASSIGNED, tech
    )  # fmt: skip
    assert (ticket.plan_due_date, ticket.asset_id, ticket.estate_id) == (DUE, asset.id, site.estate.id)
    assert ticket.title == f"保养: 电梯半月保 {DUE.isoformat()}"
    assert all(item in ticket.description for item in CHECKLIST)
    # done by the end of the due day (company time)
    assert ticket.resolve_due_at == dt.datetime(2001, 3, 21, tzinfo=ZoneInfo(ZONE))
    async with runtime.sessionmaker() as session:
        category = await session.scalar(select(TicketCategory.code).where(TicketCategory.id == ticket.category_id))
    assert category == "elevator"


@pytest.mark.parametrize(("opened", "respond_by"), [
    # three days ahead: start by the due day's morning, finish by its end (company time)
    (dt.datetime(2001, 3, 17, 5, 20, tzinfo=ZoneInfo(ZONE)), dt.datetime(2001, 3, 20, tzinfo=ZoneInfo(ZONE))),
    # on the due day at 22:00: the priority's response time, capped by the end of the day
    (dt.datetime(2001, 3, 20, 22, 0, tzinfo=ZoneInfo(ZONE)), dt.datetime(2001, 3, 21, tzinfo=ZoneInfo(ZONE))),
    # overdue already: both deadlines are the end of the due day
    (dt.datetime(2001, 3, 25, 5, 20, tzinfo=ZoneInfo(ZONE)), dt.datetime(2001, 3, 21, tzinfo=ZoneInfo(ZONE))),
])  # fmt: skip
async def test_an_occurrences_deadlines_follow_its_due_day(
    runtime: Any, site: Site, opened: dt.datetime, respond_by: dt.datetime
) -> None:
    # given
    plan = await _plan(runtime, site, lead_days=3)
    # when
    async with runtime.sessionmaker() as session, session.begin():
        ticket = await plans.open_occurrence(session, plan.id, today=opened.date(), zone=ZONE, now=opened)
        assert ticket is not None
        deadlines = (ticket.response_due_at, ticket.resolve_due_at)
    # then
    assert deadlines == (respond_by, dt.datetime(2001, 3, 21, tzinfo=ZoneInfo(ZONE)))


async def test_two_workers_at_once_open_one_ticket_per_occurrence(runtime: Any, settings: Any, site: Site) -> None:
    # given three plans in their lead time (one per asset type, one for a single pump)
    pump = await _asset(runtime, site, "AS-JOB-P1", AssetType.WATER_PUMP)
    due_plans = [
        await _plan(runtime, site, name="电梯", asset_type=AssetType.ELEVATOR),
        await _plan(runtime, site, name="水泵", asset_id=pump.id, interval_days=None, interval_months=3),
        await _plan(runtime, site, name="消防", asset_type=AssetType.FIRE_EQUIPMENT, interval_days=None,
                    cron="0 8 1 */3 *"),
    ]  # fmt: skip
    workers = [WorkerRuntime.build(settings), WorkerRuntime.build(settings)]
    try:
        # when both workers run the job at the same moment, twice
        for _ in range(2):
            reports = await asyncio.gather(*(open_maintenance_tickets({"runtime": w}, today=DUE) for w in workers))
            assert all(r["failed"] == 0 for r in reports)
    finally:
        for worker in workers:
            await worker.close()
    # then
    for plan in due_plans:
        assert [t.plan_due_date for t in await _tickets(runtime, plan)] == [DUE], plan.name


async def test_an_occurrence_opened_concurrently_by_two_sessions_is_one_ticket(runtime: Any, site: Site) -> None:
    # given
    plan = await _plan(runtime, site)

    async def attempt() -> int | None:
        async with runtime.sessionmaker() as session, session.begin():
            ticket = await plans.open_occurrence(session, plan.id, today=DUE, zone=ZONE)
            return None if ticket is None else ticket.id

    # when
    outcomes = await asyncio.gather(attempt(), attempt(), attempt())
    # then
    assert sum(o is not None for o in outcomes) == 1
    assert len(await _tickets(runtime, plan)) == 1


# -- completing an occurrence --------------------------------------------------------------------


async def _resolved_occurrence(runtime: Any, plan: MaintenancePlan) -> Ticket:
    tech = await _user_id(runtime, "tech.a")
    async with runtime.sessionmaker() as session, session.begin():
        ticket = await plans.open_occurrence(session, plan.id, today=plan.next_due_date, zone=ZONE)
        assert ticket is not None
        await transition(session, ticket.id, Action.ASSIGN, actor_id=None, assignee_id=tech)
        await transition(session, ticket.id, Action.START, actor_id=tech)
        ticket, _ = await transition(session, ticket.id, Action.RESOLVE, actor_id=tech, resolution="已保养")
        return ticket


def _answers(ok: bool = True) -> list[dict[str, Any]]:
    return [{"item": item, "ok": ok, "note": "" if ok else "需更换"} for item in CHECKLIST]


@pytest.mark.parametrize(("schedule", "completed_on", "next_due"), [
    ({"interval_days": 15}, dt.date(2026, 3, 25), dt.date(2026, 4, 9)),  # late: counted from the completion
    ({"interval_days": 15}, dt.date(2026, 3, 12), dt.date(2026, 3, 27)),  # early: likewise
    ({"interval_days": None, "interval_months": 1}, dt.date(2026, 1, 31), dt.date(2026, 2, 28)),
    ({"interval_days": None, "interval_months": 3}, dt.date(2026, 3, 25), dt.date(2026, 6, 25)),
    ({"interval_days": None, "cron": "0 8 1 * *"}, dt.date(2026, 3, 25), dt.date(2026, 4, 1)),
])  # fmt: skip
async def test_completing_an_occurrence_records_it_and_counts_the_next_from_the_completion(
    runtime: Any, site: Site, schedule: dict[str, Any], completed_on: dt.date, next_due: dt.date
) -> None:
    # given a plan due 2026-03-15 for an elevator under maintenance, its ticket resolved
    asset = await _asset(runtime, site, "AS-DONE-1")
    async with runtime.sessionmaker() as session, session.begin():
        await service.update_asset(
            session, asset_id=asset.id, changes={"status": AssetStatus.UNDER_MAINTENANCE}, actor_id=None,
            request_id=None,
        )  # fmt: skip
    plan = await _plan(runtime, site, due=dt.date(2026, 3, 15), asset_id=asset.id, **schedule)
    ticket = await _resolved_occurrence(runtime, plan)
    tech = await _user_id(runtime, "tech.a")
    # late evening in the company's time zone: already the next day in UTC+8, still the day before in UTC
    completed_at = dt.datetime.combine(completed_on, dt.time(23, 30), ZoneInfo(ZONE))
    # when
    async with runtime.sessionmaker() as session, session.begin():
        fresh = await session.get(Ticket, ticket.id)
        assert fresh is not None
        record = await plans.complete_occurrence(
            session, fresh, checklist=_answers(), notes=" 正常 ", actor_id=tech, now=completed_at, zone=ZONE
        )
        record_id = record.id
    # then
    stored = await _stored_plan(runtime, plan.id)
    assert stored.next_due_date == next_due
    assert stored.last_completed_at == completed_at
    async with runtime.sessionmaker() as session:
        saved = await session.get(MaintenanceRecord, record_id)
        status = await session.scalar(select(Asset.status).where(Asset.id == asset.id))
    assert saved is not None
    assert (saved.plan_id, saved.asset_id, saved.ticket_id, saved.performed_by_id, saved.notes) == (
        plan.id, asset.id, ticket.id, tech, "正常"
    )  # fmt: skip
    assert saved.checklist_results == _answers()
    assert status is AssetStatus.IN_SERVICE


@pytest.mark.parametrize("answers", [
    [{"item": "曳引机检查", "ok": True}],  # items left unanswered
    [*_answers(), {"item": "额外项", "ok": True}],  # an item not in the plan
    [*_answers(), {"item": "润滑", "ok": False}],  # an item twice
])  # fmt: skip
async def test_a_completion_with_a_wrong_checklist_changes_nothing(
    runtime: Any, site: Site, answers: list[dict[str, Any]]
) -> None:
    # given
    plan = await _plan(runtime, site, due=dt.date(2026, 3, 15))
    ticket = await _resolved_occurrence(runtime, plan)
    # when
    async with runtime.sessionmaker() as session:
        fresh = await session.get(Ticket, ticket.id)
        assert fresh is not None
        with pytest.raises(AssetError) as caught:
            await plans.complete_occurrence(session, fresh, checklist=answers, notes="", actor_id=None, zone=ZONE)
        await session.rollback()
    # then
    assert caught.value.code is AssetErrorCode.INVALID_CHECKLIST
    async with runtime.sessionmaker() as session:
        records = await session.scalar(select(func.count()).where(MaintenanceRecord.plan_id == plan.id))
    assert records == 0
    stored = await _stored_plan(runtime, plan.id)
    assert (stored.next_due_date, stored.last_completed_at) == (dt.date(2026, 3, 15), None)


async def test_after_a_completion_the_job_opens_the_next_occurrence_not_the_old_one(runtime: Any, site: Site) -> None:
    # given the DUE occurrence done on DUE + 2 (next due DUE + 17)
    plan = await _plan(runtime, site, lead_days=3)
    ticket = await _resolved_occurrence(runtime, plan)
    completed_at = dt.datetime.combine(DUE + dt.timedelta(days=2), dt.time(10), ZoneInfo(ZONE))
    async with runtime.sessionmaker() as session, session.begin():
        fresh = await session.get(Ticket, ticket.id)
        assert fresh is not None
        await plans.complete_occurrence(session, fresh, checklist=_answers(), notes="", actor_id=None,
                                        now=completed_at, zone=ZONE)  # fmt: skip
    # when the job runs the day after and then within the next lead time
    await plans.open_due_occurrences(runtime.sessionmaker, today=DUE + dt.timedelta(days=3), zone=ZONE)
    between = [t.plan_due_date for t in await _tickets(runtime, plan)]
    await plans.open_due_occurrences(runtime.sessionmaker, today=DUE + dt.timedelta(days=14), zone=ZONE)
    # then
    assert between == [DUE]
    assert [t.plan_due_date for t in await _tickets(runtime, plan)] == [DUE, DUE + dt.timedelta(days=17)]


# -- what is due -------------------------------------------------------------------------------


async def test_maintenance_due_lists_due_and_overdue_plans_with_their_open_ticket(
    as_user: Any, runtime: Any, site: Site
) -> None:
    # given plans overdue, due in 3 days, due in 30 days, and a deactivated one due today
    today = local_today()
    overdue = await _plan(runtime, site, due=today - dt.timedelta(days=2), name="逾期")
    soon = await _plan(runtime, site, due=today + dt.timedelta(days=3), name="三天后")
    await _plan(runtime, site, due=today + dt.timedelta(days=30), name="一个月后")
    stopped = await _plan(runtime, site, due=today, name="已停用")
    async with runtime.sessionmaker() as session, session.begin():
        await plans.deactivate_plan(session, plan_id=stopped.id, actor_id=None, request_id=None)
        ticket = await plans.open_occurrence(session, soon.id, today=today, zone=ZONE)
        assert ticket is not None
        number = ticket.number
        ticket_id = ticket.id
    client = await as_user("tech.a")
    # when
    week = (await client.data(MAINTENANCE_DUE, {"estateId": site.estate.gid, "withinDays": 7}))["maintenanceDue"]
    month = (await client.data(MAINTENANCE_DUE, {"estateId": site.estate.gid, "withinDays": 60}))["maintenanceDue"]
    bad = await client.execute(MAINTENANCE_DUE, {"estateId": site.estate.gid, "withinDays": 400})
    # then
    assert week == [
        {"plan": {"id": overdue.gid, "name": "逾期"}, "dueDate": str(today - dt.timedelta(days=2)), "overdue": True,
         "daysUntilDue": -2, "openTicketId": None, "openTicketNumber": None, "openTicketStatus": None},
        {"plan": {"id": soon.gid, "name": "三天后"}, "dueDate": str(today + dt.timedelta(days=3)), "overdue": False,
         "daysUntilDue": 3, "openTicketId": to_global_id("Ticket", ticket_id), "openTicketNumber": number,
         "openTicketStatus": "NEW"},
    ]  # fmt: skip
    assert [d["plan"]["name"] for d in month] == ["逾期", "三天后", "一个月后"]
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_demo_plans_include_due_and_overdue_ones(as_user: Any, runtime: Any, demo_assets: int) -> None:
    # given the demo plans (DEMO-A: elevators due in 2 days, pumps 3 days overdue)
    async with runtime.sessionmaker() as session:
        estate = await session.scalar(select(Estate).where(Estate.code == "DEMO-A"))
    assert estate is not None
    # when
    due = (await (await as_user("tech.a")).data(MAINTENANCE_DUE, {"estateId": estate.gid, "withinDays": 7}))[
        "maintenanceDue"
    ]
    # then
    assert [(d["plan"]["name"], d["overdue"], d["daysUntilDue"]) for d in due] == [
        ("水泵季度检查", True, -3), ("电梯半月保", False, 2)
    ]  # fmt: skip


HISTORY = """
query($filter: AssetFilter) {
  assets(first: 100, filter: $filter) { edges { node {
    code ticketIds openTicketCount estate { code } building { code } parent { code } children { code }
    maintenanceRecords { ticketId notes performedBy { username } plan { name } checklistResults { item ok note } }
  } } }
}
"""


async def test_an_assets_history_shows_its_records_and_tickets_in_a_fixed_number_of_statements(
    as_user: Any, runtime: Any, site: Site, count_statements: Any
) -> None:
    # given an elevator maintained once (its ticket resolved) with a second occurrence open
    asset = await _asset(runtime, site, "AS-HIST-1")
    plan = await _plan(runtime, site, asset_id=asset.id, due=dt.date(2026, 3, 15))
    done = await _resolved_occurrence(runtime, plan)
    tech = await _user_id(runtime, "tech.a")
    async with runtime.sessionmaker() as session, session.begin():
        fresh = await session.get(Ticket, done.id)
        assert fresh is not None
        await plans.complete_occurrence(session, fresh, checklist=_answers(False), notes="门锁磨损", actor_id=tech,
                                        now=dt.datetime(2026, 3, 16, 10, tzinfo=ZoneInfo(ZONE)), zone=ZONE)  # fmt: skip
    async with runtime.sessionmaker() as session, session.begin():
        following = await plans.open_occurrence(session, plan.id, today=dt.date(2026, 3, 31), zone=ZONE)
        assert following is not None
        following_id = following.id
    client = await as_user("manager.north")
    # when
    count_statements.statements.clear()
    one = (await client.data(HISTORY, {"filter": {"search": "AS-HIST-1"}}))["assets"]["edges"]
    few = count_statements.count
    for n in range(2, 8):
        await _asset(runtime, site, f"AS-HIST-{n}")
    count_statements.statements.clear()
    many = (await client.data(HISTORY, {"filter": {"estateId": site.estate.gid}}))["assets"]["edges"]
    # then
    assert one[0]["node"]["ticketIds"] == [to_global_id("Ticket", following_id), to_global_id("Ticket", done.id)]
    assert one[0]["node"]["openTicketCount"] == 1
    assert one[0]["node"]["maintenanceRecords"] == [{
        "ticketId": to_global_id("Ticket", done.id), "notes": "门锁磨损", "performedBy": {"username": "tech.a"},
        "plan": {"name": "电梯半月保"}, "checklistResults": _answers(False),
    }]  # fmt: skip
    assert len(many) == 7
    assert count_statements.count == few
    assert few <= 8, count_statements.statements
