"""Helpers to expose ORM models as strawberry types without per-row conversion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import strawberry

T = TypeVar("T", bound=type)


def orm_type(model: type[Any], *, name: str, description: str | None = None) -> Callable[[T], T]:
    """A strawberry object type whose values are instances of ``model`` itself.

    Fields without resolvers read the model's attributes directly; ``is_type_of`` lets
    interfaces (``Node``) recognise the ORM instance as this type.
    """

    def wrap(cls: T) -> T:
        def is_type_of(obj: Any, _info: Any) -> bool:
            return isinstance(obj, model)

        cls.is_type_of = staticmethod(is_type_of)  # type: ignore[attr-defined]
        return strawberry.type(cls, name=name, description=description)

    return wrap
