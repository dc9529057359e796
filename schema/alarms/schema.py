"""Alarms in GraphQL: the ``alarms`` query, acknowledge / clear / comment, ``alarmEvents``.

Authorisation (policy rows in authz/policy.csv, object ``Alarm``): ``read`` for supervisors,
security guards, customer service and technicians in their estates (managers and admin
through ``*``; residents never); ``acknowledge``, ``clear`` and ``comment`` for supervisors and
guards. A mutation without the permission anywhere → FORBIDDEN; an alarm outside the
caller's read scope → NOT_FOUND, exactly like a missing id; the permission not held at the
alarm's estate → FORBIDDEN. Nothing is written when refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Awaitable, Callable

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.alarms import models, service
from backend.alarms.automation import after_alarm_change
from backend.alarms.errors import AlarmError
from schema.alarms.live import hub_for
from schema.alarms.types import AlarmEventType, AlarmSeverity, AlarmStatus, AlarmType
from schema.core.errors import Forbidden, Unauthenticated, UserError, user_error
from schema.core.live import deliveries, hang_up_if_stuck
from schema.core.relay import Connection, try_decode_id
from schema.core.resolving import (
    Info,
    authorised_target,
    estate_path,
    reload_for_payload,
    scoped_connection,
    unit_of_work,
)

# How often an idle subscription re-checks that its caller may still read alarms (a revoked
# role ends it within this time, even when no alarm happens).
RECHECK_SECONDS = 1.0


def _at_least(severity: models.AlarmSeverity | None) -> list[models.AlarmSeverity]:
    rank = 0 if severity is None else models.AlarmSeverity(severity.value).rank
    return [s for s in models.AlarmSeverity if s.rank >= rank]


def _estate_ids(ids: list[strawberry.ID] | None) -> set[int] | None:
    if not ids:
        return None
    return {try_decode_id(i, "Estate") or 0 for i in ids}


@strawberry.input
class AlarmFilter:
    estate_ids: list[strawberry.ID] | None = strawberry.field(default=None, description="Any of these estates.")
    status: list[AlarmStatus] | None = strawberry.field(default=None, description="Any of these statuses.")
    min_severity: AlarmSeverity | None = strawberry.field(default=None, description="This severity or a worse one.")
    type: str | None = None
    from_: dt.datetime | None = strawberry.field(default=None, name="from", description="First seen at or after.")
    to: dt.datetime | None = strawberry.field(default=None, description="First seen before.")


@strawberry.input
class AlarmEventFilter:
    estate_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Default: every estate in scope."
    )
    min_severity: AlarmSeverity | None = strawberry.field(default=None, description="Default: every severity.")


@strawberry.input
class AcknowledgeAlarmInput:
    alarm_id: strawberry.ID
    note: str = ""


@strawberry.input
class ClearAlarmInput:
    alarm_id: strawberry.ID
    note: str = ""


@strawberry.input
class CommentAlarmInput:
    alarm_id: strawberry.ID
    note: str = strawberry.field(description="1 to 2000 characters.")


@strawberry.type
class AlarmPayload:
    alarm: AlarmType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AlarmsQuery:
    @strawberry.field(
        description="Alarms in scope, newest first: staff with `Alarm read` in their estates (supervisors, guards, "
        "customer service, technicians, managers); residents none."
    )
    async def alarms(
        self, info: Info, first: int | None = 20, after: str | None = None, filter: AlarmFilter | None = None
    ) -> Connection[AlarmType]:
        statement = select(models.Alarm)
        if filter is not None:
            estate_ids = _estate_ids(filter.estate_ids)
            if estate_ids is not None:
                statement = statement.where(models.Alarm.estate_id.in_(estate_ids))
            if filter.status:
                statement = statement.where(models.Alarm.status.in_(filter.status))
            if filter.min_severity is not None:
                statement = statement.where(models.Alarm.severity.in_(_at_least(filter.min_severity)))
            if filter.type:
                statement = statement.where(models.Alarm.type == filter.type.strip())
            if filter.from_ is not None:
                statement = statement.where(models.Alarm.first_seen_at >= filter.from_)
            if filter.to is not None:
                statement = statement.where(models.Alarm.first_seen_at < filter.to)
        return await scoped_connection(info, models.Alarm, statement, first=first, after=after, newest_first=True)


Step = Callable[[AsyncSession, int, int, str], Awaitable[service.AlarmChange]]


async def _take(info: Info, alarm_id: strawberry.ID, act: str, step: Step, note: str) -> AlarmPayload:
    ctx = info.context
    principal = ctx.require_principal()

    async def path_of(alarm: models.Alarm) -> str:
        return await estate_path(ctx.session, alarm.estate_id)

    alarm = await authorised_target(
        info, models.Alarm, alarm_id, type_name="Alarm", obj="Alarm", act=act, path_of=path_of
    )
    if alarm is None:
        return AlarmPayload(errors=[user_error("NOT_FOUND", "No such alarm.", "alarmId")])
    try:
        async with unit_of_work(ctx):
            change = await step(ctx.session, alarm.id, principal.user_id, note)
            await after_alarm_change(ctx.session, change, bus=ctx.runtime.bus)
    except AlarmError as exc:
        return AlarmPayload(errors=[user_error(exc.code, exc.message, exc.field)])
    return AlarmPayload(alarm=await reload_for_payload(info, models.Alarm, alarm.id, "alarm"))  # type: ignore[arg-type]


async def _acknowledge(session: AsyncSession, alarm_id: int, actor_id: int, note: str) -> service.AlarmChange:
    return await service.acknowledge(session, alarm_id, actor_id=actor_id, note=note)


async def _clear(session: AsyncSession, alarm_id: int, actor_id: int, note: str) -> service.AlarmChange:
    return await service.clear(session, alarm_id, actor_id=actor_id, note=note)


async def _comment(session: AsyncSession, alarm_id: int, actor_id: int, note: str) -> service.AlarmChange:
    return await service.comment(session, alarm_id, actor_id=actor_id, note=note)


@strawberry.type
class AlarmsMutation:
    @strawberry.mutation(description="ACTIVE → ACKNOWLEDGED; stops the escalation. Needs `Alarm acknowledge`.")
    async def acknowledge_alarm(self, info: Info, input: AcknowledgeAlarmInput) -> AlarmPayload:
        return await _take(info, input.alarm_id, "acknowledge", _acknowledge, input.note)

    @strawberry.mutation(description="ACTIVE or ACKNOWLEDGED → CLEARED. Needs `Alarm clear`.")
    async def clear_alarm(self, info: Info, input: ClearAlarmInput) -> AlarmPayload:
        return await _take(info, input.alarm_id, "clear", _clear, input.note)

    @strawberry.mutation(description="A comment in the alarm's history. Needs `Alarm comment`.")
    async def comment_alarm(self, info: Info, input: CommentAlarmInput) -> AlarmPayload:
        return await _take(info, input.alarm_id, "comment", _comment, input.note)


@strawberry.type
class AlarmsSubscription:
    @strawberry.subscription(
        description="Alarms as they are raised, repeated, acknowledged and cleared, in the caller's scope (checked "
        "for every event; a caller who loses `Alarm read` is disconnected). A client that reads too slowly is "
        "disconnected with an error."
    )
    async def alarm_events(
        self, info: Info, filter: AlarmEventFilter | None = None
    ) -> AsyncGenerator[AlarmEventType, None]:
        ctx = info.context
        if ctx.principal is None:
            raise Unauthenticated()
        permissions = ctx.permissions
        if not permissions.anywhere("Alarm", "read"):
            raise Forbidden()
        estate_ids = _estate_ids(filter.estate_ids) if filter is not None else None
        severities = set(_at_least(filter.min_severity if filter is not None else None))

        def accept(event: AlarmEventType) -> bool:
            alarm: models.Alarm = event.alarm  # type: ignore[assignment]
            return (estate_ids is None or alarm.estate_id in estate_ids) and alarm.severity in severities

        def still_allowed() -> bool:
            return permissions.anywhere("Alarm", "read")  # a revoked role completes the subscription

        hub = hub_for(ctx.runtime.sessionmaker, ctx.runtime.bus)
        subscriber = hub.add(accept, on_drop=hang_up_if_stuck(ctx))
        async for event in deliveries(hub, subscriber, still_allowed=still_allowed, recheck_seconds=RECHECK_SECONDS):
            if permissions.allows_at("Alarm", "read", event.alarm.estate.org_path):  # type: ignore[attr-defined]
                yield event  # the hub's one payload: executed once for every subscriber of the same result group
