"""Business rules for estates, buildings and units (including the 房间生成向导)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import service as audit
from backend.property.errors import PropertyError, PropertyErrorCode
from backend.property.models import Building, Entrance, Estate, OrgUnit, OrgUnitKind, Unit, UnitStatus, UnitUsage
from backend.property.unit_import import ImportRow

MAX_GENERATED_UNITS = 5000
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]{0,31}$")


def _check_code(code: str, field: str = "code") -> str:
    code = code.strip()
    if not _CODE.fullmatch(code):
        raise PropertyError(PropertyErrorCode.INVALID_FORMAT, "Use letters, digits and dashes (max 32).", field)
    return code


async def create_estate(
    *, session: AsyncSession, office: OrgUnit, code: str, name: str, address: str, actor_id: int, request_id: str | None
) -> Estate:
    if office.kind is not OrgUnitKind.OFFICE:
        raise PropertyError(PropertyErrorCode.INVALID_FORMAT, "An estate hangs under a management office.", "officeId")
    code = _check_code(code)
    if await session.scalar(select(Estate.id).where(Estate.code == code)):
        raise PropertyError(PropertyErrorCode.DUPLICATE_CODE, f"Estate code {code} is taken.", "code")
    estate = Estate(org_unit_id=office.id, org_path=office.path, code=code, name=name.strip(), address=address.strip())
    session.add(estate)
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="estate.create",
        target_type="Estate",
        target_id=estate.id,
        request_id=request_id,
        detail={"code": code},
    )
    return estate


async def create_building(
    *,
    session: AsyncSession,
    estate: Estate,
    code: str,
    name: str,
    floors: int | None,
    entrances: int,
    actor_id: int,
    request_id: str | None,
) -> Building:
    code = _check_code(code)
    if not 0 <= entrances <= 20:
        raise PropertyError(PropertyErrorCode.INVALID_RANGE, "Between 0 and 20 entrances.", "entrances")
    exists = await session.scalar(select(Building.id).where(Building.estate_id == estate.id, Building.code == code))
    if exists:
        raise PropertyError(PropertyErrorCode.DUPLICATE_CODE, f"Building {code} exists in {estate.code}.", "code")
    building = Building(estate_id=estate.id, code=code, name=name.strip() or f"{code}号楼", floors=floors)
    session.add(building)
    await session.flush()
    for number in range(1, entrances + 1):
        session.add(Entrance(building_id=building.id, code=str(number), name=f"{number}单元"))
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="building.create",
        target_type="Building",
        target_id=building.id,
        request_id=request_id,
        detail={"estate": estate.code, "code": code},
    )
    await session.flush()
    return building


@dataclass(frozen=True, slots=True)
class UnitPlan:
    """One run of the unit wizard: entrances × floors × units per floor of one building."""

    entrances: list[str]
    floor_from: int
    floor_to: int
    units_per_floor: int
    building_area: Decimal
    inner_area: Decimal
    usage: UnitUsage
    number_format: str = "{building}-{entrance}-{floor}{number:02d}"
    skip_floors: tuple[int, ...] = ()


def plan_codes(building_code: str, plan: UnitPlan) -> list[tuple[str, str, int]]:
    """(entrance, code, floor) for every unit of the plan, validated before anything is written."""
    if plan.floor_from > plan.floor_to or plan.floor_from < -5 or plan.floor_to > 200 or plan.floor_from == 0:
        raise PropertyError(PropertyErrorCode.INVALID_RANGE, "Floors run from fromFloor to toFloor (1–200).", "floors")
    if not 1 <= plan.units_per_floor <= 99:
        raise PropertyError(PropertyErrorCode.INVALID_RANGE, "Between 1 and 99 units per floor.", "unitsPerFloor")
    if plan.building_area <= 0 or plan.inner_area <= 0 or plan.inner_area > plan.building_area:
        raise PropertyError(PropertyErrorCode.INVALID_AREA, "Areas must be positive, inner ≤ building area.", "area")
    if max(plan.building_area.as_tuple().exponent, plan.inner_area.as_tuple().exponent, -2) != -2 and (
        plan.building_area != plan.building_area.quantize(Decimal("0.01"))
        or plan.inner_area != plan.inner_area.quantize(Decimal("0.01"))
    ):
        raise PropertyError(PropertyErrorCode.INVALID_AREA, "Areas have at most two decimals.", "area")
    floors = [f for f in range(plan.floor_from, plan.floor_to + 1) if f != 0 and f not in plan.skip_floors]
    total = len(plan.entrances) * len(floors) * plan.units_per_floor
    if total > MAX_GENERATED_UNITS:
        raise PropertyError(PropertyErrorCode.TOO_MANY_UNITS, f"At most {MAX_GENERATED_UNITS} units per run.")
    codes: list[tuple[str, str, int]] = []
    for entrance in plan.entrances:
        for floor in floors:
            for number in range(1, plan.units_per_floor + 1):
                try:
                    code = plan.number_format.format(
                        building=building_code, entrance=entrance, floor=floor, number=number
                    )
                except (KeyError, ValueError, IndexError) as exc:
                    raise PropertyError(
                        PropertyErrorCode.INVALID_FORMAT,
                        "numberFormat may use {building}, {entrance}, {floor} and {number}.",
                        "numberFormat",
                    ) from exc
                codes.append((entrance, _check_code(code, "numberFormat"), floor))
    if len({code for _e, code, _f in codes}) != len(codes):
        raise PropertyError(PropertyErrorCode.INVALID_FORMAT, "numberFormat gives duplicate codes.", "numberFormat")
    return codes


async def generate_units(
    *, session: AsyncSession, building: Building, plan: UnitPlan, actor_id: int, request_id: str | None
) -> list[int]:
    """Create the units of ``plan`` in one statement; refuse (nothing written) if any code exists."""
    codes = plan_codes(building.code, plan)
    entrances = {
        e.code: e for e in (await session.scalars(select(Entrance).where(Entrance.building_id == building.id))).all()
    }
    for code in sorted({entrance for entrance, _c, _f in codes} - entrances.keys()):
        entrance = Entrance(building_id=building.id, code=code, name=f"{code}单元")
        session.add(entrance)
        entrances[code] = entrance
    await session.flush()
    existing = set(
        (
            await session.scalars(
                select(Unit.code).where(Unit.estate_id == building.estate_id, Unit.code.in_([c for _e, c, _f in codes]))
            )
        ).all()
    )
    if existing:
        sample = ", ".join(sorted(existing)[:5])
        raise PropertyError(PropertyErrorCode.UNITS_EXIST, f"{len(existing)} units exist already (e.g. {sample}).")
    rows = [
        {
            "estate_id": building.estate_id,
            "building_id": building.id,
            "entrance_id": entrances[entrance].id,
            "code": code,
            "floor": floor,
            "building_area": plan.building_area,
            "inner_area": plan.inner_area,
            "usage": plan.usage,
            "status": UnitStatus.VACANT,
        }
        for entrance, code, floor in codes
    ]
    ids = list((await session.scalars(insert(Unit).returning(Unit.id), rows)).all())
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="units.generate",
        target_type="Building",
        target_id=building.id,
        request_id=request_id,
        detail={"count": len(ids)},
    )
    return ids


async def import_units(
    *,
    session: AsyncSession,
    estate: Estate,
    rows: list[ImportRow],
    actor_id: int,
    request_id: str | None,
) -> list[tuple[int, str]]:
    """Create every row's unit (and missing buildings and entrances) or nothing.

    Returns (row number, message) problems found against the database, e.g. codes that
    exist already; the caller rolls back when there are any.
    """
    problems: list[tuple[int, str]] = []
    existing = set(
        (
            await session.scalars(
                select(Unit.code).where(Unit.estate_id == estate.id, Unit.code.in_([r.code for r in rows]))
            )
        ).all()
    )
    problems += [(r.row_number, f"Unit {r.code} exists already.") for r in rows if r.code in existing]
    if problems:
        return problems
    buildings = {b.code: b for b in (await session.scalars(select(Building).where(Building.estate_id == estate.id)))}
    for code in sorted({r.building_code for r in rows} - buildings.keys()):
        building = Building(estate_id=estate.id, code=code, name=f"{code}号楼")
        session.add(building)
        buildings[code] = building
    await session.flush()
    entrances = {
        (e.building_id, e.code): e
        for e in await session.scalars(
            select(Entrance).where(Entrance.building_id.in_([b.id for b in buildings.values()]))
        )
    }
    for building_code, entrance_code in sorted(
        {(r.building_code, r.entrance_code) for r in rows if r.entrance_code is not None}
    ):
        key = (buildings[building_code].id, entrance_code)
        if key not in entrances:
            entrance = Entrance(building_id=key[0], code=entrance_code, name=f"{entrance_code}单元")
            session.add(entrance)
            entrances[key] = entrance
    await session.flush()
    await session.execute(
        insert(Unit),
        [
            {
                "estate_id": estate.id,
                "building_id": buildings[r.building_code].id,
                "entrance_id": entrances[(buildings[r.building_code].id, r.entrance_code)].id
                if r.entrance_code is not None
                else None,
                "code": r.code,
                "floor": r.floor,
                "building_area": r.building_area,
                "inner_area": r.inner_area,
                "usage": r.usage,
                "status": UnitStatus.VACANT,
            }
            for r in rows
        ],
    )
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="units.import",
        target_type="Estate",
        target_id=estate.id,
        request_id=request_id,
        detail={"count": len(rows)},
    )
    return []
