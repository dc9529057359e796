"""Granting and revoking roles: Casbin grouping rows, audited, announced to every process."""

from __future__ import annotations

import enum

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from authz.models import CasbinRule
from authz.rules import ROLES, PolicyError, subject, validate
from backend.accounts.models import User, UserKind
from backend.audit import service as audit
from backend.notifications import service as notifications
from backend.property.models import OrgUnit

POLICY_CHANNEL = "authz.policy_changed"


class RoleErrorCode(enum.Enum):
    UNKNOWN_ROLE = "UNKNOWN_ROLE"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_GRANTED = "ALREADY_GRANTED"
    NOT_GRANTED = "NOT_GRANTED"
    RESIDENT_ROLE = "RESIDENT_ROLE"


class RoleError(Exception):
    def __init__(self, code: RoleErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _check(user: User, role: str) -> None:
    if role not in ROLES:
        raise RoleError(RoleErrorCode.UNKNOWN_ROLE, f"Roles are: {', '.join(ROLES)}.", "role")
    if (role == "resident") != (user.kind is UserKind.RESIDENT):
        raise RoleError(RoleErrorCode.RESIDENT_ROLE, "Residents hold only the resident role, staff never.", "role")


async def grant_role(
    *, session: AsyncSession, user: User, role: str, org_unit: OrgUnit, actor_id: int, request_id: str | None
) -> None:
    _check(user, role)
    line = [subject(user.id), role, org_unit.path]
    try:
        validate("g", line)
    except PolicyError as exc:
        raise RoleError(RoleErrorCode.UNKNOWN_ROLE, str(exc), "role") from exc
    inserted = await session.scalar(
        insert(CasbinRule)
        .values(ptype="g", v0=line[0], v1=line[1], v2=line[2])
        .on_conflict_do_nothing(constraint="uq_casbin_rule_line")
        .returning(CasbinRule.id)
    )
    if inserted is None:
        raise RoleError(RoleErrorCode.ALREADY_GRANTED, "The user holds this role there already.")
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="role.grant",
        target_type="User",
        target_id=user.id,
        request_id=request_id,
        detail={"role": role, "orgUnit": org_unit.path},
    )
    await notifications.notify(
        session,
        user_id=user.id,
        kind="role_granted",
        title=f"You were granted the role {role}",
        body=f"Role {role} at {org_unit.name}.",
        data={"role": role, "orgUnitId": org_unit.id},
        dedup_key=f"role_granted:{inserted}",
    )


async def revoke_role(
    *, session: AsyncSession, user: User, role: str, org_unit: OrgUnit, actor_id: int, request_id: str | None
) -> None:
    if role not in ROLES:
        raise RoleError(RoleErrorCode.UNKNOWN_ROLE, f"Roles are: {', '.join(ROLES)}.", "role")
    deleted = await session.scalar(
        delete(CasbinRule)
        .where(
            CasbinRule.ptype == "g",
            CasbinRule.v0 == subject(user.id),
            CasbinRule.v1 == role,
            CasbinRule.v2 == org_unit.path,
        )
        .returning(CasbinRule.id)
    )
    if deleted is None:
        raise RoleError(RoleErrorCode.NOT_GRANTED, "The user does not hold this role there.")
    await audit.record(
        session,
        actor_user_id=actor_id,
        action="role.revoke",
        target_type="User",
        target_id=user.id,
        request_id=request_id,
        detail={"role": role, "orgUnit": org_unit.path},
    )


async def role_assignments(session: AsyncSession, user_id: int) -> list[tuple[str, OrgUnit]]:
    return (await role_assignments_of(session, [user_id]))[user_id]


async def role_assignments_of(session: AsyncSession, user_ids: list[int]) -> dict[int, list[tuple[str, OrgUnit]]]:
    """Each user's (role, org unit) grants, in grant order, in one statement."""
    subjects = {subject(user_id): user_id for user_id in user_ids}
    rows = await session.execute(
        select(CasbinRule.v0, CasbinRule.v1, OrgUnit)
        .join(OrgUnit, OrgUnit.path == CasbinRule.v2)
        .where(CasbinRule.ptype == "g", CasbinRule.v0.in_(subjects))
        .order_by(CasbinRule.id)
    )
    result: dict[int, list[tuple[str, OrgUnit]]] = {user_id: [] for user_id in user_ids}
    for sub, role, org in rows:
        result[subjects[sub]].append((role, org))
    return result
