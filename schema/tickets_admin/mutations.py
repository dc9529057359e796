"""Mutations of ticket dispatch settings: SLA rules, technicians' skills, auto-assignment."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from authz.principal import Principal
from backend.accounts.models import User
from backend.accounts.roles import role_assignments
from backend.property.models import Estate
from backend.tickets import sla_rules
from backend.tickets.dispatch import TECHNICIAN_ROLE
from backend.tickets.errors import TicketError, TicketErrorCode
from schema.accounts.types import UserType
from schema.core.errors import Forbidden, UserError, user_error
from schema.core.resolving import Info, authorised_target, estate_own_path, reload_for_payload, unit_of_work
from schema.property.types import EstateType
from schema.tickets.types import TicketCategoryType
from schema.tickets_admin.queries import SETTINGS, caller_company_path, company_id
from schema.tickets_admin.types import SlaRule, TicketPriority


@strawberry.input
class SetSlaRuleInput:
    priority: TicketPriority
    category_code: str | None = strawberry.field(
        default=None, description="A category's code (e.g. `elevator`); null: the rule for every category."
    )
    response_minutes: int = strawberry.field(description="From the opening to the first start on site; ≥ 1.")
    resolve_minutes: int = strawberry.field(description="From the opening to the resolution; ≥ responseMinutes.")


@strawberry.type
class SlaRulePayload:
    sla_rule: SlaRule | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetTechnicianSkillsInput:
    user_id: strawberry.ID = strawberry.field(description="A user holding the technician role.")
    category_codes: list[str] = strawberry.field(description="Replaces the technician's skills; [] clears them.")


@strawberry.type
class TechnicianSkillsPayload:
    user: UserType | None = None
    category_codes: list[str] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetEstateAutoAssignInput:
    estate_id: strawberry.ID
    enabled: bool


@strawberry.type
class EstateAutoAssignPayload:
    estate: EstateType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


async def _office_of(session: AsyncSession, user_id: int) -> tuple[str | None, str]:
    """(where the user holds the technician role or None, the org path their settings are
    decided at: that office, else their first grant's unit, else nowhere)."""
    grants = await role_assignments(session, user_id)
    technician = next((org.path for role, org in grants if role == TECHNICIAN_ROLE), None)
    return technician, technician or (grants[0][1].path if grants else "")


@strawberry.input
class SetTicketCategoryInput:
    code: str = strawberry.field(description="`plumbing`, or a new code: 2-32 lower-case letters, digits, _.")
    name: str
    active: bool = True
    sort_order: int | None = None


@strawberry.type
class TicketCategoryPayload:
    category: TicketCategoryType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _settings_company(info: Info) -> tuple[Principal, int]:
    """The caller and the company whose ticket settings they change: FORBIDDEN without
    `TicketSettings update` held at the company itself."""
    principal = info.context.require_principal()
    path = caller_company_path(info, SETTINGS, "update")
    if not info.context.permissions.allows_at(SETTINGS, "update", path):
        raise Forbidden()
    return principal, company_id(path)


@strawberry.type
class TicketsAdminMutation:
    @strawberry.mutation(
        description="Add, rename, reorder or retire one of the company's ticket categories. Needs "
        "`TicketSettings update` at the company."
    )
    async def set_ticket_category(self, info: Info, input: SetTicketCategoryInput) -> TicketCategoryPayload:
        ctx = info.context
        principal, company = _settings_company(info)
        try:
            async with unit_of_work(ctx):
                category = await sla_rules.set_category(
                    ctx.session,
                    company_id=company,
                    code=input.code,
                    name=input.name,
                    active=input.active,
                    sort_order=input.sort_order,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except TicketError as exc:
            return TicketCategoryPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return TicketCategoryPayload(category=category)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Set the company's deadlines for a priority (and category); applies to tickets opened "
        "afterwards. Needs `TicketSettings update` at the company (admin; a manager granted at the company)."
    )
    async def set_sla_rule(self, info: Info, input: SetSlaRuleInput) -> SlaRulePayload:
        ctx = info.context
        principal, company = _settings_company(info)
        try:
            async with unit_of_work(ctx):
                rule = await sla_rules.set_sla_rule(
                    ctx.session,
                    company_id=company,
                    priority=input.priority,
                    category_code=input.category_code,
                    response_minutes=input.response_minutes,
                    resolve_minutes=input.resolve_minutes,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except TicketError as exc:
            return SlaRulePayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return SlaRulePayload(sla_rule=SlaRule.of(rule))

    @strawberry.mutation(
        description="Replace a technician's skills (the categories auto-assignment may give them). Needs "
        "`TicketSettings update` where the technician works (manager, admin)."
    )
    async def set_technician_skills(self, info: Info, input: SetTechnicianSkillsInput) -> TechnicianSkillsPayload:
        ctx = info.context
        principal = ctx.require_principal()

        async def decided_at(user: User) -> str:
            return (await _office_of(ctx.session, user.id))[1]

        user = await authorised_target(
            info, User, input.user_id, type_name="User", obj=SETTINGS, act="update", path_of=decided_at
        )
        if user is None:
            return TechnicianSkillsPayload(errors=[user_error(TicketErrorCode.NOT_FOUND, "No such user.", "userId")])
        office, _ = await _office_of(ctx.session, user.id)
        if office is None:
            return TechnicianSkillsPayload(
                errors=[user_error(TicketErrorCode.INVALID_ASSIGNEE, "The user is not a technician.", "userId")]
            )
        try:
            async with unit_of_work(ctx):
                categories = await sla_rules.set_technician_skills(
                    ctx.session,
                    user_id=user.id,
                    company_id=company_id(office),
                    category_codes=input.category_codes,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except TicketError as exc:
            return TechnicianSkillsPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return TechnicianSkillsPayload(
            user=await reload_for_payload(info, User, user.id, "user"),  # type: ignore[arg-type]
            category_codes=[c.code for c in categories],
        )

    @strawberry.mutation(
        description="Turn automatic dispatch of an estate's new tickets on or off. Needs `TicketSettings update` "
        "at the estate (manager, admin)."
    )
    async def set_estate_auto_assign(self, info: Info, input: SetEstateAutoAssignInput) -> EstateAutoAssignPayload:
        ctx = info.context
        principal = ctx.require_principal()
        estate = await authorised_target(
            info, Estate, input.estate_id, type_name="Estate", obj=SETTINGS, act="update", path_of=estate_own_path
        )
        if estate is None:
            return EstateAutoAssignPayload(
                errors=[user_error(TicketErrorCode.NOT_FOUND, "No such estate.", "estateId")]
            )
        async with unit_of_work(ctx):
            await sla_rules.set_auto_assign(
                ctx.session, estate=estate, enabled=input.enabled, actor_id=principal.user_id, request_id=ctx.request_id
            )
        return EstateAutoAssignPayload(
            estate=await reload_for_payload(info, Estate, estate.id, "estate")  # type: ignore[arg-type]
        )
