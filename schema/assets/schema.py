"""Root fields of the equipment register (设施设备) and maintenance plans (保养计划)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from sqlalchemy import or_, select
from strawberry.scalars import JSON

from authz.scopes import predicate, scoped
from backend.assets import models, plans, service
from backend.assets.errors import AssetError, AssetErrorCode
from backend.db import local_today, to_global_id
from backend.property.models import Estate
from schema.assets.types import AssetKind, AssetStatus, AssetType, MaintenancePlanType
from schema.core.errors import BadUserInput, UserError, user_error
from schema.core.relay import Connection, try_decode_id
from schema.core.resolving import (
    Info,
    authorised_target,
    estate_own_path,
    estate_path,
    get_scoped,
    reload_for_payload,
    scoped_connection,
    unit_of_work,
)

MAX_WITHIN_DAYS = 366


# -- inputs and payloads ---------------------------------------------------------------------


@strawberry.input
class AssetFilter:
    estate_id: strawberry.ID | None = None
    building_id: strawberry.ID | None = None
    type: AssetKind | None = None
    status: AssetStatus | None = None
    search: str | None = strawberry.field(default=None, description="Part of the code, name or tag.")


@strawberry.input
class CreateAssetInput:
    estate_id: strawberry.ID
    code: str = strawberry.field(description="Unique per company; letters, digits, '-', '_', '.'; stored upper-case.")
    type: AssetKind
    name: str
    tag: str | None = None
    model: str = ""
    manufacturer: str = ""
    location: str = ""
    install_date: dt.date | None = None
    warranty_until: dt.date | None = None
    status: AssetStatus = strawberry.field(default=models.AssetStatus.IN_SERVICE)
    parameters: JSON | None = strawberry.field(default=None, description="A JSON object of technical parameters.")
    building_id: strawberry.ID | None = None
    parent_id: strawberry.ID | None = strawberry.field(default=None, description="An asset of the same estate.")
    device_id: str | None = None


@strawberry.input(description="Only the fields given change; null clears an optional one.")
class UpdateAssetInput:
    asset_id: strawberry.ID
    code: str | None = strawberry.UNSET
    type: AssetKind | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    tag: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    manufacturer: str | None = strawberry.UNSET
    location: str | None = strawberry.UNSET
    install_date: dt.date | None = strawberry.UNSET
    warranty_until: dt.date | None = strawberry.UNSET
    status: AssetStatus | None = strawberry.field(
        default=strawberry.UNSET, description="IN_SERVICE, FAULTY or UNDER_MAINTENANCE; retire with retireAsset."
    )
    parameters: JSON | None = strawberry.UNSET
    building_id: strawberry.ID | None = strawberry.UNSET
    parent_id: strawberry.ID | None = strawberry.UNSET
    device_id: str | None = strawberry.UNSET


@strawberry.input
class RetireAssetInput:
    asset_id: strawberry.ID
    reason: str = ""


@strawberry.type
class AssetPayload:
    asset: AssetType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MaintenancePlanFilter:
    estate_id: strawberry.ID | None = None
    asset_id: strawberry.ID | None = None
    active: bool | None = None


@strawberry.input
class CreateMaintenancePlanInput:
    estate_id: strawberry.ID
    name: str
    asset_id: strawberry.ID | None = strawberry.field(default=None, description="One asset, or …")
    asset_type: AssetKind | None = strawberry.field(default=None, description="… every asset of a type in the estate.")
    interval_days: int | None = strawberry.field(default=None, description="Exactly one of intervalDays, …")
    interval_months: int | None = strawberry.field(default=None, description="… intervalMonths, …")
    cron: str | None = strawberry.field(default=None, description="… or a 5-field cron expression (its days count).")
    lead_days: int = strawberry.field(default=3, description="Open the ticket this many days ahead (0–365).")
    checklist: list[str] = strawberry.field(default_factory=list, description="Up to 50 items.")
    assignee_id: strawberry.ID | None = strawberry.field(default=None, description="A staff user of the estate.")
    first_due_date: dt.date


@strawberry.input(description="Only the fields given change. Any schedule field given replaces the schedule.")
class UpdateMaintenancePlanInput:
    plan_id: strawberry.ID
    name: str | None = strawberry.UNSET
    interval_days: int | None = strawberry.UNSET
    interval_months: int | None = strawberry.UNSET
    cron: str | None = strawberry.UNSET
    lead_days: int | None = strawberry.UNSET
    checklist: list[str] | None = strawberry.UNSET
    assignee_id: strawberry.ID | None = strawberry.UNSET
    next_due_date: dt.date | None = strawberry.UNSET


@strawberry.input
class DeactivateMaintenancePlanInput:
    plan_id: strawberry.ID


@strawberry.type
class MaintenancePlanPayload:
    maintenance_plan: MaintenancePlanType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="A plan falling due, with the open ticket of its current occurrence.")
class MaintenanceDue:
    plan: MaintenancePlanType
    due_date: dt.date
    overdue: bool = strawberry.field(description="Due before today and not done.")
    days_until_due: int = strawberry.field(description="Negative when overdue.")
    open_ticket_id: strawberry.ID | None = strawberry.field(description="A Ticket id.")
    open_ticket_number: str | None
    open_ticket_status: str | None


def _error(exc: AssetError) -> UserError:
    return user_error(exc.code, exc.message, exc.field)


def _not_found(what: str, field: str) -> UserError:
    return user_error(AssetErrorCode.NOT_FOUND, f"No such {what}.", field)


def _id_or_error(value: strawberry.ID | None, type_name: str, code: AssetErrorCode, field: str) -> int | None:
    """A global id's key; a malformed one is the field's error."""
    if value is None:
        return None
    pk = try_decode_id(value, type_name)
    if pk is None:
        raise AssetError(code, f"Not a {type_name} id.", field)
    return pk


def _given(input: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(input, name) for name in names if getattr(input, name) is not strawberry.UNSET}


async def _asset_path(info: Info, asset: models.Asset) -> str:
    return await estate_path(info.context.session, asset.estate_id)


async def _plan_for(info: Info, plan_id: strawberry.ID, act: str) -> models.MaintenancePlan | None:
    """The plan a mutation acts on, checked like every mutation target (schema/core/resolving)."""

    async def path(plan: models.MaintenancePlan) -> str:
        return await _plan_path(info, plan)

    return await authorised_target(
        info, models.MaintenancePlan, plan_id, type_name="MaintenancePlan", obj="MaintenancePlan", act=act, path_of=path
    )


async def _plan_path(info: Info, plan: models.MaintenancePlan) -> str:
    return await estate_path(info.context.session, plan.estate_id)


# -- queries ---------------------------------------------------------------------------------


@strawberry.type
class AssetsQuery:
    @strawberry.field(description="Assets in scope (staff of their estates with `Asset read`; residents none).")
    async def assets(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: AssetFilter | None = None
    ) -> Connection[AssetType]:
        statement = select(models.Asset)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(models.Asset.estate_id == try_decode_id(filter.estate_id, "Estate"))
            if filter.building_id is not None:
                statement = statement.where(models.Asset.building_id == try_decode_id(filter.building_id, "Building"))
            if filter.type is not None:
                statement = statement.where(models.Asset.type == filter.type)
            if filter.status is not None:
                statement = statement.where(models.Asset.status == filter.status)
            if filter.search and filter.search.strip():
                needle = filter.search.strip()
                statement = statement.where(
                    or_(
                        models.Asset.code.icontains(needle, autoescape=True),
                        models.Asset.name.icontains(needle, autoescape=True),
                        models.Asset.tag.icontains(needle, autoescape=True),
                    )
                )
        return await scoped_connection(info, models.Asset, statement, first=first, after=after)

    @strawberry.field(description="The asset whose QR / RFID tag this is (scanning a code), if in scope.")
    async def asset_by_tag(self, info: Info, tag: str) -> AssetType | None:
        ctx = info.context
        ctx.require_principal()
        pk = await ctx.session.scalar(
            scoped(select(models.Asset.id).where(models.Asset.tag == tag.strip()), models.Asset, ctx.permissions)
            .order_by(models.Asset.id)
            .limit(1)
        )
        return await get_scoped(info, models.Asset, pk)

    @strawberry.field(description="Maintenance plans in scope (`MaintenancePlan read`).")
    async def maintenance_plans(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: MaintenancePlanFilter | None = None,
    ) -> Connection[MaintenancePlanType]:
        statement = select(models.MaintenancePlan)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(
                    models.MaintenancePlan.estate_id == try_decode_id(filter.estate_id, "Estate")
                )
            if filter.asset_id is not None:
                statement = statement.where(models.MaintenancePlan.asset_id == try_decode_id(filter.asset_id, "Asset"))
            if filter.active is not None:
                statement = statement.where(models.MaintenancePlan.active.is_(filter.active))
        return await scoped_connection(info, models.MaintenancePlan, statement, first=first, after=after)

    @strawberry.field(
        description="Active plans of an estate due within `withinDays` days (0–366), overdue ones included, "
        "soonest first; empty for an estate out of scope."
    )
    async def maintenance_due(self, info: Info, estate_id: strawberry.ID, within_days: int = 7) -> list[MaintenanceDue]:
        ctx = info.context
        ctx.require_principal()
        if not 0 <= within_days <= MAX_WITHIN_DAYS:
            raise BadUserInput(f"withinDays must be between 0 and {MAX_WITHIN_DAYS}.", argument="withinDays")
        pk = try_decode_id(estate_id, "Estate")
        if pk is None:
            return []
        scope = predicate(models.MaintenancePlan, ctx.permissions)
        due = await plans.due_plans(
            ctx.session, scope & (models.MaintenancePlan.estate_id == pk), within_days=within_days, today=local_today()
        )
        return [
            MaintenanceDue(
                plan=d.plan,  # type: ignore[arg-type]
                due_date=d.plan.next_due_date,
                overdue=d.overdue,
                days_until_due=d.days_until_due,
                open_ticket_id=None
                if d.open_ticket is None
                else strawberry.ID(to_global_id("Ticket", d.open_ticket.id)),
                open_ticket_number=None if d.open_ticket is None else d.open_ticket.number,
                open_ticket_status=None if d.open_ticket is None else d.open_ticket.status.name,
            )
            for d in due
        ]


# -- mutations -------------------------------------------------------------------------------

ASSET_FIELDS = (
    "code",
    "type",
    "name",
    "tag",
    "model",
    "manufacturer",
    "location",
    "install_date",
    "warranty_until",
    "status",
    "parameters",
    "device_id",
)


@strawberry.type
class AssetsMutation:
    @strawberry.mutation(description="Register an asset in an estate. Needs `Asset create` (managers, admin).")
    async def create_asset(self, info: Info, input: CreateAssetInput) -> AssetPayload:
        ctx = info.context
        principal = ctx.require_principal()
        estate = await authorised_target(
            info, Estate, input.estate_id, type_name="Estate", obj="Asset", act="create", path_of=estate_own_path
        )
        if estate is None:
            return AssetPayload(errors=[_not_found("estate", "estateId")])
        try:
            data = service.AssetData(
                code=input.code,
                type=input.type,
                name=input.name,
                tag=input.tag,
                model=input.model,
                manufacturer=input.manufacturer,
                location=input.location,
                install_date=input.install_date,
                warranty_until=input.warranty_until,
                status=input.status,
                parameters=input.parameters if input.parameters is not None else {},
                building_id=_id_or_error(input.building_id, "Building", AssetErrorCode.INVALID_BUILDING, "buildingId"),
                parent_id=_id_or_error(input.parent_id, "Asset", AssetErrorCode.INVALID_PARENT, "parentId"),
                device_id=input.device_id,
            )
            async with unit_of_work(ctx):
                asset = await service.create_asset(
                    ctx.session, estate=estate, data=data, actor_id=principal.user_id, request_id=ctx.request_id
                )
        except AssetError as exc:
            return AssetPayload(errors=[_error(exc)])
        return AssetPayload(asset=await reload_for_payload(info, models.Asset, asset.id, "asset"))

    @strawberry.mutation(description="Edit an asset (not a retired one). Needs `Asset update`.")
    async def update_asset(self, info: Info, input: UpdateAssetInput) -> AssetPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def path(asset: models.Asset) -> str:
            return await _asset_path(info, asset)

        asset = await authorised_target(
            info, models.Asset, input.asset_id, type_name="Asset", obj="Asset", act="update", path_of=path
        )
        if asset is None:
            return AssetPayload(errors=[_not_found("asset", "assetId")])
        try:
            changes = _given(input, ASSET_FIELDS)
            if input.building_id is not strawberry.UNSET:
                changes["building_id"] = _id_or_error(
                    input.building_id, "Building", AssetErrorCode.INVALID_BUILDING, "buildingId"
                )
            if input.parent_id is not strawberry.UNSET:
                changes["parent_id"] = _id_or_error(input.parent_id, "Asset", AssetErrorCode.INVALID_PARENT, "parentId")
            async with unit_of_work(ctx):
                await service.update_asset(
                    ctx.session,
                    asset_id=asset.id,
                    changes=changes,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except AssetError as exc:
            return AssetPayload(errors=[_error(exc)])
        return AssetPayload(asset=await reload_for_payload(info, models.Asset, asset.id, "asset"))

    @strawberry.mutation(
        description="Retire an asset (status RETIRED, retiredAt now); its own maintenance plans are deactivated. "
        "Needs `Asset retire`."
    )
    async def retire_asset(self, info: Info, input: RetireAssetInput) -> AssetPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def path(asset: models.Asset) -> str:
            return await _asset_path(info, asset)

        asset = await authorised_target(
            info, models.Asset, input.asset_id, type_name="Asset", obj="Asset", act="retire", path_of=path
        )
        if asset is None:
            return AssetPayload(errors=[_not_found("asset", "assetId")])
        try:
            async with unit_of_work(ctx):
                await service.retire_asset(
                    ctx.session,
                    asset_id=asset.id,
                    reason=input.reason,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except AssetError as exc:
            return AssetPayload(errors=[_error(exc)])
        return AssetPayload(asset=await reload_for_payload(info, models.Asset, asset.id, "asset"))

    @strawberry.mutation(
        description="A maintenance plan for one asset or every asset of a type in an estate. "
        "Needs `MaintenancePlan create` (managers, admin)."
    )
    async def create_maintenance_plan(self, info: Info, input: CreateMaintenancePlanInput) -> MaintenancePlanPayload:
        ctx = info.context
        principal = ctx.require_principal()
        estate = await authorised_target(
            info,
            Estate,
            input.estate_id,
            type_name="Estate",
            obj="MaintenancePlan",
            act="create",
            path_of=estate_own_path,
        )
        if estate is None:
            return MaintenancePlanPayload(errors=[_not_found("estate", "estateId")])
        try:
            data = plans.PlanData(
                name=input.name,
                first_due_date=input.first_due_date,
                asset_id=_id_or_error(input.asset_id, "Asset", AssetErrorCode.INVALID_TARGET, "assetId"),
                asset_type=input.asset_type,
                interval_days=input.interval_days,
                interval_months=input.interval_months,
                cron=input.cron,
                lead_days=input.lead_days,
                checklist=list(input.checklist),
                assignee_id=_id_or_error(input.assignee_id, "User", AssetErrorCode.INVALID_ASSIGNEE, "assigneeId"),
            )
            async with unit_of_work(ctx):
                plan = await plans.create_plan(
                    ctx.session, estate=estate, data=data, actor_id=principal.user_id, request_id=ctx.request_id
                )
        except AssetError as exc:
            return MaintenancePlanPayload(errors=[_error(exc)])
        return MaintenancePlanPayload(
            maintenance_plan=await reload_for_payload(info, models.MaintenancePlan, plan.id, "maintenancePlan")
        )

    @strawberry.mutation(description="Edit an active maintenance plan. Needs `MaintenancePlan update`.")
    async def update_maintenance_plan(self, info: Info, input: UpdateMaintenancePlanInput) -> MaintenancePlanPayload:
        ctx = info.context
        principal = ctx.require_principal()

        plan = await _plan_for(info, input.plan_id, "update")
        if plan is None:
            return MaintenancePlanPayload(errors=[_not_found("maintenance plan", "planId")])
        try:
            changes = _given(
                input, ("name", "interval_days", "interval_months", "cron", "lead_days", "checklist", "next_due_date")
            )
            if "lead_days" in changes and changes["lead_days"] is None:
                raise AssetError(AssetErrorCode.INVALID_INPUT, "leadDays cannot be null.", "leadDays")
            if "name" in changes and changes["name"] is None:
                raise AssetError(AssetErrorCode.INVALID_INPUT, "name cannot be null.", "name")
            if input.assignee_id is not strawberry.UNSET:
                changes["assignee_id"] = _id_or_error(
                    input.assignee_id, "User", AssetErrorCode.INVALID_ASSIGNEE, "assigneeId"
                )
            async with unit_of_work(ctx):
                await plans.update_plan(
                    ctx.session, plan_id=plan.id, changes=changes, actor_id=principal.user_id, request_id=ctx.request_id
                )
        except AssetError as exc:
            return MaintenancePlanPayload(errors=[_error(exc)])
        return MaintenancePlanPayload(
            maintenance_plan=await reload_for_payload(info, models.MaintenancePlan, plan.id, "maintenancePlan")
        )

    @strawberry.mutation(description="Stop a maintenance plan. Needs `MaintenancePlan deactivate`.")
    async def deactivate_maintenance_plan(
        self, info: Info, input: DeactivateMaintenancePlanInput
    ) -> MaintenancePlanPayload:
        ctx = info.context
        principal = ctx.require_principal()

        plan = await _plan_for(info, input.plan_id, "deactivate")
        if plan is None:
            return MaintenancePlanPayload(errors=[_not_found("maintenance plan", "planId")])
        try:
            async with unit_of_work(ctx):
                await plans.deactivate_plan(
                    ctx.session, plan_id=plan.id, actor_id=principal.user_id, request_id=ctx.request_id
                )
        except AssetError as exc:
            return MaintenancePlanPayload(errors=[_error(exc)])
        return MaintenancePlanPayload(
            maintenance_plan=await reload_for_payload(info, models.MaintenancePlan, plan.id, "maintenancePlan")
        )
