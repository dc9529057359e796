"""login, refreshToken, logout, grantRole, revokeRole."""

from __future__ import annotations

import datetime as dt

import strawberry

from backend.accounts import roles, service
from backend.accounts.errors import AuthError, AuthErrorCode
from backend.accounts.models import User
from backend.accounts.roles import POLICY_CHANNEL, RoleError, RoleErrorCode
from backend.property.models import OrgUnit
from schema.accounts.types import RoleAssignment, ViewerType
from schema.core.errors import RateLimited, UserError, user_error
from schema.core.relay import try_decode_id
from schema.core.resolving import Info, authorised_target, org_unit_path, unit_of_work


@strawberry.input
class LoginInput:
    username: str
    password: str


@strawberry.type
class LoginPayload:
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: dt.datetime | None = None
    viewer: ViewerType | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RefreshTokenInput:
    refresh_token: str


@strawberry.type
class RefreshTokenPayload:
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: dt.datetime | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class LogoutInput:
    refresh_token: str


@strawberry.type
class LogoutPayload:
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RoleInput:
    user_id: strawberry.ID
    role: str
    org_unit_id: strawberry.ID


@strawberry.type
class GrantRolePayload:
    role_assignment: RoleAssignment | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RevokeRolePayload:
    errors: list[UserError] = strawberry.field(default_factory=list)


def _auth_error(exc: AuthError) -> UserError:
    return user_error(exc.code, exc.message)


@strawberry.type
class AccountsMutation:
    @strawberry.mutation(description="Exchange a username and password for tokens. Throttled per account and address.")
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        ctx = info.context
        runtime = ctx.runtime
        try:
            async with unit_of_work(ctx):
                pair = await service.login(
                    session=ctx.session,
                    settings=runtime.settings,
                    throttle=runtime.login_throttle,
                    username=input.username,
                    password=input.password,
                    client_ip=ctx.client_ip,
                    request_id=ctx.request_id,
                )
        except AuthError as exc:
            if exc.code is AuthErrorCode.RATE_LIMITED:
                raise RateLimited(exc.message, exc.retry_after or 60) from exc
            return LoginPayload(errors=[_auth_error(exc)])
        return LoginPayload(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_at=pair.expires_at,
            viewer=pair.user,  # type: ignore[arg-type]
        )

    @strawberry.mutation(description="Spend a refresh token for a new pair; a reused token revokes its family.")
    async def refresh_token(self, info: Info, input: RefreshTokenInput) -> RefreshTokenPayload:
        ctx = info.context
        try:
            async with unit_of_work(ctx):
                pair = await service.refresh(
                    session=ctx.session, settings=ctx.runtime.settings, refresh_token=input.refresh_token
                )
        except AuthError as exc:
            return RefreshTokenPayload(errors=[_auth_error(exc)])
        return RefreshTokenPayload(
            access_token=pair.access_token, refresh_token=pair.refresh_token, expires_at=pair.expires_at
        )

    @strawberry.mutation(description="Revoke the refresh token's whole family (this login on this device).")
    async def logout(self, info: Info, input: LogoutInput) -> LogoutPayload:
        ctx = info.context
        async with unit_of_work(ctx):
            await service.logout(session=ctx.session, refresh_token=input.refresh_token)
        return LogoutPayload()

    @strawberry.mutation(description="Grant a role at an org unit. Needs `RoleAssignment grant` there (admin).")
    async def grant_role(self, info: Info, input: RoleInput) -> GrantRolePayload:
        ctx = info.context
        principal = ctx.require_principal()
        org = await authorised_target(
            info,
            OrgUnit,
            input.org_unit_id,
            type_name="OrgUnit",
            obj="RoleAssignment",
            act="grant",
            path_of=org_unit_path,
        )
        if org is None:
            return GrantRolePayload(errors=[user_error(RoleErrorCode.NOT_FOUND, "No such org unit.", "orgUnitId")])
        user_id = try_decode_id(input.user_id, "User")
        user = await ctx.session.get(User, user_id) if user_id is not None else None
        if user is None:
            return GrantRolePayload(errors=[user_error(RoleErrorCode.NOT_FOUND, "No such user.", "userId")])
        try:
            async with unit_of_work(ctx):
                await roles.grant_role(
                    session=ctx.session,
                    user=user,
                    role=input.role,
                    org_unit=org,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except RoleError as exc:
            return GrantRolePayload(errors=[user_error(exc.code, exc.message, exc.field)])
        await ctx.runtime.policy_changed()
        return GrantRolePayload(role_assignment=RoleAssignment(role=input.role, org_unit=org))  # type: ignore[arg-type]

    @strawberry.mutation(description="Revoke a role at an org unit. Needs `RoleAssignment grant` there (admin).")
    async def revoke_role(self, info: Info, input: RoleInput) -> RevokeRolePayload:
        ctx = info.context
        principal = ctx.require_principal()
        org = await authorised_target(
            info,
            OrgUnit,
            input.org_unit_id,
            type_name="OrgUnit",
            obj="RoleAssignment",
            act="grant",
            path_of=org_unit_path,
        )
        if org is None:
            return RevokeRolePayload(errors=[user_error(RoleErrorCode.NOT_FOUND, "No such org unit.", "orgUnitId")])
        user_id = try_decode_id(input.user_id, "User")
        user = await ctx.session.get(User, user_id) if user_id is not None else None
        if user is None:
            return RevokeRolePayload(errors=[user_error(RoleErrorCode.NOT_FOUND, "No such user.", "userId")])
        try:
            async with unit_of_work(ctx):
                await roles.revoke_role(
                    session=ctx.session,
                    user=user,
                    role=input.role,
                    org_unit=org,
                    actor_id=principal.user_id,
                    request_id=ctx.request_id,
                )
        except RoleError as exc:
            return RevokeRolePayload(errors=[user_error(exc.code, exc.message, exc.field)])
        await ctx.runtime.policy_changed()
        return RevokeRolePayload()


__all__ = ["POLICY_CHANNEL", "AccountsMutation"]
