"""Access control (门禁): swipes, access points, credentials, visitor passes, and the
``accessEventAdded`` subscription.

Who may act (authz/policy.csv): residents issue and revoke passes for their own units
(`VisitorPass issue_own`, `revoke_own`); guards register walk-in visitors and revoke passes
of their estates (`VisitorPass register`, `revoke`); guards and customer service issue and
revoke credentials (`Credential issue`, `revoke`); managers create access points
(`AccessPoint create`, through their `*`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator

import strawberry
from sqlalchemy import select

from authz.scopes import scoped
from backend.access import models, service
from backend.access.errors import AccessError
from backend.people.models import Person
from backend.property.models import Estate, Unit
from schema.access.live import hub_for
from schema.access.types import (
    AccessEventType,
    AccessPointKind,
    AccessPointType,
    AccessResult,
    CredentialKind,
    CredentialType,
    VisitorPassType,
)
from schema.core.errors import Forbidden, Unauthenticated, UserError, user_error
from schema.core.live import deliveries, hang_up_if_stuck
from schema.core.loaders import load_options
from schema.core.relay import Connection, try_decode_id
from schema.core.resolving import (
    Info,
    estate_path,
    get_scoped,
    reload_for_payload,
    scoped_connection,
    unit_of_work,
)


def _errors(error: AccessError) -> list[UserError]:
    return [user_error(error.code, error.message, error.field)]


@strawberry.input
class AccessEventFilter:
    estate_id: strawberry.ID | None = None
    access_point_id: strawberry.ID | None = None
    result: AccessResult | None = None
    from_: dt.datetime | None = strawberry.field(default=None, name="from", description="Occurred at or after.")
    to: dt.datetime | None = strawberry.field(default=None, description="Occurred before.")


@strawberry.input
class VisitorPassFilter:
    estate_id: strawberry.ID | None = None
    unit_id: strawberry.ID | None = None
    valid_now: bool = strawberry.field(default=False, description="Only passes valid now and not revoked.")


@strawberry.input
class AccessEventSubscriptionFilter:
    estate_id: strawberry.ID | None = None
    access_point_id: strawberry.ID | None = None


@strawberry.input
class IssueVisitorPassInput:
    unit_id: strawberry.ID
    visitor_name: str
    visitor_phone: str | None = None
    valid_from: dt.datetime
    valid_until: dt.datetime


@strawberry.input
class RegisterWalkInVisitorInput:
    unit_id: strawberry.ID
    visitor_name: str
    visitor_phone: str | None = None


@strawberry.input
class RevokeVisitorPassInput:
    pass_id: strawberry.ID


@strawberry.type
class VisitorPassPayload:
    visitor_pass: VisitorPassType | None = strawberry.field(default=None, name="pass")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class IssueCredentialInput:
    person_id: strawberry.ID
    kind: CredentialKind
    identifier: str
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None


@strawberry.input
class RevokeCredentialInput:
    credential_id: strawberry.ID


@strawberry.type
class CredentialPayload:
    credential: CredentialType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateAccessPointInput:
    estate_id: strawberry.ID
    name: str
    kind: AccessPointKind
    device_id: str | None = None
    location: str = ""


@strawberry.type
class AccessPointPayload:
    access_point: AccessPointType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AccessQuery:
    @strawberry.field(
        description="Swipes in scope, newest first: guards and supervisors those of their estates; residents those "
        "of their own credentials and of the passes they issued."
    )
    async def access_events(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: AccessEventFilter | None = None
    ) -> Connection[AccessEventType]:
        statement = select(models.AccessEvent)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(models.AccessEvent.estate_id == try_decode_id(filter.estate_id, "Estate"))
            if filter.access_point_id is not None:
                point_id = try_decode_id(filter.access_point_id, "AccessPoint")
                statement = statement.where(models.AccessEvent.access_point_id == point_id)
            if filter.result is not None:
                statement = statement.where(models.AccessEvent.result == filter.result)
            if filter.from_ is not None:
                statement = statement.where(models.AccessEvent.occurred_at >= filter.from_)
            if filter.to is not None:
                statement = statement.where(models.AccessEvent.occurred_at < filter.to)
        return await scoped_connection(info, models.AccessEvent, statement, first=first, after=after, newest_first=True)

    @strawberry.field(description="Access points of the estates in scope (staff with `AccessPoint read`).")
    async def access_points(self, info: Info, estate_id: strawberry.ID | None = None) -> list[AccessPointType]:
        ctx = info.context
        ctx.require_principal()
        statement = select(models.AccessPoint).order_by(models.AccessPoint.id)
        if estate_id is not None:
            statement = statement.where(models.AccessPoint.estate_id == try_decode_id(estate_id, "Estate"))
        statement = scoped(statement, models.AccessPoint, ctx.permissions)
        options = load_options(ctx, models.AccessPoint, info.selected_fields[0].selections)
        return list((await ctx.session.scalars(statement.options(*options))).unique().all())  # type: ignore[arg-type]

    @strawberry.field(
        description="Visitor passes in scope, newest first: residents the passes they issued; guards, supervisors "
        "and customer service those of their estates."
    )
    async def visitor_passes(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: VisitorPassFilter | None = None
    ) -> Connection[VisitorPassType]:
        statement = select(models.VisitorPass)
        if filter is not None:
            if filter.estate_id is not None:
                statement = statement.where(models.VisitorPass.estate_id == try_decode_id(filter.estate_id, "Estate"))
            if filter.unit_id is not None:
                statement = statement.where(models.VisitorPass.unit_id == try_decode_id(filter.unit_id, "Unit"))
            if filter.valid_now:
                now = dt.datetime.now(dt.UTC)
                statement = statement.where(
                    models.VisitorPass.valid_from <= now,
                    models.VisitorPass.valid_until > now,
                    models.VisitorPass.revoked_at.is_(None),
                )
        return await scoped_connection(info, models.VisitorPass, statement, first=first, after=after, newest_first=True)

    @strawberry.field(description="A person's credentials (staff with `Credential read`; a resident their own).")
    async def credentials(self, info: Info, person_id: strawberry.ID) -> list[CredentialType]:
        ctx = info.context
        ctx.require_principal()
        statement = select(models.Credential).where(models.Credential.person_id == try_decode_id(person_id, "Person"))
        statement = scoped(statement.order_by(models.Credential.id), models.Credential, ctx.permissions)
        options = load_options(ctx, models.Credential, info.selected_fields[0].selections)
        return list((await ctx.session.scalars(statement.options(*options))).unique().all())  # type: ignore[arg-type]


async def _pass_payload(info: Info, visitor_pass: models.VisitorPass) -> VisitorPassPayload:
    loaded = await reload_for_payload(info, models.VisitorPass, visitor_pass.id, "pass")
    return VisitorPassPayload(visitor_pass=loaded)  # type: ignore[arg-type]


@strawberry.type
class AccessMutation:
    @strawberry.mutation(
        description="An owner invites a visitor to their own unit: a window of at most 7 days, not in the past; "
        "the pass's random code is what the visitor shows at the gate."
    )
    async def issue_visitor_pass(self, info: Info, input: IssueVisitorPassInput) -> VisitorPassPayload:
        ctx = info.context
        principal = ctx.require_principal()
        if not ctx.permissions.anywhere("VisitorPass", "issue_own"):
            raise Forbidden()
        unit = await get_scoped(info, Unit, try_decode_id(input.unit_id, "Unit"))
        if unit is None:
            return VisitorPassPayload(errors=[user_error("NOT_FOUND", "No such unit of yours.", "unitId")])
        try:
            async with unit_of_work(ctx):
                visitor_pass = await service.issue_visitor_pass(
                    ctx.session,
                    unit=unit,
                    visitor_name=input.visitor_name,
                    visitor_phone=input.visitor_phone,
                    valid_from=input.valid_from,
                    valid_until=input.valid_until,
                    issued_by_id=principal.user_id,
                )
        except AccessError as error:
            return VisitorPassPayload(errors=_errors(error))
        return await _pass_payload(info, visitor_pass)

    @strawberry.mutation(description="A guard registers a walk-in visitor for a unit of their estate, valid today.")
    async def register_walk_in_visitor(self, info: Info, input: RegisterWalkInVisitorInput) -> VisitorPassPayload:
        ctx = info.context
        principal = ctx.require_principal()
        if not ctx.permissions.anywhere("VisitorPass", "register"):
            raise Forbidden()
        unit = await get_scoped(info, Unit, try_decode_id(input.unit_id, "Unit"))
        if unit is None:
            return VisitorPassPayload(errors=[user_error("NOT_FOUND", "No such unit.", "unitId")])
        if not ctx.permissions.allows_at("VisitorPass", "register", await estate_path(ctx.session, unit.estate_id)):
            raise Forbidden()
        try:
            async with unit_of_work(ctx):
                visitor_pass = await service.register_walk_in(
                    ctx.session,
                    unit=unit,
                    visitor_name=input.visitor_name,
                    visitor_phone=input.visitor_phone,
                    issued_by_id=principal.user_id,
                )
        except AccessError as error:
            return VisitorPassPayload(errors=_errors(error))
        return await _pass_payload(info, visitor_pass)

    @strawberry.mutation(
        description="Revoke a pass: its issuer (`VisitorPass revoke_own`) or a guard of the estate (`revoke`)."
    )
    async def revoke_visitor_pass(self, info: Info, input: RevokeVisitorPassInput) -> VisitorPassPayload:
        ctx = info.context
        principal = ctx.require_principal()
        staff = ctx.permissions.anywhere("VisitorPass", "revoke")
        own = ctx.permissions.anywhere("VisitorPass", "revoke_own")
        if not (staff or own):
            raise Forbidden()
        target = await get_scoped(info, models.VisitorPass, try_decode_id(input.pass_id, "VisitorPass"))
        if target is None:
            return VisitorPassPayload(errors=[user_error("NOT_FOUND", "No such pass.", "passId")])
        allowed = (own and target.issued_by_id == principal.user_id) or (
            staff
            and ctx.permissions.allows_at("VisitorPass", "revoke", await estate_path(ctx.session, target.estate_id))
        )
        if not allowed:
            raise Forbidden()
        try:
            async with unit_of_work(ctx):
                await service.revoke_visitor_pass(ctx.session, target.id)
        except AccessError as error:
            return VisitorPassPayload(errors=_errors(error))
        return await _pass_payload(info, target)

    @strawberry.mutation(description="Issue a credential to a person in scope (guards, customer service, managers).")
    async def issue_credential(self, info: Info, input: IssueCredentialInput) -> CredentialPayload:
        ctx = info.context
        ctx.require_principal()
        if not ctx.permissions.anywhere("Credential", "issue"):
            raise Forbidden()
        person = await get_scoped(info, Person, try_decode_id(input.person_id, "Person"))
        if person is None:
            return CredentialPayload(errors=[user_error("NOT_FOUND", "No such person.", "personId")])
        try:
            async with unit_of_work(ctx):
                credential = await service.issue_credential(
                    ctx.session,
                    person_id=person.id,
                    kind=input.kind,
                    identifier=input.identifier,
                    valid_from=input.valid_from,
                    valid_until=input.valid_until,
                )
        except AccessError as error:
            return CredentialPayload(errors=_errors(error))
        loaded = await reload_for_payload(info, models.Credential, credential.id, "credential")
        return CredentialPayload(credential=loaded)  # type: ignore[arg-type]

    @strawberry.mutation(description="Revoke a credential in scope (guards, customer service, managers).")
    async def revoke_credential(self, info: Info, input: RevokeCredentialInput) -> CredentialPayload:
        ctx = info.context
        ctx.require_principal()
        if not ctx.permissions.anywhere("Credential", "revoke"):
            raise Forbidden()
        target = await get_scoped(info, models.Credential, try_decode_id(input.credential_id, "Credential"))
        if target is None:
            return CredentialPayload(errors=[user_error("NOT_FOUND", "No such credential.", "credentialId")])
        try:
            async with unit_of_work(ctx):
                await service.revoke_credential(ctx.session, target.id)
        except AccessError as error:
            return CredentialPayload(errors=_errors(error))
        loaded = await reload_for_payload(info, models.Credential, target.id, "credential")
        return CredentialPayload(credential=loaded)  # type: ignore[arg-type]

    @strawberry.mutation(description="Create an access point bound to a controller (managers: `AccessPoint create`).")
    async def create_access_point(self, info: Info, input: CreateAccessPointInput) -> AccessPointPayload:
        ctx = info.context
        ctx.require_principal()
        if not ctx.permissions.anywhere("AccessPoint", "create"):
            raise Forbidden()
        estate = await get_scoped(info, Estate, try_decode_id(input.estate_id, "Estate"))
        if estate is None:
            return AccessPointPayload(errors=[user_error("NOT_FOUND", "No such estate.", "estateId")])
        if not ctx.permissions.allows_at("AccessPoint", "create", estate.org_path):
            raise Forbidden()
        try:
            async with unit_of_work(ctx):
                point = await service.create_access_point(
                    ctx.session,
                    estate_id=estate.id,
                    name=input.name,
                    kind=input.kind,
                    device_id=input.device_id,
                    location=input.location,
                )
        except AccessError as error:
            return AccessPointPayload(errors=_errors(error))
        loaded = await reload_for_payload(info, models.AccessPoint, point.id, "accessPoint")
        return AccessPointPayload(access_point=loaded)  # type: ignore[arg-type]


@strawberry.type
class AccessSubscription:
    @strawberry.subscription(
        description="Swipes as they are recorded, for whoever may see them (checked again for every event): guards "
        "and supervisors their estates', a resident their own and their visitors'. A client that reads too slowly is "
        "disconnected with an error."
    )
    async def access_event_added(
        self, info: Info, filter: AccessEventSubscriptionFilter | None = None
    ) -> AsyncGenerator[AccessEventType, None]:
        ctx = info.context
        if ctx.principal is None:
            raise Unauthenticated()
        estate_id = try_decode_id(filter.estate_id, "Estate") if filter and filter.estate_id else None
        point_id = try_decode_id(filter.access_point_id, "AccessPoint") if filter and filter.access_point_id else None
        hub = hub_for(ctx.runtime.sessionmaker, ctx.runtime.bus)
        subscriber = hub.add(
            ctx.permissions, estate_id=estate_id, access_point_id=point_id, on_drop=hang_up_if_stuck(ctx)
        )
        # The hub offers only swipes in the caller's scope, checked for every swipe.
        async for event in deliveries(hub, subscriber):
            yield event  # the hub's one payload: executed once for every subscriber of the same result group
