"""Who is asking, and what they may do — resolved once per request."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from authz.enforcer import Authorizer, Grant
from authz.rules import subject


class FieldAccess(enum.Enum):
    FULL = "full"
    SELF = "self"  # full only on the caller's own person
    MASKED = "masked"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    kind: str  # "STAFF" | "RESIDENT"
    person_id: int | None

    @property
    def subject(self) -> str:
        return subject(self.user_id)

    @property
    def is_resident(self) -> bool:
        return self.kind == "RESIDENT"


@dataclass(slots=True)
class Permissions:
    """The principal's permissions, memoised for the request (and across requests by the
    authorizer until the policy changes). Anonymous callers have a ``None`` principal."""

    principal: Principal | None
    authorizer: Authorizer
    _fields: dict[str, FieldAccess] = field(default_factory=dict)

    @property
    def grants(self) -> tuple[Grant, ...]:
        return self.authorizer.grants(self.principal.subject) if self.principal else ()

    def domains(self, obj: str, act: str) -> tuple[str, ...]:
        if self.principal is None:
            return ()
        return self.authorizer.domains(self.principal.subject, obj, act)

    def anywhere(self, obj: str, act: str) -> bool:
        return bool(self.domains(obj, act))

    def allows_at(self, obj: str, act: str, path: str) -> bool:
        """May the caller ``act`` on ``obj`` at the org-unit (or estate) ``path``?"""
        return any(path.startswith(domain) for domain in self.domains(obj, act))

    def field_access(self, field_name: str) -> FieldAccess:
        cached = self._fields.get(field_name)
        if cached is None:
            if self.anywhere(field_name, "read"):
                cached = FieldAccess.FULL
            elif self.anywhere(field_name, "read_self"):
                cached = FieldAccess.SELF
            else:
                cached = FieldAccess.MASKED
            self._fields[field_name] = cached
        return cached
