"""Log in, rotate refresh tokens, log out."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.errors import AuthError, AuthErrorCode
from backend.accounts.models import RefreshToken, User
from backend.accounts.passwords import hash_password, needs_rehash, verify_password
from backend.accounts.throttle import LoginThrottle
from backend.accounts.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from backend.audit import service as audit
from backend.db import utcnow
from backend.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TokenPair:
    user: User
    access_token: str
    refresh_token: str
    expires_at: dt.datetime


async def _issue(session: AsyncSession, settings: Settings, user: User, family_id: uuid.UUID) -> TokenPair:
    access, expires_at = issue_access_token(
        settings, user_id=user.id, username=user.username, kind=user.kind.name, person_id=user.person_id
    )
    refresh, refresh_hash = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=refresh_hash,
            expires_at=utcnow() + dt.timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenPair(user=user, access_token=access, refresh_token=refresh, expires_at=expires_at)


async def login(
    *,
    session: AsyncSession,
    settings: Settings,
    throttle: LoginThrottle,
    username: str,
    password: str,
    client_ip: str,
    request_id: str | None,
) -> TokenPair:
    retry_after = await throttle.retry_after(username, client_ip)
    if retry_after is not None:
        raise AuthError(AuthErrorCode.RATE_LIMITED, "Too many failed logins; try again later.", retry_after=retry_after)
    user = await session.scalar(select(User).where(User.username == username))
    # Unknown user and wrong password take the same path and the same time.
    ok = await verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        await throttle.record_failure(username, client_ip)
        log.info("auth.login_failed", request_id=request_id)
        raise AuthError(AuthErrorCode.INVALID_CREDENTIALS, "Wrong username or password.")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    await throttle.reset_account(username)
    await audit.record(
        session, actor_user_id=user.id, action="login", target_type="User", target_id=user.id, request_id=request_id
    )
    return await _issue(session, settings, user, uuid.uuid4())


async def refresh(*, session: AsyncSession, settings: Settings, refresh_token: str) -> TokenPair:
    """Spend a refresh token for a new pair. Reusing a spent token revokes its whole family."""
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token)).with_for_update()
    )
    now = utcnow()
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        raise AuthError(AuthErrorCode.INVALID_REFRESH_TOKEN, "The refresh token is not valid.")
    if token.used_at is not None:
        await revoke_family(session, token.family_id)
        # The revocation must survive the error the caller is about to see.
        await session.commit()
        log.warning("auth.refresh_token_reused", user_id=token.user_id)
        raise AuthError(AuthErrorCode.INVALID_REFRESH_TOKEN, "The refresh token is not valid.")
    user = await session.get(User, token.user_id)
    if user is None or not user.is_active:
        raise AuthError(AuthErrorCode.ACCOUNT_DISABLED, "The account is disabled.")
    token.used_at = now
    return await _issue(session, settings, user, token.family_id)


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def logout(*, session: AsyncSession, refresh_token: str) -> None:
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
    )
    if token is not None:
        await revoke_family(session, token.family_id)
