"""Mutations of the people domain: persons and occupancies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry
from sqlalchemy import select

from backend.db import local_today
from backend.people import models, service
from backend.people.errors import PeopleError, PeopleErrorCode
from backend.property.models import Estate, OrgUnit, Unit
from schema.core.errors import Forbidden, UserError, user_error
from schema.core.relay import try_decode_id
from schema.core.resolving import Info, get_scoped, reload_for_payload, unit_of_work
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


async def _estate_path(info: Info, unit_id: int) -> str:
    path = await info.context.session.scalar(
        select(Estate.org_path).join(Unit, Unit.estate_id == Estate.id).where(Unit.id == unit_id)
    )
    return str(path)


@strawberry.type
class PeopleMutation:
    @strawberry.mutation(description="Register a person. Needs `Person create` at the org unit.")
    async def create_person(self, info: Info, input: CreatePersonInput) -> CreatePersonPayload:
        ctx = info.context
        principal = ctx.require_principal()
        if not ctx.permissions.anywhere("Person", "create"):
            raise Forbidden()
        org = await get_scoped(info, OrgUnit, try_decode_id(input.org_unit_id, "OrgUnit"))
        if org is None:
            return CreatePersonPayload(errors=[user_error(PeopleErrorCode.NOT_FOUND, "No such org unit.", "orgUnitId")])
        if not ctx.permissions.allows_at("Person", "create", org.path):
            raise Forbidden()
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
        if not ctx.permissions.anywhere("Occupancy", "create"):
            raise Forbidden()
        unit = await get_scoped(info, Unit, try_decode_id(input.unit_id, "Unit"))
        person = await get_scoped(info, models.Person, try_decode_id(input.person_id, "Person"))
        if unit is None or person is None:
            field = "unitId" if unit is None else "personId"
            return OccupancyPayload(errors=[user_error(PeopleErrorCode.NOT_FOUND, "Not found.", field)])
        if not ctx.permissions.allows_at("Occupancy", "create", await _estate_path(info, unit.id)):
            raise Forbidden()
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
        if not ctx.permissions.anywhere("Occupancy", "update"):
            raise Forbidden()
        occupancy = await get_scoped(info, models.Occupancy, try_decode_id(input.occupancy_id, "Occupancy"))
        if occupancy is None:
            return OccupancyPayload(errors=[user_error(PeopleErrorCode.NOT_FOUND, "Not found.", "occupancyId")])
        if not ctx.permissions.allows_at("Occupancy", "update", await _estate_path(info, occupancy.unit_id)):
            raise Forbidden()
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
