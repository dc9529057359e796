"""Mutations of the people domain: persons and occupancies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry
from sqlalchemy import select

from backend.db import local_today
from backend.people import models, service
from backend.people.errors import PeopleError, PeopleErrorCode
from backend.property.models import OrgUnit, Unit
from schema.core.errors import UserError, user_error
from schema.core.relay import try_decode_id
from schema.core.resolving import (
    Info,
    authorised_target,
    estate_path,
    get_scoped,
    org_unit_path,
    reload_for_payload,
    unit_of_work,
)
from schema.people.types import OccupancyRole, OccupancyType, PersonType


@strawberry.input
class CreatePersonInput:
    org_unit_id: strawberry.ID = strawberry.field(description="The office (or branch) registering the person.")
    name: str
    phone: str | None = None
    id_number: str | None = None
    email: str | None = None


@strawberry.type
class CreatePersonPayload:
    person: PersonType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AddOccupancyInput:
    unit_id: strawberry.ID
    person_id: strawberry.ID
    role: OccupancyRole
    share: Decimal | None = None
    start_date: dt.date | None = None


@strawberry.input
class EndOccupancyInput:
    occupancy_id: strawberry.ID
    end_date: dt.date | None = None


@strawberry.type
class OccupancyPayload:
    occupancy: OccupancyType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _error(exc: PeopleError) -> UserError:
    return user_error(exc.code, exc.message, exc.field)


@strawberry.type
class PeopleMutation:
    @strawberry.mutation(description="Register a person. Needs `Person create` at the org unit.")
    async def create_person(self, info: Info, input: CreatePersonInput) -> CreatePersonPayload:
        ctx = info.context
        principal = ctx.require_principal()
        org = await authorised_target(
            info, OrgUnit, input.org_unit_id, type_name="OrgUnit", obj="Person", act="create", path_of=org_unit_path
        )
        if org is None:
            return CreatePersonPayload(errors=[user_error(PeopleErrorCode.NOT_FOUND, "No such org unit.", "orgUnitId")])
        try:
            async with unit_of_work(ctx):
                person = await service.create_person(
                    session=ctx.session,
                    org_path=org.path,
                    name=input.name,
                    phone=input.phone,
                    id_number=input.id_number,
                    email=input.email,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except PeopleError as exc:
            return CreatePersonPayload(errors=[_error(exc)])
        return CreatePersonPayload(person=await reload_for_payload(info, models.Person, person.id, "person"))

    @strawberry.mutation(description="Tie a person to a unit as owner, tenant or family. Needs `Occupancy create`.")
    async def add_occupancy(self, info: Info, input: AddOccupancyInput) -> OccupancyPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def unit_path(unit: Unit) -> str:
            return await estate_path(ctx.session, unit.estate_id)

        unit = await authorised_target(
            info, Unit, input.unit_id, type_name="Unit", obj="Occupancy", act="create", path_of=unit_path
        )
        person = await get_scoped(info, models.Person, try_decode_id(input.person_id, "Person"))
        if unit is None or person is None:
            field = "unitId" if unit is None else "personId"
            return OccupancyPayload(errors=[user_error(PeopleErrorCode.NOT_FOUND, "Not found.", field)])
        try:
            async with unit_of_work(ctx):
                occupancy = await service.add_occupancy(
                    session=ctx.session,
                    unit=unit,
                    person=person,
                    role=input.role,  # type: ignore[arg-type]
                    share=input.share,
                    start_date=input.start_date or local_today(),
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except PeopleError as exc:
            return OccupancyPayload(errors=[_error(exc)])
        return OccupancyPayload(occupancy=await reload_for_payload(info, models.Occupancy, occupancy.id, "occupancy"))

    @strawberry.mutation(description="End an occupancy (move-out, sale). The row stays as history.")
    async def end_occupancy(self, info: Info, input: EndOccupancyInput) -> OccupancyPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def occupancy_path(occupancy: models.Occupancy) -> str:
            estate_id = await ctx.session.scalar(select(Unit.estate_id).where(Unit.id == occupancy.unit_id))
            return await estate_path(ctx.session, int(estate_id or 0))

        occupancy = await authorised_target(
            info,
            models.Occupancy,
            input.occupancy_id,
            type_name="Occupancy",
            obj="Occupancy",
            act="update",
            path_of=occupancy_path,
        )
        if occupancy is None:
            return OccupancyPayload(errors=[user_error(PeopleErrorCode.NOT_FOUND, "Not found.", "occupancyId")])
        try:
            async with unit_of_work(ctx):
                await service.end_occupancy(
                    session=ctx.session,
                    occupancy=occupancy,
                    end_date=input.end_date or local_today(),
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except PeopleError as exc:
            return OccupancyPayload(errors=[_error(exc)])
        return OccupancyPayload(occupancy=await reload_for_payload(info, models.Occupancy, occupancy.id, "occupancy"))
