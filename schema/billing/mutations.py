"""generateBills."""

from __future__ import annotations

import strawberry

from backend.billing import service
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.periods import parse_month
from backend.property.models import Estate
from schema.core.errors import UserError, user_error
from schema.core.resolving import Info, authorised_target, estate_own_path, unit_of_work


@strawberry.input
class GenerateBillsInput:
    estate_id: strawberry.ID
    period: str = strawberry.field(
        description="The month to bill, `YYYY-MM`. Quarterly and yearly items bill in their first month."
    )


@strawberry.type
class GenerateBillsPayload:
    created_count: int = 0
    skipped_count: int = strawberry.field(default=0, description="Bills that existed already (idempotent re-runs).")
    items_without_rate: list[str] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BillingMutation:
    @strawberry.mutation(
        description="Bill an estate's periodic fee items for a month. Idempotent: each bill is made once. "
        "Needs `Bill generate` (finance, manager)."
    )
    async def generate_bills(self, info: Info, input: GenerateBillsInput) -> GenerateBillsPayload:
        ctx = info.context
        principal = ctx.require_principal()
        estate = await authorised_target(
            info, Estate, input.estate_id, type_name="Estate", obj="Bill", act="generate", path_of=estate_own_path
        )
        if estate is None:
            return GenerateBillsPayload(errors=[user_error(BillingErrorCode.NOT_FOUND, "No such estate.", "estateId")])
        try:
            month = parse_month(input.period)
            async with unit_of_work(ctx):
                report = await service.generate_bills(
                    session=ctx.session,
                    estate=estate,
                    month=month,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except BillingError as exc:
            return GenerateBillsPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return GenerateBillsPayload(
            created_count=report.created, skipped_count=report.skipped, items_without_rate=report.items_without_rate
        )
