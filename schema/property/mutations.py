"""Mutations of the property domain: estates, buildings, the unit wizard and unit import."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

import strawberry
from sqlalchemy import select
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload

from authz.scopes import scoped
from backend.property import models, service
from backend.property.errors import PropertyError, PropertyErrorCode
from schema.core.errors import UserError, user_error
from schema.core.resolving import (
    Info,
    authorised_target,
    estate_own_path,
    estate_path,
    org_unit_path,
    reload_for_payload,
    unit_of_work,
)
from schema.property.types import BuildingType, EstateType, UnitType, UnitUsage


@strawberry.input
class CreateEstateInput:
    office_id: strawberry.ID
    code: str
    name: str
    address: str = ""


@strawberry.type
class CreateEstatePayload:
    estate: EstateType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateBuildingInput:
    estate_id: strawberry.ID
    code: str
    name: str = ""
    floors: int | None = None
    entrances: int = 1


@strawberry.type
class CreateBuildingPayload:
    building: BuildingType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="The 房间生成向导: every unit of a building's entrances × floors × units per floor.")
class GenerateUnitsInput:
    building_id: strawberry.ID
    entrances: list[str] = strawberry.field(description='Entrance codes, e.g. ["1", "2"]; created if missing.')
    from_floor: int
    to_floor: int
    units_per_floor: int
    building_area: Decimal
    inner_area: Decimal
    usage: UnitUsage = UnitUsage.RESIDENTIAL  # type: ignore[assignment]
    number_format: str = strawberry.field(
        default="{building}-{entrance}-{floor}{number:02d}",
        description="Python format with {building}, {entrance}, {floor}, {number}.",
    )
    skip_floors: list[int] = strawberry.field(default_factory=list)


@strawberry.type
class GenerateUnitsPayload:
    created_count: int = 0
    units: list[UnitType] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="A CSV or XLSX file of units, all-or-nothing.")
class ImportUnitsInput:
    estate_id: strawberry.ID
    file: Upload


@strawberry.type
class ImportUnitsPayload:
    created_count: int = 0
    errors: list[UserError] = strawberry.field(default_factory=list)


def _property_error(exc: PropertyError) -> UserError:
    return user_error(exc.code, exc.message, exc.field)


@strawberry.type
class PropertyMutation:
    @strawberry.mutation(description="Create an estate under a management office. Needs `Estate create` there.")
    async def create_estate(self, info: Info, input: CreateEstateInput) -> CreateEstatePayload:
        ctx = info.context
        principal = ctx.require_principal()
        office = await authorised_target(
            info,
            models.OrgUnit,
            input.office_id,
            type_name="OrgUnit",
            obj="Estate",
            act="create",
            path_of=org_unit_path,
        )
        if office is None:
            return CreateEstatePayload(errors=[user_error(PropertyErrorCode.NOT_FOUND, "No such office.", "officeId")])
        try:
            async with unit_of_work(ctx):
                estate = await service.create_estate(
                    session=ctx.session,
                    office=office,
                    code=input.code,
                    name=input.name,
                    address=input.address,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except PropertyError as exc:
            return CreateEstatePayload(errors=[_property_error(exc)])
        return CreateEstatePayload(estate=await reload_for_payload(info, models.Estate, estate.id, "estate"))

    @strawberry.mutation(description="Add a building (and its entrances) to an estate. Needs `Building create`.")
    async def create_building(self, info: Info, input: CreateBuildingInput) -> CreateBuildingPayload:
        ctx = info.context
        principal = ctx.require_principal()
        estate = await authorised_target(
            info,
            models.Estate,
            input.estate_id,
            type_name="Estate",
            obj="Building",
            act="create",
            path_of=estate_own_path,
        )
        if estate is None:
            return CreateBuildingPayload(
                errors=[user_error(PropertyErrorCode.NOT_FOUND, "No such estate.", "estateId")]
            )
        try:
            async with unit_of_work(ctx):
                building = await service.create_building(
                    session=ctx.session,
                    estate=estate,
                    code=input.code,
                    name=input.name,
                    floors=input.floors,
                    entrances=input.entrances,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except PropertyError as exc:
            return CreateBuildingPayload(errors=[_property_error(exc)])
        return CreateBuildingPayload(building=await reload_for_payload(info, models.Building, building.id, "building"))

    @strawberry.mutation(description="Generate a building's units in one go. Needs `Unit create`; all-or-nothing.")
    async def generate_units(self, info: Info, input: GenerateUnitsInput) -> GenerateUnitsPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def building_path(building: models.Building) -> str:
            return await estate_path(ctx.session, building.estate_id)

        building = await authorised_target(
            info,
            models.Building,
            input.building_id,
            type_name="Building",
            obj="Unit",
            act="create",
            path_of=building_path,
        )
        if building is None:
            return GenerateUnitsPayload(
                errors=[user_error(PropertyErrorCode.NOT_FOUND, "No such building.", "buildingId")]
            )
        plan = service.UnitPlan(
            entrances=[e.strip() for e in input.entrances],
            floor_from=input.from_floor,
            floor_to=input.to_floor,
            units_per_floor=input.units_per_floor,
            building_area=input.building_area,
            inner_area=input.inner_area,
            usage=input.usage,  # type: ignore[arg-type]
            number_format=input.number_format,
            skip_floors=tuple(input.skip_floors),
        )
        try:
            async with unit_of_work(ctx):
                ids = await service.generate_units(
                    session=ctx.session,
                    building=building,
                    plan=plan,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except PropertyError as exc:
            return GenerateUnitsPayload(errors=[_property_error(exc)])
        units = (
            await ctx.session.scalars(
                scoped(select(models.Unit).where(models.Unit.id.in_(ids[:100])), models.Unit, ctx.permissions).order_by(
                    models.Unit.id
                )
            )
        ).all()
        return GenerateUnitsPayload(created_count=len(ids), units=list(units))


@strawberry.type
class PropertyImportMutation:
    @strawberry.mutation(
        description="Import units from a CSV or XLSX file (multipart upload). Every row is checked; any error "
        "imports nothing and lists every problem by row. Needs `Unit create`."
    )
    async def import_units(self, info: Info, input: ImportUnitsInput) -> ImportUnitsPayload:
        from backend.property.unit_import import parse_unit_file

        ctx = info.context
        principal = ctx.require_principal()
        estate = await authorised_target(
            info, models.Estate, input.estate_id, type_name="Estate", obj="Unit", act="create", path_of=estate_own_path
        )
        if estate is None:
            return ImportUnitsPayload(errors=[user_error(PropertyErrorCode.NOT_FOUND, "No such estate.", "estateId")])
        upload = cast(UploadFile, input.file)  # the multipart parser hands over Starlette uploads
        # The request's size was capped at WUYE_MAX_UPLOAD_BYTES before it was parsed.
        content = await upload.read()
        parsed = parse_unit_file(content, upload.filename or "")
        if parsed.errors:
            return ImportUnitsPayload(
                errors=[
                    user_error(e.code, f"row {e.row_number}: {e.message}" if e.row_number else e.message, e.field)
                    for e in parsed.errors
                ]
            )
        try:
            async with unit_of_work(ctx):
                problems = await service.import_units(
                    session=ctx.session,
                    estate=estate,
                    rows=parsed.rows,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
                if problems:
                    raise _ImportRejected(problems)
        except _ImportRejected as rejected:
            return ImportUnitsPayload(
                errors=[
                    user_error(PropertyErrorCode.DUPLICATE_CODE, f"row {row}: {message}", "file")
                    for row, message in rejected.problems
                ]
            )
        return ImportUnitsPayload(created_count=len(parsed.rows))


class _ImportRejected(Exception):
    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__("import rejected")
        self.problems = problems
