"""argon2id password hashing, off the event loop and capped at the core count."""

from __future__ import annotations

import asyncio
import os
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.settings import get_settings

# Hashing is deliberately expensive (19 MiB, t=2): never more at once than there are cores.
_SLOTS = asyncio.Semaphore(os.cpu_count() or 1)


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    settings = get_settings()
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def hash_password(password: str) -> str:
    return hasher().hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash of a random password: verifying against it costs the same as a real check, so an
# unknown username answers in the same time as a wrong password.
_DUMMY_HASH: str | None = None


async def verify_password(password_hash: str | None, password: str) -> bool:
    global _DUMMY_HASH
    async with _SLOTS:
        if password_hash is None:
            if _DUMMY_HASH is None:
                _DUMMY_HASH = await asyncio.to_thread(hash_password, os.urandom(16).hex())
            await asyncio.to_thread(_verify, _DUMMY_HASH, password)
            return False
        return await asyncio.to_thread(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return hasher().check_needs_rehash(password_hash)
