"""Demo tickets: about forty in each demo estate, in every status and kind, with real
histories (opened and stepped through the workflow at past times), ratings, overdue ones, and
one paid repair for owner.a1. Idempotent: nothing is done once demo tickets exist."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.billing.repairs import Charge
from backend.db import local_today, utcnow
from backend.people.models import Occupancy, Person
from backend.property.models import Estate, Unit
from backend.tickets import workflow
from backend.tickets.models import (
    ReturnVisitOutcome,
    Ticket,
    TicketChannel,
    TicketKind,
    TicketPriority,
    TicketStatus,
)
from backend.tickets.service import DEFAULT_CATEGORIES, NewTicket

S = TicketStatus

# Per estate: how many tickets end in each status.
STATUS_MIX = (
    (S.NEW, 6),
    (S.ASSIGNED, 6),
    (S.IN_PROGRESS, 6),
    (S.ON_HOLD, 4),
    (S.RESOLVED, 6),
    (S.CLOSED, 8),
    (S.CANCELLED, 4),
)
KINDS = (
    TicketKind.REPAIR,
    TicketKind.REPAIR,
    TicketKind.COMPLAINT,
    TicketKind.INQUIRY,
    TicketKind.MAINTENANCE,
    TicketKind.ALARM,
)
TITLES = {
    "plumbing": ("厨房水管漏水", "卫生间下水道堵塞", "热水器出水口滴水"),
    "electrical": ("客厅插座没电", "楼道灯不亮", "空开频繁跳闸"),
    "elevator": ("电梯按钮失灵", "电梯运行有异响", "电梯门关不严"),
    "doors_locks": ("单元门禁刷卡无反应", "入户门锁芯卡住", "窗户把手松动"),
    "cleaning": ("楼道垃圾未清运", "地下车库积水未清理", "电梯轿厢有污渍"),
    "greening": ("小区绿化带杂草多", "树枝挡住窗户", "草坪枯黄需补种"),
    "security": ("陌生人尾随进单元", "南门道闸常开", "夜间巡逻不到位"),
    "noise": ("楼上夜间装修噪音", "广场舞音量过大", "空调外机噪音大"),
    "other": ("咨询物业费发票开具", "快递柜无法取件", "咨询车位租赁"),
}
# Who works the tickets of each estate: the office's technician where there is one.
WORKERS = {"DEMO-A": "tech.a", "DEMO-B": "manager.north", "DEMO-C": "admin"}
DESK = {"DEMO-A": "cs.a", "DEMO-B": "manager.north", "DEMO-C": "admin"}
APP_REPORTERS = {"DEMO-A": ("owner.a1", "owner.a2"), "DEMO-B": (), "DEMO-C": ("owner.c1",)}


@dataclass(frozen=True, slots=True)
class Reporter:
    unit_id: int
    person_id: int | None
    user_id: int | None
    channel: TicketChannel


async def _demo_estates(session: AsyncSession) -> list[Estate]:
    return list(await session.scalars(select(Estate).where(Estate.code.in_(WORKERS)).order_by(Estate.code)))


async def _users(session: AsyncSession) -> dict[str, User]:
    names = {*WORKERS.values(), *DESK.values(), *(n for names in APP_REPORTERS.values() for n in names)}
    return {u.username: u for u in await session.scalars(select(User).where(User.username.in_(names)))}


async def _home_of(session: AsyncSession, user: User) -> int | None:
    today = local_today()
    return await session.scalar(
        select(Occupancy.unit_id)
        .where(
            Occupancy.person_id == user.person_id,
            Occupancy.start_date <= today,
            or_(Occupancy.end_date.is_(None), Occupancy.end_date > today),
        )
        .order_by(Occupancy.id)
        .limit(1)
    )


async def _occupants(session: AsyncSession, estate: Estate) -> list[tuple[int, int]]:
    """(unit, person) of current occupants of the estate, for tickets taken by phone."""
    today = local_today()
    rows = await session.execute(
        select(Occupancy.unit_id, Occupancy.person_id)
        .join(Unit, Unit.id == Occupancy.unit_id)
        .join(Person, Person.id == Occupancy.person_id)
        .where(
            Unit.estate_id == estate.id,
            Occupancy.start_date <= today,
            or_(Occupancy.end_date.is_(None), Occupancy.end_date > today),
            and_(Person.phone.is_not(None)),
        )
        .order_by(Occupancy.id)
        .limit(200)
    )
    return [(unit_id, person_id) for unit_id, person_id in rows.all()]


async def ensure_demo_tickets(session: AsyncSession) -> int:
    """Create the demo tickets unless the demo estates have tickets already; returns how many."""
    estates = await _demo_estates(session)
    if not estates:
        return 0
    existing = await session.scalar(select(func.count(Ticket.id)).where(Ticket.estate_id.in_([e.id for e in estates])))
    if existing:
        return 0
    users = await _users(session)
    rng = random.Random(20260104)
    now = utcnow()
    created = 0
    for estate in estates:
        reporters = await _reporters(session, estate, users, rng)
        plan = [status for status, count in STATUS_MIX for _ in range(count)]
        for index, status in enumerate(plan):
            await _demo_ticket(session, estate, users, reporters[index % len(reporters)], status, index, rng, now)
            created += 1
    created += await _paid_repair(session, estates, users, now)
    return created


async def _reporters(
    session: AsyncSession, estate: Estate, users: dict[str, User], rng: random.Random
) -> list[Reporter]:
    reporters = []
    for name in APP_REPORTERS[estate.code]:
        user = users.get(name)
        home = await _home_of(session, user) if user is not None else None
        if user is not None and home is not None:
            reporters += [Reporter(home, user.person_id, user.id, TicketChannel.APP)] * 3
    for unit_id, person_id in rng.sample(occupants := await _occupants(session, estate), k=min(12, len(occupants))):
        channel = rng.choice((TicketChannel.PHONE, TicketChannel.WALK_IN))
        reporters.append(Reporter(unit_id, person_id, None, channel))
    rng.shuffle(reporters)
    return reporters


async def _demo_ticket(
    session: AsyncSession,
    estate: Estate,
    users: dict[str, User],
    reporter: Reporter,
    status: TicketStatus,
    index: int,
    rng: random.Random,
    now: dt.datetime,
) -> None:
    category = DEFAULT_CATEGORIES[index % len(DEFAULT_CATEGORIES)][0]
    kind = KINDS[index % len(KINDS)]
    if reporter.channel is TicketChannel.APP and kind not in (TicketKind.REPAIR, TicketKind.COMPLAINT):
        kind = TicketKind.REPAIR
    open_ = status in (S.NEW, S.ASSIGNED, S.IN_PROGRESS, S.ON_HOLD)
    # A third of the open tickets are old: past their deadlines (overdue). Resolved ones fall
    # within the reopen window; closed and cancelled ones are older.
    if open_:
        age = dt.timedelta(days=rng.randint(3, 12)) if index % 3 == 0 else dt.timedelta(minutes=rng.randint(10, 150))
    elif status is S.RESOLVED:
        age = dt.timedelta(days=rng.randint(1, 5))
    else:
        age = dt.timedelta(days=rng.randint(8, 120))
    at = now - age
    public_area = kind in (TicketKind.MAINTENANCE, TicketKind.ALARM) or category in ("greening", "security")
    worker, desk = users[WORKERS[estate.code]], users[DESK[estate.code]]
    system = kind in (TicketKind.MAINTENANCE, TicketKind.ALARM)
    ticket = await workflow.submit(
        session,
        NewTicket(
            estate=estate,
            kind=kind,
            category_code=category,
            title=rng.choice(TITLES[category]),
            channel=TicketChannel.SYSTEM if system else reporter.channel,
            priority=rng.choice(list(TicketPriority)) if not system else TicketPriority.HIGH,
            description="演示工单",
            unit_id=None if public_area else reporter.unit_id,
            location="小区公共区域" if public_area else "",
            contact_phone=None if system else f"139{rng.randint(10_000_000, 99_999_999)}",
            reporter_user_id=None if system else reporter.user_id,
            reporter_person_id=None if system else reporter.person_id,
        ),
        actor_id=reporter.user_id or desk.id,
        now=at,
    )
    steps = _steps_to(status)
    step_at = at
    for step in steps:
        step_at += dt.timedelta(minutes=rng.randint(15, 90)) if step != "close" else dt.timedelta(days=1)
        await _take(session, ticket.id, step, worker=worker, desk=desk, at=step_at, rng=rng)
    if status in (S.RESOLVED, S.CLOSED) and ticket.reporter_user_id is not None and rng.random() < 0.8:
        await workflow.rate(
            session,
            ticket.id,
            rating=rng.choice((3, 4, 5, 5, 5)),
            comment=rng.choice(("师傅很专业", "处理及时", "还可以", "")),
            actor_id=ticket.reporter_user_id,
            expected_version=None,
            now=step_at + dt.timedelta(hours=2),
        )


def _steps_to(status: TicketStatus) -> tuple[str, ...]:
    return {
        S.NEW: (),
        S.ASSIGNED: ("assign",),
        S.IN_PROGRESS: ("assign", "start"),
        S.ON_HOLD: ("assign", "start", "hold"),
        S.RESOLVED: ("assign", "start", "resolve"),
        S.CLOSED: ("assign", "start", "hold", "start", "resolve", "close"),
        S.CANCELLED: ("cancel",),
    }[status]


async def _take(
    session: AsyncSession, ticket_id: int, step: str, *, worker: User, desk: User, at: dt.datetime, rng: random.Random
) -> None:
    common = {"expected_version": None, "now": at}
    if step == "assign":
        await workflow.assign(session, ticket_id, assignee_id=worker.id, actor_id=desk.id, **common)  # type: ignore[arg-type]
    elif step == "start":
        await workflow.start(session, ticket_id, actor_id=worker.id, **common)  # type: ignore[arg-type]
    elif step == "hold":
        await workflow.hold(session, ticket_id, actor_id=worker.id, note="等待配件到货", **common)  # type: ignore[arg-type]
    elif step == "resolve":
        resolution = workflow.Resolution(text=rng.choice(("已更换损坏部件", "已疏通", "已调试恢复正常", "已答复业主")))
        await workflow.resolve(session, ticket_id, resolution, actor_id=worker.id, **common)  # type: ignore[arg-type]
    elif step == "close":
        outcome = rng.choice(
            (ReturnVisitOutcome.SATISFIED, ReturnVisitOutcome.SATISFIED, ReturnVisitOutcome.UNREACHABLE)
        )
        await workflow.close(session, ticket_id, outcome=outcome, note="电话回访", actor_id=desk.id, **common)  # type: ignore[arg-type]
    elif step == "cancel":
        await workflow.cancel(session, ticket_id, note="业主已自行处理", actor_id=desk.id, **common)  # type: ignore[arg-type]


async def _paid_repair(session: AsyncSession, estates: list[Estate], users: dict[str, User], now: dt.datetime) -> int:
    """owner.a1's paid repair: a faucet replaced, labour and parts billed to the flat."""
    owner, estate = users.get("owner.a1"), next((e for e in estates if e.code == "DEMO-A"), None)
    home = await _home_of(session, owner) if owner is not None else None
    if owner is None or estate is None or home is None:
        return 0
    at = now - dt.timedelta(days=2)
    ticket = await workflow.submit(
        session,
        NewTicket(
            estate=estate,
            kind=TicketKind.REPAIR,
            category_code="plumbing",
            title="厨房水龙头损坏需更换",
            channel=TicketChannel.APP,
            unit_id=home,
            contact_phone="13900000101",
            reporter_user_id=owner.id,
            reporter_person_id=owner.person_id,
        ),
        actor_id=owner.id,
        now=at,
    )
    worker, desk = users[WORKERS["DEMO-A"]], users[DESK["DEMO-A"]]
    await workflow.assign(
        session,
        ticket.id,
        assignee_id=worker.id,
        actor_id=desk.id,
        expected_version=None,
        now=at + dt.timedelta(minutes=20),
    )
    await workflow.start(session, ticket.id, actor_id=worker.id, expected_version=None, now=at + dt.timedelta(hours=1))
    await workflow.resolve(
        session,
        ticket.id,
        workflow.Resolution(
            text="更换厨房水龙头",
            charges=[Charge("人工费", Decimal("80.00")), Charge("水龙头", Decimal("40.00"))],
        ),
        actor_id=worker.id,
        expected_version=None,
        now=at + dt.timedelta(hours=2),
    )
    return 1
