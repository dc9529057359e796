"""Error codes of the accounts domain."""

from __future__ import annotations

import enum


class AuthErrorCode(enum.Enum):
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"
    ACCOUNT_DISABLED = "ACCOUNT_DISABLED"


class AuthError(Exception):
    def __init__(self, code: AuthErrorCode, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class InvalidToken(Exception):
    """A bearer token that is malformed, forged, expired or meant for someone else."""
