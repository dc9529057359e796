"""Database engine, sessions and the declarative base shared by every domain."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, MetaData, Numeric, String, func
from sqlalchemy import Enum as SAEnum
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Annotated[Decimal, mapped_column(Numeric(12, 2))]
Area = Annotated[Decimal, mapped_column(Numeric(10, 2))]
Timestamp = Annotated[dt.datetime, mapped_column(DateTime(timezone=True))]


def to_global_id(type_name: str, pk: int | str) -> str:
    """The opaque Relay id of an object: base64url of ``Type:pk``."""
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: DateTime(timezone=True), str: String()}
    # The GraphQL type name of the model, when it differs from the class name.
    __graphql_name__: ClassVar[str | None] = None

    @property
    def gid(self) -> str:
        return to_global_id(self.__graphql_name__ or type(self).__name__, self.id)  # type: ignore[attr-defined]


def enum_column(enum_cls: type[enum.Enum], name: str | None = None) -> SAEnum:
    """Enums are stored as their names in a VARCHAR with a CHECK, easy to extend in a migration.
    ``name`` names the CHECK when a table has two columns of one enum."""
    return SAEnum(
        enum_cls,
        native_enum=False,
        length=24,
        create_constraint=True,
        validate_strings=True,
        name=name or enum_cls.__name__.lower(),
    )


def created_at_column() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@lru_cache(maxsize=4)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_today() -> dt.date:
    """Today in the company's time zone (WUYE_TIMEZONE), not the server's."""
    return dt.datetime.now(local_timezone()).date()


def local_timezone() -> ZoneInfo:
    """The company's time zone (WUYE_TIMEZONE): what people read on messages and dashboards."""
    from backend.settings import get_settings

    return _zone(get_settings().timezone)


def make_engine(url: str, *, pool_size: int = 10, **kwargs: Any) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **kwargs)


class SerialSession(AsyncSession):
    """An AsyncSession that several coroutines may share: one database call at a time.

    GraphQL resolves sibling fields concurrently and they share the request's session; a
    plain AsyncSession refuses concurrent use. Calls from the task already holding the lock
    (e.g. ``scalars`` calling ``execute``) pass straight through.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serial_lock = asyncio.Lock()
        self._serial_owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def _serialised(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if self._serial_owner is task:
            yield
            return
        async with self._serial_lock:
            self._serial_owner = task
            try:
                yield
            finally:
                self._serial_owner = None


def _serialise(name: str) -> None:
    original = getattr(AsyncSession, name)

    async def method(self: SerialSession, *args: Any, **kwargs: Any) -> Any:
        async with self._serialised():
            return await original(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = original.__doc__
    setattr(SerialSession, name, method)


for _name in ("execute", "scalar", "scalars", "get", "flush", "commit", "rollback", "refresh", "merge", "delete"):
    _serialise(_name)


MEMO = "memo"


def memo(session: AsyncSession) -> dict[Any, Any] | None:
    """The session's memo of look-ups that stand for its transaction (company settings, the
    holders of a role), when its owner opened one (``session.info[MEMO] = {}``: the MQTT
    ingest, whose batch transactions repeat the same look-ups for every alarm). None otherwise,
    so request sessions always read afresh."""
    found: dict[Any, Any] | None = session.info.get(MEMO)
    return found


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session, session.begin():
        yield session
