"""Relay plumbing: opaque global ids, the Node interface, cursor connections."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db import to_global_id
from schema.core.errors import BadUserInput

__all__ = ["to_global_id"]

MAX_PAGE = 100
DEFAULT_PAGE = 20

NodeT = TypeVar("NodeT")


def from_global_id(global_id: str) -> tuple[str, str]:
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadUserInput(f"{global_id!r} is not a valid id.") from exc
    if not type_name or not pk:
        raise BadUserInput(f"{global_id!r} is not a valid id.")
    return type_name, pk


def decode_id(global_id: strawberry.ID | str, expected: str) -> int:
    """The primary key behind ``global_id``, which must name a ``expected`` object."""
    type_name, pk = from_global_id(str(global_id))
    if type_name != expected or not pk.isdigit():
        raise BadUserInput(f"{global_id!r} is not a {expected} id.")
    return int(pk)


def try_decode_id(global_id: strawberry.ID | str, expected: str) -> int | None:
    try:
        return decode_id(global_id, expected)
    except BadUserInput:
        return None


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    # Each ORM model exposes ``gid``; a plain attribute read keeps hot lists cheap.
    gid: strawberry.ID = strawberry.field(name="id")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    total_count: int


def _cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"c:{pk}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput("Invalid cursor.") from exc
    if not raw.startswith("c:") or not raw[2:].isdigit():
        raise BadUserInput("Invalid cursor.")
    return int(raw[2:])


def check_first(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if not 1 <= first <= MAX_PAGE:
        raise BadUserInput(f"`first` must be between 1 and {MAX_PAGE}.", argument="first")
    return first


@dataclass(slots=True)
class LazyCount:
    """``totalCount`` runs its COUNT only when the client asks for it."""

    session: AsyncSession
    statement: Select[Any]

    async def resolve(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(self.statement.subquery())) or 0)


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    pk: Any,
    *,
    first: int | None,
    after: str | None,
    count_statement: Select[Any] | None,
    newest_first: bool = False,
) -> Connection[Any]:
    """Keyset pagination on the primary key: stable under inserts, one query per page.
    ``newest_first`` walks the keys downwards (the highest id is the newest row)."""
    limit = check_first(first)
    after_pk = _after(after)
    total = await LazyCount(session, count_statement).resolve() if count_statement is not None else -1
    page_statement = statement.order_by(pk.desc() if newest_first else pk).limit(limit + 1)
    if after_pk is not None:
        page_statement = page_statement.where(pk < after_pk if newest_first else pk > after_pk)
    rows: Sequence[Any] = (await session.scalars(page_statement)).unique().all()
    has_next = len(rows) > limit
    rows = rows[:limit]
    edges = [Edge(cursor=_cursor(row.id), node=row) for row in rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=after_pk is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )
