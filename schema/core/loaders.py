"""DataLoaders for every relation, and the look-ahead that preloads what a query selects.

Root resolvers call :func:`load_options` so that a list and everything it nests arrive in a
fixed number of statements. Anything not preloaded (a relation reached some other way) is
fetched by the default field resolver through the per-request DataLoaders below, one batched
statement per relation. Collections go through the same row scopes as root lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, inspect, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import RelationshipProperty, joinedload, selectinload
from sqlalchemy.orm.strategy_options import _AbstractLoad
from strawberry.dataloader import DataLoader
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from authz.scopes import occupancy_current, predicate

if TYPE_CHECKING:
    from schema.core.context import Context


@dataclass(frozen=True, slots=True)
class Relation:
    """A GraphQL field backed by an ORM relationship."""

    attribute: str
    only_active: bool = False  # occupancies: current ones only


# (ORM model, GraphQL field name) → relation. Kept next to the types that expose them.
RELATIONS: dict[tuple[type[Any], str], Relation] = {}


def register_relation(model: type[Any], graphql_name: str, relation: Relation) -> None:
    RELATIONS[(model, graphql_name)] = relation


def _fields(selections: Iterable[Selection]) -> Iterable[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        elif isinstance(selection, (FragmentSpread, InlineFragment)):
            yield from _fields(selection.selections)


def _extra_criteria(ctx: Context, target: type[Any], relation: Relation) -> ColumnElement[bool]:
    criteria = predicate(target, ctx.permissions)
    if relation.only_active:
        criteria = and_(criteria, occupancy_current())
    return criteria


def load_options(ctx: Context, model: type[Any], selections: Iterable[Selection]) -> list[_AbstractLoad]:
    """Loader options for the relations selected under ``model``, recursively.

    Many-to-one relations are joined into the same statement; collections are loaded with
    one SELECT … IN per level, filtered by the caller's row scope.
    """
    options: list[_AbstractLoad] = []
    for selected in _fields(selections):
        relation = RELATIONS.get((model, selected.name))
        if relation is None:
            # Connections and edges: look through to the node.
            if selected.name in ("edges", "node"):
                options.extend(load_options(ctx, model, selected.selections))
            continue
        prop: RelationshipProperty[Any] = inspect(model).relationships[relation.attribute]
        attr = getattr(model, relation.attribute)
        target = prop.mapper.class_
        if prop.uselist:
            option = selectinload(attr.and_(_extra_criteria(ctx, target, relation)))
        else:
            option = joinedload(attr, innerjoin=not _nullable(prop))
        children = load_options(ctx, target, selected.selections)
        options.append(option.options(*children) if children else option)
    return options


def _nullable(prop: RelationshipProperty[Any]) -> bool:
    return any(column.nullable for column in prop.local_columns)


class Loaders:
    """Per-request DataLoaders, one per (model, relationship), created on first use."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._loaders: dict[tuple[type[Any], str], DataLoader[Any, Any]] = {}

    def reset(self) -> None:
        """Forget what was loaded: a subscription's later events must not see earlier values."""
        self._loaders.clear()

    @property
    def roles_by_user(self) -> DataLoader[int, list[tuple[str, Any]]]:
        loader = self._loaders.get((Loaders, "roles_by_user"))
        if loader is None:
            from backend.accounts.roles import role_assignments_of

            async def load(keys: Sequence[int]) -> list[list[tuple[str, Any]]]:
                grants = await role_assignments_of(self._ctx.session, list(keys))
                return [grants[key] for key in keys]

            loader = DataLoader(load_fn=load)
            self._loaders[(Loaders, "roles_by_user")] = loader
        return loader

    def bills_by_unit(self, status: Any, period: str | None) -> DataLoader[int, list[Any]]:
        """A unit's bills in the caller's scope, oldest due first, for one filter."""
        key = (Loaders, f"bills:{status}:{period}")
        loader = self._loaders.get(key)
        if loader is None:
            from backend.billing.models import Bill

            ctx = self._ctx

            async def load(unit_ids: Sequence[int]) -> list[list[Any]]:
                statement = select(Bill).where(Bill.unit_id.in_(unit_ids), predicate(Bill, ctx.permissions))
                if status is not None:
                    statement = statement.where(Bill.status == status)
                if period:
                    statement = statement.where(Bill.period == period)
                rows = (await ctx.session.scalars(statement.order_by(Bill.due_date, Bill.id))).all()
                grouped: dict[int, list[Any]] = {unit_id: [] for unit_id in unit_ids}
                for bill in rows:
                    grouped[bill.unit_id].append(bill)
                return [grouped[unit_id] for unit_id in unit_ids]

            loader = DataLoader(load_fn=load)
            self._loaders[key] = loader
        return loader

    @property
    def bill_by_ticket(self) -> DataLoader[int, Any]:
        """A ticket's REPAIR bill, if the caller may see it (a technician sees the ticket, not the bill)."""
        key = (Loaders, "bill_by_ticket")
        loader = self._loaders.get(key)
        if loader is None:
            from backend.billing.models import Bill

            ctx = self._ctx

            async def load(ticket_ids: Sequence[int]) -> list[Any]:
                statement = select(Bill).where(Bill.ticket_id.in_(ticket_ids), predicate(Bill, ctx.permissions))
                by_ticket = {bill.ticket_id: bill for bill in (await ctx.session.scalars(statement)).all()}
                return [by_ticket.get(ticket_id) for ticket_id in ticket_ids]

            loader = DataLoader(load_fn=load)
            self._loaders[key] = loader
        return loader

    def keyed(self, key: str, load_fn: Any) -> DataLoader[Any, Any]:
        """A DataLoader of the request for ``key``, made from ``load_fn`` on first use."""
        loader = self._loaders.get((Loaders, key))
        if loader is None:
            loader = DataLoader(load_fn=load_fn)
            self._loaders[(Loaders, key)] = loader
        return loader

    def for_relation(self, model: type[Any], attribute: str) -> DataLoader[Any, Any]:
        key = (model, attribute)
        loader = self._loaders.get(key)
        if loader is None:
            prop: RelationshipProperty[Any] = inspect(model).relationships[attribute]
            loader = DataLoader(load_fn=self._batch(prop))
            self._loaders[key] = loader
        return loader

    def _batch(self, prop: RelationshipProperty[Any]) -> Any:
        """Load the relation for a batch of parents in one statement (two for collections),
        with the same scope filter as the look-ahead path; works for every relationship kind."""
        ctx = self._ctx
        parent = prop.parent.class_
        target = prop.mapper.class_
        relation = next((r for (m, _), r in RELATIONS.items() if m is parent and r.attribute == prop.key), None)
        attr = getattr(parent, prop.key)
        if prop.uselist:
            option = selectinload(attr.and_(_extra_criteria(ctx, target, relation or Relation(prop.key))))
        else:
            option = selectinload(attr)

        async def load(keys: Sequence[Any]) -> list[Any]:
            statement = (
                select(parent).where(parent.id.in_(keys)).options(option).execution_options(populate_existing=True)
            )
            by_key = {row.id: row for row in (await ctx.session.scalars(statement)).unique().all()}
            return [getattr(by_key[key], prop.key) if key in by_key else ([] if prop.uselist else None) for key in keys]

        return load


def resolve_attribute(source: Any, name: str) -> object:
    """The schema's default resolver: a plain attribute read, or a batched load of a relation
    that was not preloaded (SQLAlchemy refuses the lazy load with ``lazy="raise"``)."""
    try:
        return getattr(source, name)
    except InvalidRequestError:
        from schema.core.context import current_loaders

        loaders = current_loaders.get()
        if loaders is None:
            raise
        return loaders.for_relation(type(source), name).load(source.id)
