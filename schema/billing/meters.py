"""Meters, readings (抄表) and unit-area corrections in GraphQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import select

from authz.scopes import scoped
from backend.billing import area, meters, models
from backend.billing.errors import BillingError, BillingErrorCode
from backend.db import local_today
from backend.property.models import Unit
from schema.billing.types import FeeItemType
from schema.core.errors import Forbidden, UserError, user_error
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Connection, Node, try_decode_id
from schema.core.resolving import (
    Info,
    authorised_target,
    estate_path,
    reload_for_payload,
    scoped_connection,
    unit_of_work,
)
from schema.core.types import orm_type

if TYPE_CHECKING:
    from schema.property.types import UnitType


@orm_type(models.MeterReading, name="MeterReading", description="A meter's reading for a month; never edited.")
class MeterReadingType(Node):
    value: Decimal
    read_on: dt.date
    created_at: dt.datetime

    @strawberry.field(description="The month read, `YYYY-MM`.")
    @staticmethod
    def period(root: strawberry.Parent[models.MeterReading]) -> str:
        return f"{root.period_start:%Y-%m}"


@orm_type(models.Meter, name="Meter", description="A unit's water, electricity or gas meter (计量表).")
class MeterType(Node):
    serial: str
    multiplier: Decimal = strawberry.field(description="倍率: consumption = reading delta × multiplier.")
    initial_reading: Decimal
    installed_on: dt.date
    removed_on: dt.date | None = strawberry.field(description="Set when the meter was replaced.")
    unit: Annotated[UnitType, strawberry.lazy("schema.property.types")]
    fee_item: FeeItemType
    readings: list[MeterReadingType] = strawberry.field(description="Newest month first.")


@orm_type(models.UnitAreaChange, name="UnitAreaChange", description="A corrected building area (面积变更).")
class UnitAreaChangeType:
    old_area: Decimal
    new_area: Decimal
    effective_from: dt.date
    reason: str
    created_at: dt.datetime


register_relation(models.Meter, "unit", Relation("unit"))
register_relation(models.Meter, "feeItem", Relation("fee_item"))
register_relation(models.Meter, "readings", Relation("readings"))


@strawberry.input
class MeterFilter:
    estate_id: strawberry.ID | None = None
    unit_id: strawberry.ID | None = None
    fee_item_id: strawberry.ID | None = None
    in_service: bool | None = strawberry.field(default=None, description="true: not replaced; false: replaced.")


@strawberry.input
class InstallMeterInput:
    unit_id: strawberry.ID
    fee_item_id: strawberry.ID = strawberry.field(description="A METERED fee item of the unit's estate.")
    serial: str
    installed_on: dt.date
    multiplier: Decimal = Decimal(1)
    initial_reading: Decimal = Decimal(0)


@strawberry.input
class ReplaceMeterInput:
    meter_id: strawberry.ID
    final_reading: Decimal = strawberry.field(description="The old meter's last reading, billed in its month.")
    replaced_on: dt.date
    serial: str = strawberry.field(description="The new meter's serial number.")
    initial_reading: Decimal = Decimal(0)
    multiplier: Decimal | None = strawberry.field(default=None, description="Default: the old meter's.")


@strawberry.type
class MeterPayload:
    meter: MeterType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class MeterReadingInput:
    meter_id: strawberry.ID
    period: str = strawberry.field(description="The month read, `YYYY-MM`.")
    value: Decimal = strawberry.field(description="The meter's counter, ≥ 0, at most 2 decimals.")
    read_on: dt.date | None = strawberry.field(default=None, description="When it was read; default today.")


@strawberry.input
class RecordMeterReadingsInput:
    readings: list[MeterReadingInput] = strawberry.field(description="1 to 100 readings.")


@strawberry.type(description="The outcome of one reading of the call, by its position.")
class MeterReadingResult:
    index: int
    reading: MeterReadingType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RecordMeterReadingsPayload:
    recorded_count: int = 0
    rejected_count: int = 0
    results: list[MeterReadingResult] = strawberry.field(
        default_factory=list, description="One per reading sent, in order; valid ones are stored even if others fail."
    )
    errors: list[UserError] = strawberry.field(default_factory=list, description="Errors of the call as a whole.")


@strawberry.input
class CorrectUnitAreaInput:
    unit_id: strawberry.ID
    building_area: Decimal = strawberry.field(description="The corrected building area, m².")
    inner_area: Decimal | None = strawberry.field(default=None, description="Default: unchanged (capped).")
    effective_from: dt.date = strawberry.field(description="Bills of periods from this date on are corrected.")
    reason: str


@strawberry.type
class CorrectUnitAreaPayload:
    unit: Annotated[UnitType, strawberry.lazy("schema.property.types")] | None = None
    area_change: UnitAreaChangeType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _error(exc: BillingError) -> UserError:
    return user_error(exc.code, exc.message, exc.field)


@strawberry.type
class MeterQuery:
    @strawberry.field(description="Meters in scope: staff with `Meter read`; residents their own units'.")
    async def meters(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: MeterFilter | None = None
    ) -> Connection[MeterType]:
        statement = select(models.Meter)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(models.Meter.estate_id == try_decode_id(filter.estate_id, "Estate"))
            if filter.unit_id is not None:
                statement = statement.where(models.Meter.unit_id == try_decode_id(filter.unit_id, "Unit"))
            if filter.fee_item_id is not None:
                statement = statement.where(models.Meter.fee_item_id == try_decode_id(filter.fee_item_id, "FeeItem"))
            if filter.in_service is not None:
                removed = models.Meter.removed_on.is_(None)
                statement = statement.where(removed if filter.in_service else ~removed)
        return await scoped_connection(info, models.Meter, statement, first=first, after=after)


async def _meter_path(info: Info, meter: models.Meter) -> str:
    return await estate_path(info.context.session, meter.estate_id)


@strawberry.type
class MeterMutation:
    @strawberry.mutation(description="Install a meter on a unit for a METERED fee item. Needs `Meter create`.")
    async def install_meter(self, info: Info, input: InstallMeterInput) -> MeterPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def unit_path(unit: Unit) -> str:
            return await estate_path(ctx.session, unit.estate_id)

        unit = await authorised_target(
            info, Unit, input.unit_id, type_name="Unit", obj="Meter", act="create", path_of=unit_path
        )
        item_id = try_decode_id(input.fee_item_id, "FeeItem")
        item = await ctx.session.scalar(
            scoped(select(models.FeeItem).where(models.FeeItem.id == item_id), models.FeeItem, ctx.permissions)
        )
        if unit is None:
            return MeterPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such unit.", "unitId")])
        if item is None:
            return MeterPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such fee item.", "feeItemId")])
        try:
            async with unit_of_work(ctx):
                meter = await meters.install_meter(
                    session=ctx.session,
                    unit=unit,
                    fee_item=item,
                    serial=input.serial,
                    multiplier=input.multiplier,
                    initial_reading=input.initial_reading,
                    installed_on=input.installed_on,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return MeterPayload(errors=[_error(exc)])
        return MeterPayload(meter=await reload_for_payload(info, models.Meter, meter.id, "meter"))

    @strawberry.mutation(
        description="Replace a meter: the old one's final reading, the new one's serial and initial reading. "
        "Needs `Meter create`."
    )
    async def replace_meter(self, info: Info, input: ReplaceMeterInput) -> MeterPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def path(meter: models.Meter) -> str:
            return await _meter_path(info, meter)

        meter = await authorised_target(
            info, models.Meter, input.meter_id, type_name="Meter", obj="Meter", act="create", path_of=path
        )
        if meter is None:
            return MeterPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such meter.", "meterId")])
        try:
            async with unit_of_work(ctx):
                successor = await meters.replace_meter(
                    session=ctx.session,
                    meter_id=meter.id,
                    final_reading=input.final_reading,
                    replaced_on=input.replaced_on,
                    serial=input.serial,
                    initial_reading=input.initial_reading,
                    multiplier=input.multiplier,
                    today=local_today(),
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return MeterPayload(errors=[_error(exc)])
        return MeterPayload(meter=await reload_for_payload(info, models.Meter, successor.id, "meter"))

    @strawberry.mutation(
        description="抄表: up to 100 readings in one call, each checked on its own (monotonic per meter, not in "
        "the future, one per meter and month); valid ones are stored even when others fail. Needs `Meter record`."
    )
    async def record_meter_readings(self, info: Info, input: RecordMeterReadingsInput) -> RecordMeterReadingsPayload:
        ctx = info.context
        principal = ctx.require_principal()
        if not ctx.permissions.anywhere("Meter", "record"):
            raise Forbidden()
        if not 1 <= len(input.readings) <= meters.MAX_READINGS_PER_CALL:
            return RecordMeterReadingsPayload(
                errors=[user_error(BillingErrorCode.TOO_MANY_READINGS, "Send 1 to 100 readings.", "readings")]
            )
        ids = [try_decode_id(r.meter_id, "Meter") for r in input.readings]
        visible = {
            m.id: m
            for m in (
                await ctx.session.scalars(
                    scoped(
                        select(models.Meter).where(models.Meter.id.in_([i for i in ids if i])),
                        models.Meter,
                        ctx.permissions,
                    )
                )
            ).all()
        }
        # A meter the caller may read but not record for (another role's estate) is refused per row.
        allowed: set[int] = set()
        for estate_id in {m.estate_id for m in visible.values()}:
            if ctx.permissions.allows_at("Meter", "record", await estate_path(ctx.session, estate_id)):
                allowed.update(m.id for m in visible.values() if m.estate_id == estate_id)
        today = local_today()
        rows = [
            meters.ReadingRow(
                meter_id=i if i in visible else None,
                period_start=meters.parse_period(r.period),
                value=r.value,
                read_on=r.read_on or today,
            )
            for i, r in zip(ids, input.readings, strict=True)
        ]
        forbidden = {
            index for index, row in enumerate(rows) if row.meter_id is not None and row.meter_id not in allowed
        }
        for index in forbidden:
            rows[index].meter_id = None
        try:
            async with unit_of_work(ctx):
                results = await meters.record_readings(
                    session=ctx.session, rows=rows, today=today, actor_id=principal.user_id
                )
        except BillingError as exc:
            return RecordMeterReadingsPayload(errors=[_error(exc)])
        stored_ids = [r.reading_id for r in results if r.reading_id is not None]
        stored = {
            r.id: r
            for r in (
                await ctx.session.scalars(select(models.MeterReading).where(models.MeterReading.id.in_(stored_ids)))
            ).all()
        }
        out: list[MeterReadingResult] = []
        for index, result in enumerate(results):
            if result.reading_id is not None:
                out.append(MeterReadingResult(index=index, reading=stored[result.reading_id]))  # type: ignore[arg-type]
            elif index in forbidden:
                out.append(
                    MeterReadingResult(
                        index=index, errors=[user_error("FORBIDDEN", "You may not record this meter.", "meterId")]
                    )
                )
            else:
                assert result.error is not None
                code, message, field = result.error
                out.append(MeterReadingResult(index=index, errors=[user_error(code, message, field)]))
        return RecordMeterReadingsPayload(
            recorded_count=len(stored_ids), rejected_count=len(results) - len(stored_ids), results=out
        )

    @strawberry.mutation(
        description="面积变更: correct a unit's building area from a date. Issued bills are not edited; the "
        "difference goes on the unit's next PER_AREA bills as an adjustment line. Needs `Unit correct_area`."
    )
    async def correct_unit_area(self, info: Info, input: CorrectUnitAreaInput) -> CorrectUnitAreaPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def unit_path(unit: Unit) -> str:
            return await estate_path(ctx.session, unit.estate_id)

        unit = await authorised_target(
            info, Unit, input.unit_id, type_name="Unit", obj="Unit", act="correct_area", path_of=unit_path
        )
        if unit is None:
            return CorrectUnitAreaPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such unit.", "unitId")])
        try:
            async with unit_of_work(ctx):
                _, change = await area.correct_area(
                    session=ctx.session,
                    unit_id=unit.id,
                    building_area=input.building_area,
                    inner_area=input.inner_area,
                    effective_from=input.effective_from,
                    reason=input.reason,
                    today=local_today(),
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return CorrectUnitAreaPayload(errors=[_error(exc)])
        change_row = await ctx.session.get(models.UnitAreaChange, change.id)
        return CorrectUnitAreaPayload(
            unit=await reload_for_payload(info, Unit, unit.id, "unit"),  # type: ignore[arg-type]
            area_change=change_row,  # type: ignore[arg-type]
        )
