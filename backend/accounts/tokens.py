"""Access tokens (short-lived JWT, algorithm pinned) and opaque refresh tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import jwt

from backend.accounts.errors import InvalidToken
from backend.settings import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    username: str
    kind: str
    person_id: int | None
    expires_at: dt.datetime


def issue_access_token(
    settings: Settings, *, user_id: int, username: str, kind: str, person_id: int | None
) -> tuple[str, dt.datetime]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expires_at = now + dt.timedelta(seconds=settings.access_token_ttl_seconds)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": expires_at,
        "jti": secrets.token_hex(8),
        "name": username,
        "kind": kind,
        "pid": person_id,
    }
    return jwt.encode(claims, settings.signing_key, algorithm=ALGORITHM), expires_at


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            settings.signing_key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iss", "aud", "sub", "iat"]},
            leeway=5,
        )
        return AccessClaims(
            user_id=int(claims["sub"]),
            username=str(claims["name"]),
            kind=str(claims["kind"]),
            person_id=int(claims["pid"]) if claims.get("pid") is not None else None,
            expires_at=dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC),
        )
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc


def new_refresh_token() -> tuple[str, str]:
    """A random refresh token and the hash under which it is stored (the token itself is not)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
