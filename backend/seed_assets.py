"""Demo equipment (设施设备) and maintenance plans (保养计划) of the demo estates.

Every demo estate gets an elevator per residential building, two water pumps, its fire
equipment and a generator; the CONTRACT.md sensors are assets bound to their device ids.
Plans: elevator 半月保 every 15 days, quarterly pump checks, the yearly fire inspection —
dated from today so that some fall within their lead time and one (DEMO-A's pumps) is
overdue. Idempotent: what exists (by asset code, plan name) is left alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.assets.models import Asset, AssetStatus, AssetType, MaintenancePlan
from backend.db import local_today
from backend.property.models import Building, Estate
from backend.seed import DEMO_DEVICES, PARKING_BUILDING, STORAGE_BUILDING
from backend.tickets.service import company_id_of

DEMO_ESTATES = ("DEMO-A", "DEMO-B", "DEMO-C")


@dataclass(frozen=True, slots=True)
class PlanSpec:
    name: str
    asset_type: AssetType | None  # every asset of the type, or …
    asset_suffix: str | None  # … the estate's asset with this code suffix
    interval_days: int | None
    interval_months: int | None
    lead_days: int
    checklist: tuple[str, ...]


ELEVATOR_CHECKLIST = (
    "机房: 曳引机、制动器、限速器检查",
    "轿厢: 照明、通风、紧急报警装置",
    "层门与轿门: 门锁、门刀、关门保护",
    "井道与底坑: 缓冲器、限位开关",
    "润滑与清洁",
)
PUMP_CHECKLIST = ("电机绝缘与温升", "轴封与管路渗漏", "压力表读数", "控制柜与切换功能")
FIRE_CHECKLIST = ("消火栓与水带", "灭火器压力与有效期", "火灾报警主机自检", "喷淋末端试水", "应急照明与疏散指示")

PLANS = (
    PlanSpec("电梯半月保", AssetType.ELEVATOR, None, 15, None, 3, ELEVATOR_CHECKLIST),
    PlanSpec("水泵季度检查", AssetType.WATER_PUMP, None, None, 3, 5, PUMP_CHECKLIST),
    PlanSpec("消防设施年度检测", None, "FIRE-01", None, 12, 14, FIRE_CHECKLIST),
)
# Days from today to each plan's next due date, per estate: within the lead time, overdue, later.
DUE_IN_DAYS = {
    "DEMO-A": {"电梯半月保": 2, "水泵季度检查": -3, "消防设施年度检测": 40},
    "DEMO-B": {"电梯半月保": 1, "水泵季度检查": 30, "消防设施年度检测": 10},
    "DEMO-C": {"电梯半月保": 9, "水泵季度检查": 4, "消防设施年度检测": 120},
}
# The technician a plan's tickets go to (office N1's for DEMO-A).
PLAN_ASSIGNEES = {"DEMO-A": "tech.a"}

SENSOR_TYPES = {"DEMO-A-GATE-01": AssetType.DOOR_CONTROLLER}


def _asset_rows(estate: Estate, buildings: list[Building]) -> list[dict[str, Any]]:
    code = estate.code
    rows: list[dict[str, Any]] = []
    for building in buildings:
        if building.code in (PARKING_BUILDING[0], STORAGE_BUILDING[0]):
            continue
        rows.append(
            {
                "code": f"{code}-EL-{building.code}",
                "type": AssetType.ELEVATOR,
                "name": f"{building.name}电梯",
                "building_id": building.id,
                "model": "GeN2-MR 1000kg",
                "manufacturer": "奥的斯",
                "location": f"{building.name}电梯井",
                "parameters": {"ratedLoadKg": 1000, "speedMps": 1.75, "floors": building.floors},
            }
        )
    for n in (1, 2):
        rows.append(
            {
                "code": f"{code}-PUMP-0{n}",
                "type": AssetType.WATER_PUMP,
                "name": f"生活水泵 {n}号",
                "model": "CDLF 32-80",
                "manufacturer": "南方泵业",
                "location": "地下一层水泵房",
                "parameters": {"powerKw": 7.5, "flowM3h": 32},
            }
        )
    rows.append(
        {
            "code": f"{code}-FIRE-01",
            "type": AssetType.FIRE_EQUIPMENT,
            "name": "消防系统 (报警主机、消火栓、喷淋)",
            "model": "JB-QB-GST200",
            "manufacturer": "海湾安全",
            "location": "消防控制室",
            "parameters": {"zones": 24},
        }
    )
    rows.append(
        {
            "code": f"{code}-GEN-01",
            "type": AssetType.GENERATOR,
            "name": "备用柴油发电机",
            "model": "500GF",
            "manufacturer": "玉柴",
            "location": "地下一层发电机房",
            "parameters": {"powerKw": 500},
        }
    )
    for device_id, estate_code, _kind, name, location in DEMO_DEVICES:
        if estate_code != code:
            continue
        rows.append(
            {
                "code": device_id,
                "type": SENSOR_TYPES.get(device_id, AssetType.SENSOR),
                "name": name,
                "location": location,
                "device_id": device_id,
                "parameters": {},
            }
        )
    for row in rows:
        row["tag"] = f"QR-{row['code']}"
    return rows


async def ensure_demo_assets(session: AsyncSession, *, today: dt.date | None = None) -> int:
    """Create the missing demo assets and plans; returns how many rows were created."""
    today = today or local_today()
    created = 0
    estates = (await session.scalars(select(Estate).where(Estate.code.in_(DEMO_ESTATES)).order_by(Estate.code))).all()
    users = {u.username: u.id for u in (await session.scalars(select(User))).all()}
    for estate in estates:
        company_id = company_id_of(estate)
        buildings = list(
            (await session.scalars(select(Building).where(Building.estate_id == estate.id).order_by(Building.id))).all()
        )
        rows = _asset_rows(estate, buildings)
        existing = {
            a.code: a
            for a in (
                await session.scalars(
                    select(Asset).where(Asset.company_id == company_id, Asset.code.in_([r["code"] for r in rows]))
                )
            ).all()
        }
        for row in rows:
            if row["code"] in existing:
                continue
            asset = Asset(
                company_id=company_id,
                estate_id=estate.id,
                status=AssetStatus.IN_SERVICE,
                install_date=dt.date(2019, 12, 1),
                warranty_until=dt.date(2024, 12, 1),
                **row,
            )
            session.add(asset)
            existing[row["code"]] = asset
            created += 1
        await session.flush()
        plan_names = set(
            (await session.scalars(select(MaintenancePlan.name).where(MaintenancePlan.estate_id == estate.id))).all()
        )
        for spec in PLANS:
            if spec.name in plan_names:
                continue
            target = existing[f"{estate.code}-{spec.asset_suffix}"] if spec.asset_suffix else None
            session.add(
                MaintenancePlan(
                    estate_id=estate.id,
                    name=spec.name,
                    asset_id=target.id if target is not None else None,
                    asset_type=spec.asset_type,
                    interval_days=spec.interval_days,
                    interval_months=spec.interval_months,
                    lead_days=spec.lead_days,
                    checklist=[{"item": item} for item in spec.checklist],
                    assignee_id=users.get(PLAN_ASSIGNEES.get(estate.code, "")),
                    next_due_date=today + dt.timedelta(days=DUE_IN_DAYS[estate.code][spec.name]),
                    active=True,
                )
            )
            created += 1
        await session.flush()
    return created
