"""Ticket mutations: submit, and every step of the lifecycle. Each answers ``{ticket errors}``.

Authorisation, the same for every step (policy rows in authz/policy.csv):

* no permission for the step anywhere → FORBIDDEN;
* the ticket outside the caller's read scope → NOT_FOUND, exactly like a missing id;
* the step held in the ticket's estate (``Ticket start``), or held for assigned tickets and
  the caller is the assignee (``Ticket start_assigned``), or held for own tickets and the
  caller reported it (``Ticket cancel_own``) → the step is taken; otherwise FORBIDDEN.

The step then checks the version it read when authorising: of two concurrent requests one
wins, the other gets CONCURRENT_UPDATE (or ILLEGAL_TRANSITION) and nothing changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import strawberry
from sqlalchemy import select

from authz.rules import subject
from authz.scopes import own_estate_ids, own_unit_ids, scoped
from backend.accounts.models import User, UserKind
from backend.billing.repairs import Charge
from backend.events import publish_after_commit
from backend.people.models import Person
from backend.property.models import Estate, Unit
from backend.tickets import models, workflow
from backend.tickets.errors import TicketError, TicketErrorCode
from backend.tickets.models import TicketChannel as Channel
from backend.tickets.models import TicketKind as Kind
from backend.tickets.service import NewTicket
from backend.tickets.updates import ticket_channel
from schema.core.errors import Forbidden, UserError, user_error
from schema.core.relay import try_decode_id
from schema.core.resolving import Info, estate_path, get_scoped, reload_for_payload, unit_of_work
from schema.tickets.types import ReturnVisitOutcome, TicketChannel, TicketKind, TicketPriority, TicketType

RESIDENT_KINDS = (Kind.REPAIR, Kind.COMPLAINT, Kind.INQUIRY)
STAFF_CHANNELS = (Channel.PHONE, Channel.WALK_IN, Channel.STAFF)


@strawberry.type
class TicketPayload:
    ticket: TicketType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SubmitTicketInput:
    kind: TicketKind = strawberry.field(description="Residents: REPAIR, COMPLAINT or INQUIRY.")
    category: str = strawberry.field(description="A category's code, e.g. `plumbing` (see `ticketCategories`).")
    title: str
    description: str = ""
    unit_id: strawberry.ID | None = strawberry.field(default=None, description="The unit, or …")
    estate_id: strawberry.ID | None = strawberry.field(
        default=None, description="… the estate, for a public area (describe where in `location`)."
    )
    priority: TicketPriority = TicketPriority.NORMAL  # type: ignore[assignment]
    contact_phone: str | None = strawberry.field(default=None, description="Defaults to the reporter's phone.")
    appointment_at: dt.datetime | None = strawberry.field(default=None, description="When the visit may start.")
    appointment_end: dt.datetime | None = None
    location: str = ""
    photo_urls: list[str] = strawberry.field(default_factory=list, description="https URLs, at most 9.")
    channel: TicketChannel | None = strawberry.field(
        default=None, description="Staff: PHONE, WALK_IN or STAFF (default). Residents always APP."
    )
    reporter_person_id: strawberry.ID | None = strawberry.field(
        default=None, description="Staff reporting on someone's behalf: that person."
    )
    asset_id: strawberry.ID | None = None


@strawberry.input
class AssignTicketInput:
    ticket_id: strawberry.ID
    assignee_id: strawberry.ID = strawberry.field(description="A staff account that may work tickets there.")
    note: str = ""


@strawberry.input
class StartTicketInput:
    ticket_id: strawberry.ID
    note: str = ""


@strawberry.input
class HoldTicketInput:
    ticket_id: strawberry.ID
    note: str = strawberry.field(description="Why (waiting for parts, the owner is away, …); required.")


@strawberry.input
class ChargeInput:
    description: str
    amount: Decimal = strawberry.field(description="Whole cents, > 0.")


@strawberry.input
class ChecklistResultInput:
    item: str
    ok: bool
    note: str = ""


@strawberry.input
class ResolveTicketInput:
    ticket_id: strawberry.ID
    resolution: str
    charges: list[ChargeInput] = strawberry.field(
        default_factory=list, description="Labour and materials; billed to the unit as one REPAIR bill."
    )
    checklist: list[ChecklistResultInput] | None = strawberry.field(
        default=None, description="Maintenance tickets: the plan's checklist results."
    )
    notes: str = ""


@strawberry.input
class CloseTicketInput:
    ticket_id: strawberry.ID
    return_visit_outcome: ReturnVisitOutcome | None = strawberry.field(
        default=None, description="回访: required for REPAIR and COMPLAINT tickets with a reporter."
    )
    note: str = ""


@strawberry.input
class CancelTicketInput:
    ticket_id: strawberry.ID
    note: str = ""


@strawberry.input
class ReopenTicketInput:
    ticket_id: strawberry.ID
    reason: str


@strawberry.input
class RateTicketInput:
    ticket_id: strawberry.ID
    rating: int = strawberry.field(description="1 to 5.")
    comment: str = ""


@strawberry.input
class CommentTicketInput:
    ticket_id: strawberry.ID
    text: str


@dataclass(frozen=True, slots=True)
class Step:
    """Who may take a step: in the estate (``staff``), on tickets assigned to the caller
    (``assigned``), on tickets the caller reported (``own``)."""

    staff: str
    assigned: str | None = None
    own: str | None = None

    def actions(self) -> tuple[str, ...]:
        return tuple(a for a in (self.staff, self.assigned, self.own) if a)


ASSIGN = Step("assign")
START = Step("start", assigned="start_assigned")
HOLD = Step("hold", assigned="hold_assigned")
RESOLVE = Step("resolve", assigned="resolve_assigned")
CLOSE = Step("close")
CANCEL = Step("cancel", own="cancel_own")
REOPEN = Step("reopen", own="reopen_own")
RATE = Step("rate_own")  # only ever the reporter: checked below


def _not_found() -> TicketPayload:
    return TicketPayload(errors=[user_error(TicketErrorCode.NOT_FOUND, "No such ticket.", "ticketId")])


@dataclass(slots=True)
class Authorised:
    ticket: models.Ticket
    via: str  # "staff" | "assigned" | "own"


async def _authorise(info: Info, ticket_id: strawberry.ID, step: Step) -> Authorised | None:
    ctx = info.context
    principal = ctx.require_principal()
    permissions = ctx.permissions
    if not any(permissions.anywhere("Ticket", act) for act in step.actions()):
        raise Forbidden()
    ticket = await get_scoped(info, models.Ticket, try_decode_id(ticket_id, "Ticket"))
    if ticket is None:
        return None
    path = await estate_path(ctx.session, ticket.estate_id)
    if step is RATE:
        if ticket.reporter_user_id == principal.user_id and permissions.allows_at("Ticket", step.staff, path):
            return Authorised(ticket, "own")
        raise Forbidden()
    if permissions.allows_at("Ticket", step.staff, path):
        return Authorised(ticket, "staff")
    if (
        step.assigned
        and ticket.assignee_id == principal.user_id
        and permissions.allows_at("Ticket", step.assigned, path)
    ):
        return Authorised(ticket, "assigned")
    if step.own and ticket.reporter_user_id == principal.user_id and permissions.anywhere("Ticket", step.own):
        return Authorised(ticket, "own")
    raise Forbidden()


StepFn = Callable[[models.Ticket], Awaitable[tuple[models.Ticket, models.TicketEvent]]]


async def _take(info: Info, ticket_id: strawberry.ID, step: Step, run: Callable[[Authorised], StepFn]) -> TicketPayload:
    """Authorise, take the step in one transaction, publish its event after the commit."""
    ctx = info.context
    authorised = await _authorise(info, ticket_id, step)
    if authorised is None:
        return _not_found()
    try:
        async with unit_of_work(ctx):
            ticket, event = await run(authorised)(authorised.ticket)
            publish_after_commit(ctx.session, ctx.runtime.bus, ticket_channel(ticket.id), {"eventId": event.id})
    except TicketError as exc:
        return TicketPayload(errors=[user_error(exc.code, exc.message, exc.field)])
    return TicketPayload(ticket=await reload_for_payload(info, models.Ticket, ticket.id, "ticket"))


async def _may_work_at(info: Info, user: User, path: str) -> bool:
    """Whether an account may be given tickets in an estate: it may start them there."""
    authorizer = info.context.permissions.authorizer
    return any(
        path.startswith(domain)
        for act in ("start", "start_assigned")
        for domain in authorizer.domains(subject(user.id), "Ticket", act)
    )


def _me(info: Info) -> int:
    return info.context.require_principal().user_id


@strawberry.type
class TicketsMutation:
    @strawberry.mutation(
        description="Report a problem. Residents (`Ticket submit_own`): for their own unit or a public area of their "
        "estate, channel APP. Staff (`Ticket submit`): in their estates, on someone's behalf (`reporterPersonId`)."
    )
    async def submit_ticket(self, info: Info, input: SubmitTicketInput) -> TicketPayload:
        ctx = info.context
        principal = ctx.require_principal()
        resident = principal.is_resident
        if not ctx.permissions.anywhere("Ticket", "submit_own" if resident else "submit"):
            raise Forbidden()
        try:
            new = await _new_ticket(info, input, resident=resident)
        except TicketError as exc:
            return TicketPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        if new is None:
            return TicketPayload(errors=[user_error(TicketErrorCode.NOT_FOUND, "No such unit or estate.", "unitId")])
        try:
            async with unit_of_work(ctx):
                ticket = await workflow.submit(ctx.session, new, actor_id=principal.user_id)
        except TicketError as exc:
            return TicketPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return TicketPayload(ticket=await reload_for_payload(info, models.Ticket, ticket.id, "ticket"))

    @strawberry.mutation(description="Give a ticket to a technician (or re-assign it). Needs `Ticket assign`.")
    async def assign_ticket(self, info: Info, input: AssignTicketInput) -> TicketPayload:
        me = _me(info)

        def run(_authorised: Authorised) -> StepFn:
            async def step(t: models.Ticket) -> tuple[models.Ticket, models.TicketEvent]:
                session = info.context.session
                assignee = await session.get(User, try_decode_id(input.assignee_id, "User") or 0)
                if (
                    assignee is None
                    or assignee.kind is not UserKind.STAFF
                    or not assignee.is_active
                    or not await _may_work_at(info, assignee, await estate_path(session, t.estate_id))
                ):
                    raise TicketError(
                        TicketErrorCode.INVALID_ASSIGNEE, "Not someone who works tickets here.", "assigneeId"
                    )
                return await workflow.assign(
                    session, t.id, assignee_id=assignee.id, actor_id=me, expected_version=t.version, note=input.note
                )

            return step

        return await _take(info, input.ticket_id, ASSIGN, run)

    @strawberry.mutation(
        description="Start work (or resume a ticket on hold). Needs `Ticket start`, or `Ticket start_assigned` as "
        "the assignee."
    )
    async def start_ticket(self, info: Info, input: StartTicketInput) -> TicketPayload:
        me = _me(info)
        return await _take(
            info,
            input.ticket_id,
            START,
            lambda _a: (
                lambda t: workflow.start(
                    info.context.session, t.id, actor_id=me, expected_version=t.version, note=input.note
                )
            ),
        )

    @strawberry.mutation(description="Put work on hold, saying why. Needs `Ticket hold` or `hold_assigned`.")
    async def hold_ticket(self, info: Info, input: HoldTicketInput) -> TicketPayload:
        me = _me(info)
        return await _take(
            info,
            input.ticket_id,
            HOLD,
            lambda _a: (
                lambda t: workflow.hold(
                    info.context.session, t.id, actor_id=me, expected_version=t.version, note=input.note
                )
            ),
        )

    @strawberry.mutation(
        description="Resolve, optionally with charges (one REPAIR bill on the unit). Needs `Ticket resolve` or "
        "`resolve_assigned`."
    )
    async def resolve_ticket(self, info: Info, input: ResolveTicketInput) -> TicketPayload:
        me = _me(info)
        resolution = workflow.Resolution(
            text=input.resolution,
            charges=[Charge(c.description, c.amount) for c in input.charges],
            checklist=None
            if input.checklist is None
            else [{"item": c.item, "ok": c.ok, "note": c.note} for c in input.checklist],
            notes=input.notes,
        )
        return await _take(
            info,
            input.ticket_id,
            RESOLVE,
            lambda _a: (
                lambda t: workflow.resolve(
                    info.context.session,
                    t.id,
                    resolution,
                    actor_id=me,
                    expected_version=t.version,
                    request_id=info.context.request_id,
                )
            ),
        )

    @strawberry.mutation(description="Close a resolved ticket after the return visit (回访). Needs `Ticket close`.")
    async def close_ticket(self, info: Info, input: CloseTicketInput) -> TicketPayload:
        me = _me(info)
        return await _take(
            info,
            input.ticket_id,
            CLOSE,
            lambda _a: (
                lambda t: workflow.close(
                    info.context.session,
                    t.id,
                    outcome=input.return_visit_outcome,
                    note=input.note,
                    actor_id=me,
                    expected_version=t.version,
                )
            ),
        )

    @strawberry.mutation(
        description="Cancel a NEW or ASSIGNED ticket. Needs `Ticket cancel`; residents (`cancel_own`) their own "
        "NEW tickets."
    )
    async def cancel_ticket(self, info: Info, input: CancelTicketInput) -> TicketPayload:
        me = _me(info)

        def run(authorised: Authorised) -> StepFn:
            async def step(t: models.Ticket) -> tuple[models.Ticket, models.TicketEvent]:
                if authorised.via == "own" and t.status is not models.TicketStatus.NEW:
                    raise TicketError(
                        TicketErrorCode.ILLEGAL_TRANSITION, "Only a NEW ticket can be withdrawn.", "ticketId"
                    )
                return await workflow.cancel(
                    info.context.session, t.id, note=input.note, actor_id=me, expected_version=t.version
                )

            return step

        return await _take(info, input.ticket_id, CANCEL, run)

    @strawberry.mutation(
        description="Reopen a RESOLVED ticket within 7 days (→ ASSIGNED). The reporter (`Ticket reopen_own`) or "
        "`Ticket reopen`."
    )
    async def reopen_ticket(self, info: Info, input: ReopenTicketInput) -> TicketPayload:
        me = _me(info)
        return await _take(
            info,
            input.ticket_id,
            REOPEN,
            lambda _a: (
                lambda t: workflow.reopen(
                    info.context.session, t.id, reason=input.reason, actor_id=me, expected_version=t.version
                )
            ),
        )

    @strawberry.mutation(description="Rate a RESOLVED or CLOSED ticket, 1–5, once. The reporter only (`rate_own`).")
    async def rate_ticket(self, info: Info, input: RateTicketInput) -> TicketPayload:
        me = _me(info)
        return await _take(
            info,
            input.ticket_id,
            RATE,
            lambda _a: (
                lambda t: workflow.rate(
                    info.context.session,
                    t.id,
                    rating=input.rating,
                    comment=input.comment,
                    actor_id=me,
                    expected_version=t.version,
                )
            ),
        )

    @strawberry.mutation(description="Comment on a ticket: anyone who may see it.")
    async def comment_ticket(self, info: Info, input: CommentTicketInput) -> TicketPayload:
        ctx = info.context
        principal = ctx.require_principal()
        if not any(ctx.permissions.anywhere("Ticket", act) for act in ("read", "read_assigned", "read_own")):
            raise Forbidden()
        ticket = await get_scoped(info, models.Ticket, try_decode_id(input.ticket_id, "Ticket"))
        if ticket is None:
            return _not_found()
        try:
            async with unit_of_work(ctx):
                _, event = await workflow.comment(ctx.session, ticket.id, text=input.text, actor_id=principal.user_id)
                publish_after_commit(ctx.session, ctx.runtime.bus, ticket_channel(ticket.id), {"eventId": event.id})
        except TicketError as exc:
            return TicketPayload(errors=[user_error(exc.code, exc.message, exc.field)])
        return TicketPayload(ticket=await reload_for_payload(info, models.Ticket, ticket.id, "ticket"))


async def _new_ticket(info: Info, input: SubmitTicketInput, *, resident: bool) -> NewTicket | None:
    """The ticket to open, checked against who asks; None when the unit or estate is out of
    the staff member's scope (NOT_FOUND)."""
    ctx = info.context
    session = ctx.session
    principal = ctx.require_principal()
    unit_pk = try_decode_id(input.unit_id, "Unit") if input.unit_id is not None else None
    estate_pk = try_decode_id(input.estate_id, "Estate") if input.estate_id is not None else None
    if input.unit_id is None and input.estate_id is None:
        raise TicketError(TicketErrorCode.INVALID_SCOPE, "Name the unit, or the estate for a public area.", "unitId")
    unit: Unit | None = None
    if input.unit_id is not None:
        unit = await session.get(Unit, unit_pk or 0)
        if resident and (unit is None or unit.id not in set(await session.scalars(own_unit_ids(principal)))):
            raise TicketError(TicketErrorCode.INVALID_SCOPE, "Not a unit you live in.", "unitId")
        if not resident and (unit is None or await get_scoped(info, Unit, unit.id) is None):
            return None
        assert unit is not None
        if estate_pk is not None and estate_pk != unit.estate_id:
            raise TicketError(TicketErrorCode.INVALID_SCOPE, "The unit is not in that estate.", "estateId")
        estate_pk = unit.estate_id
    estate = await session.get(Estate, estate_pk or 0)
    if resident:
        if estate is None or estate.id not in set(await session.scalars(own_estate_ids(principal))):
            raise TicketError(TicketErrorCode.INVALID_SCOPE, "Not an estate you live in.", "estateId")
    else:
        if estate is None or await session.scalar(scoped(select(Estate.id).where(Estate.id == estate.id), Estate,
                                                         ctx.permissions)) is None:  # fmt: skip
            return None
        if not ctx.permissions.allows_at("Ticket", "submit", estate.org_path):
            raise Forbidden()
    assert estate is not None
    kind: Kind = input.kind  # strawberry's enum is the model's
    if resident and kind not in RESIDENT_KINDS:
        raise TicketError(TicketErrorCode.INVALID_INPUT, "Residents report repairs, complaints and inquiries.", "kind")
    reporter_user_id, reporter_person_id = principal.user_id, principal.person_id
    if resident:
        channel = Channel.APP
    else:
        channel = Channel(input.channel.value) if input.channel is not None else Channel.STAFF
        if channel not in STAFF_CHANNELS:
            raise TicketError(TicketErrorCode.INVALID_INPUT, "Staff report by PHONE, WALK_IN or STAFF.", "channel")
        if input.reporter_person_id is not None:
            person = await get_scoped(info, Person, try_decode_id(input.reporter_person_id, "Person"))
            if person is None:
                raise TicketError(TicketErrorCode.INVALID_INPUT, "No such person.", "reporterPersonId")
            reporter_person_id = person.id
            reporter_user_id = await session.scalar(select(User.id).where(User.person_id == person.id))
    phone = (input.contact_phone or "").strip() or None
    if phone is None and reporter_person_id is not None:
        phone = await session.scalar(select(Person.phone).where(Person.id == reporter_person_id))
    if phone is not None and (len(phone) > 20 or not phone.replace("-", "").replace("+", "").isdigit()):
        raise TicketError(TicketErrorCode.INVALID_INPUT, "A phone number of digits.", "contactPhone")
    asset_id = None
    if input.asset_id is not None:
        from backend.assets.models import Asset

        asset_id = try_decode_id(input.asset_id, "Asset")
        if (
            await session.scalar(select(Asset.id).where(Asset.id == (asset_id or 0), Asset.estate_id == estate.id))
            is None
        ):
            raise TicketError(TicketErrorCode.INVALID_INPUT, "No such asset in the estate.", "assetId")
    return NewTicket(
        estate=estate,
        kind=kind,
        category_code=input.category,
        title=input.title,
        channel=channel,
        priority=input.priority,
        description=input.description,
        unit_id=unit.id if unit is not None else None,
        location=input.location[:200],
        contact_phone=phone,
        appointment_start=input.appointment_at,
        appointment_end=input.appointment_end,
        photo_urls=list(input.photo_urls),
        asset_id=asset_id,
        reporter_user_id=reporter_user_id,
        reporter_person_id=reporter_person_id,
    )
