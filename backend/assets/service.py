"""The equipment register (设施设备): registering, editing and retiring assets.

An asset's code and tag are unique per company and a device id belongs to one asset (the
database's unique keys decide, so two concurrent registrations cannot both take a code); its
building and parent are in its own estate, and the parent chain has no cycle. Retiring an
asset deactivates the maintenance plans of that asset.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.assets.errors import AssetError, AssetErrorCode
from backend.assets.models import Asset, AssetStatus, AssetType, MaintenancePlan
from backend.audit import service as audit
from backend.db import utcnow
from backend.property.models import Building, Estate
from backend.tickets.service import company_id_of

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$")
# Unique keys of the assets table → the error a caller gets.
_UNIQUE_KEYS = {
    "uq_assets_company_id_code": (AssetErrorCode.DUPLICATE_CODE, "Another asset of the company has this code.", "code"),
    "uq_assets_company_id_tag": (AssetErrorCode.DUPLICATE_TAG, "Another asset of the company has this tag.", "tag"),
    "uq_assets_device_id": (AssetErrorCode.DUPLICATE_DEVICE_ID, "Another asset reports as this device.", "deviceId"),
}
# Fields ``update_asset`` accepts; the estate is fixed, RETIRED only through ``retire_asset``.
UPDATABLE = frozenset(
    {
        "code",
        "tag",
        "type",
        "name",
        "model",
        "manufacturer",
        "location",
        "install_date",
        "warranty_until",
        "status",
        "parameters",
        "building_id",
        "parent_id",
        "device_id",
    }
)


@dataclass(slots=True)
class AssetData:
    code: str
    type: AssetType
    name: str
    tag: str | None = None
    model: str = ""
    manufacturer: str = ""
    location: str = ""
    install_date: dt.date | None = None
    warranty_until: dt.date | None = None
    status: AssetStatus = AssetStatus.IN_SERVICE
    parameters: dict[str, Any] = field(default_factory=dict)
    building_id: int | None = None
    parent_id: int | None = None
    device_id: str | None = None


def _text(value: str | None, limit: int, name: str, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise AssetError(AssetErrorCode.INVALID_INPUT, f"{name} is required.", name)
    if len(value) > limit:
        raise AssetError(AssetErrorCode.INVALID_INPUT, f"{name}: at most {limit} characters.", name)
    return value


def _optional(value: str | None, limit: int, name: str) -> str | None:
    return _text(value, limit, name) or None


def _normalise(values: dict[str, Any]) -> dict[str, Any]:
    """Checked and trimmed values of the fields present in ``values``."""
    out = dict(values)
    if "code" in out:
        code = _text(out["code"], 32, "code", required=True).upper()
        if not _CODE.match(code):
            raise AssetError(AssetErrorCode.INVALID_INPUT, "A code of letters, digits, '-', '_' or '.'.", "code")
        out["code"] = code
    if "name" in out:
        out["name"] = _text(out["name"], 100, "name", required=True)
    for name, limit in (("model", 100), ("manufacturer", 100), ("location", 200)):
        if name in out:
            out[name] = _text(out[name], limit, name)
    if "tag" in out:
        out["tag"] = _optional(out["tag"], 128, "tag")
    if "device_id" in out:
        out["device_id"] = _optional(out["device_id"], 64, "deviceId")
    if "parameters" in out:
        if out["parameters"] is None:
            out["parameters"] = {}
        if not isinstance(out["parameters"], dict):
            raise AssetError(AssetErrorCode.INVALID_INPUT, "Parameters are a JSON object.", "parameters")
    if out.get("status") is AssetStatus.RETIRED:
        raise AssetError(AssetErrorCode.INVALID_INPUT, "Retire an asset with retireAsset.", "status")
    if "status" in out and out["status"] is None:
        raise AssetError(AssetErrorCode.INVALID_INPUT, "status cannot be null.", "status")
    if "type" in out and out["type"] is None:
        raise AssetError(AssetErrorCode.INVALID_INPUT, "type cannot be null.", "type")
    return out


async def _check_building(session: AsyncSession, estate_id: int, building_id: int | None) -> None:
    if building_id is None:
        return
    found = await session.scalar(select(Building.id).where(Building.id == building_id, Building.estate_id == estate_id))
    if found is None:
        raise AssetError(AssetErrorCode.INVALID_BUILDING, "Not a building of the asset's estate.", "buildingId")


async def ancestor_ids(session: AsyncSession, asset_id: int) -> set[int]:
    """The asset and every asset above it (one recursive statement)."""
    chain = select(Asset.id, Asset.parent_id).where(Asset.id == asset_id).cte("chain", recursive=True)
    chain = chain.union(select(Asset.id, Asset.parent_id).join(chain, Asset.id == chain.c.parent_id))
    return set((await session.scalars(select(chain.c.id))).all())


async def _check_parent(session: AsyncSession, estate_id: int, parent_id: int | None, asset_id: int | None) -> None:
    if parent_id is None:
        return
    parent = await session.scalar(select(Asset).where(Asset.id == parent_id))
    if parent is None or parent.estate_id != estate_id or parent.status is AssetStatus.RETIRED:
        raise AssetError(AssetErrorCode.INVALID_PARENT, "The parent is an asset of the same estate in use.", "parentId")
    if asset_id is not None and asset_id in await ancestor_ids(session, parent_id):
        raise AssetError(AssetErrorCode.PARENT_CYCLE, "An asset cannot be part of itself.", "parentId")


def _check_dates(install_date: dt.date | None, warranty_until: dt.date | None) -> None:
    if install_date is not None and warranty_until is not None and warranty_until < install_date:
        raise AssetError(AssetErrorCode.INVALID_DATES, "The warranty ends before the installation.", "warrantyUntil")


async def _flush_unique(session: AsyncSession, asset: Asset, *, new: bool) -> None:
    """Write the asset in a savepoint; a taken code, tag or device id is an error code."""
    try:
        async with session.begin_nested():
            if new:
                session.add(asset)
            await session.flush()
    except IntegrityError as exc:
        for constraint, (code, message, name) in _UNIQUE_KEYS.items():
            if constraint in str(exc.orig):
                raise AssetError(code, message, name) from None
        raise


async def create_asset(
    session: AsyncSession, *, estate: Estate, data: AssetData, actor_id: int | None, request_id: str | None
) -> Asset:
    values = _normalise({name: getattr(data, name) for name in UPDATABLE})
    await _check_building(session, estate.id, values["building_id"])
    await _check_parent(session, estate.id, values["parent_id"], None)
    _check_dates(values["install_date"], values["warranty_until"])
    asset = Asset(company_id=company_id_of(estate), estate_id=estate.id, **values)
    await _flush_unique(session, asset, new=True)
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="asset.create",
        target_type="Asset",
        target_id=asset.id,
        request_id=request_id,
        detail={"code": asset.code, "type": asset.type.name, "estateId": estate.id},
    )
    return asset


async def lock_asset(session: AsyncSession, asset_id: int) -> Asset:
    asset = await session.scalar(
        select(Asset).where(Asset.id == asset_id).with_for_update().execution_options(populate_existing=True)
    )
    if asset is None:
        raise AssetError(AssetErrorCode.NOT_FOUND, "No such asset.", "assetId")
    return asset


async def update_asset(
    session: AsyncSession, *, asset_id: int, changes: dict[str, Any], actor_id: int | None, request_id: str | None
) -> Asset:
    """Apply ``changes`` (model attribute → value; only those present change)."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise AssetError(AssetErrorCode.INVALID_INPUT, f"Not editable: {', '.join(sorted(unknown))}.")
    values = _normalise(changes)
    asset = await lock_asset(session, asset_id)
    if asset.status is AssetStatus.RETIRED:
        raise AssetError(AssetErrorCode.ASSET_RETIRED, "A retired asset is not edited.", "assetId")
    if "building_id" in values:
        await _check_building(session, asset.estate_id, values["building_id"])
    if "parent_id" in values:
        await _check_parent(session, asset.estate_id, values["parent_id"], asset.id)
    _check_dates(values.get("install_date", asset.install_date), values.get("warranty_until", asset.warranty_until))
    changed = {name: value for name, value in values.items() if getattr(asset, name) != value}
    for name, value in changed.items():
        setattr(asset, name, value)
    await _flush_unique(session, asset, new=False)
    if changed:
        await audit.record(
            session,
            actor_user_id=actor_id,
            action="asset.update",
            target_type="Asset",
            target_id=asset.id,
            request_id=request_id,
            detail={"fields": sorted(changed)},
        )
    return asset


async def retire_asset(
    session: AsyncSession,
    *,
    asset_id: int,
    reason: str = "",
    actor_id: int | None,
    request_id: str | None,
    now: dt.datetime | None = None,
) -> tuple[Asset, int]:
    """RETIRED from now on; the asset's own maintenance plans stop. Returns the asset and
    how many plans were deactivated."""
    asset = await lock_asset(session, asset_id)
    if asset.status is AssetStatus.RETIRED:
        raise AssetError(AssetErrorCode.ASSET_RETIRED, "The asset is retired already.", "assetId")
    asset.status = AssetStatus.RETIRED
    asset.retired_at = now or utcnow()
    stopped = (
        await session.scalars(
            update(MaintenancePlan)
            .where(MaintenancePlan.asset_id == asset.id, MaintenancePlan.active)
            .values(active=False)
            .returning(MaintenancePlan.id)
        )
    ).all()
    await session.flush()
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="asset.retire",
        target_type="Asset",
        target_id=asset.id,
        request_id=request_id,
        detail={"reason": _text(reason, 500, "reason"), "plansDeactivated": len(stopped)},
    )
    return asset, len(stopped)
