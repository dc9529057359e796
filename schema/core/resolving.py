"""Shared resolver steps: scoped reads with look-ahead loading, by-id lookups, connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import strawberry
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types.nodes import SelectedField

from authz.scopes import scoped
from backend.property.models import Estate, OrgUnit
from schema.core.context import Context
from schema.core.errors import Forbidden
from schema.core.loaders import load_options
from schema.core.relay import Connection, paginate, try_decode_id

M = TypeVar("M")

Info = strawberry.Info[Context, None]


def _selections(info: Info) -> list[Any]:
    return info.selected_fields[0].selections if info.selected_fields else []


def wants(info: Info, name: str) -> bool:
    return any(isinstance(s, SelectedField) and s.name == name for s in _selections(info))


async def scoped_connection(
    info: Info,
    model: type[Any],
    statement: Select[Any] | None = None,
    *,
    first: int | None,
    after: str | None,
    newest_first: bool = False,
) -> Connection[Any]:
    ctx = info.context
    ctx.require_principal()  # anonymous callers may only log in
    base = scoped(statement if statement is not None else select(model), model, ctx.permissions)
    page = base.options(*load_options(ctx, model, _selections(info)))
    return await paginate(
        ctx.session,
        page,
        model.id,
        first=first,
        after=after,
        count_statement=base if wants(info, "totalCount") else None,
        newest_first=newest_first,
    )


async def get_scoped(info: Info, model: type[M], pk: int | None, *, action: str = "read") -> M | None:
    """The object if it exists and the caller may see it; ``None`` otherwise (never "forbidden")."""
    ctx = info.context
    ctx.require_principal()
    if pk is None:
        return None
    statement = scoped(select(model).where(model.id == pk), model, ctx.permissions, action)  # type: ignore[attr-defined]
    statement = statement.options(*load_options(ctx, model, _selections(info)))
    return (await ctx.session.scalars(statement)).unique().one_or_none()


def payload_options(info: Info, model: type[Any], field: str) -> list[Any]:
    """Loader options for what the mutation payload's ``field`` selects under ``model``."""
    for selected in _selections(info):
        if isinstance(selected, SelectedField) and selected.name == field:
            return load_options(info.context, model, selected.selections)
    return []


async def reload_for_payload(info: Info, model: type[M], pk: int, field: str) -> M | None:
    """Re-read an object a mutation wrote, with what the payload's ``field`` selects preloaded."""
    ctx = info.context
    selections: list[Any] = []
    for selected in _selections(info):
        if isinstance(selected, SelectedField) and selected.name == field:
            selections = selected.selections
    statement = scoped(select(model).where(model.id == pk), model, ctx.permissions)  # type: ignore[attr-defined]
    statement = statement.options(*load_options(ctx, model, selections)).execution_options(populate_existing=True)
    return (await ctx.session.scalars(statement)).unique().one_or_none()


@asynccontextmanager
async def unit_of_work(ctx: Context) -> AsyncIterator[AsyncSession]:
    """Commit the request's transaction (reads included) on success, roll back on any error."""
    try:
        yield ctx.session
        await ctx.session.commit()
    except BaseException:
        await ctx.session.rollback()
        raise


async def authorised_target(
    info: Info,
    model: type[M],
    global_id: strawberry.ID | str,
    *,
    type_name: str,
    obj: str,
    act: str,
    path_of: Callable[[M], Awaitable[str]],
) -> M | None:
    """The object a mutation acts on, checked the same way by every mutation:

    no ``obj act`` anywhere → FORBIDDEN; the object outside the caller's read scope → None,
    answered as NOT_FOUND exactly like a missing id; ``obj act`` not held at the object's
    org path → FORBIDDEN.
    """
    ctx = info.context
    ctx.require_principal()
    if not ctx.permissions.anywhere(obj, act):
        raise Forbidden()
    target = await get_scoped(info, model, try_decode_id(global_id, type_name))
    if target is None:
        return None
    if not ctx.permissions.allows_at(obj, act, await path_of(target)):
        raise Forbidden()
    return target


async def org_unit_path(org: OrgUnit) -> str:
    return org.path


async def estate_own_path(estate: Estate) -> str:
    return estate.org_path


async def estate_path(session: AsyncSession, estate_id: int) -> str:
    """The org path that governs an estate and everything in it."""
    path = await session.scalar(select(Estate.org_path).where(Estate.id == estate_id))
    return str(path)
