"""Access control (门禁) operations: visitor passes, credentials, access points.

Callers (the GraphQL mutations) check who may act; these functions check what is valid and
write. Each raises :class:`AccessError` with a code the API returns as a user error.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.access.errors import AccessError, AccessErrorCode
from backend.access.models import (
    AccessPoint,
    AccessPointKind,
    Credential,
    CredentialKind,
    VisitorPass,
    VisitorPassKind,
)
from backend.db import local_timezone, utcnow
from backend.property.models import Unit

MAX_PASS_WINDOW = dt.timedelta(days=7)
# A pass's code: 10 characters of an alphabet without look-alikes (0/O, 1/I/L), from the OS's
# CSPRNG: 31^10 ≈ 8·10^14 codes, not guessable at a gate.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
_PHONE = re.compile(r"^1[3-9]\d{9}$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_\-.]{1,128}$")


def new_pass_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _check_visitor(visitor_name: str, visitor_phone: str | None) -> tuple[str, str | None]:
    name = visitor_name.strip()
    if not 1 <= len(name) <= 64:
        raise AccessError(AccessErrorCode.REQUIRED, "The visitor's name, 1 to 64 characters.", "visitorName")
    phone = (visitor_phone or "").strip() or None
    if phone is not None and not _PHONE.fullmatch(phone):
        raise AccessError(AccessErrorCode.INVALID_PHONE, "An 11-digit mainland mobile number.", "visitorPhone")
    return name, phone


async def _insert_pass(session: AsyncSession, **values: object) -> VisitorPass:
    """Insert with a fresh random code; a (vanishingly rare) collision draws again."""
    for _ in range(5):
        visitor_pass = VisitorPass(code=new_pass_code(), **values)
        try:
            async with session.begin_nested():
                session.add(visitor_pass)
                await session.flush()
        except IntegrityError:
            continue
        return visitor_pass
    raise AccessError(AccessErrorCode.DUPLICATE, "Could not draw a unique code; try again.", "code")


async def issue_visitor_pass(
    session: AsyncSession,
    *,
    unit: Unit,
    visitor_name: str,
    visitor_phone: str | None,
    valid_from: dt.datetime,
    valid_until: dt.datetime,
    issued_by_id: int,
    now: dt.datetime | None = None,
) -> VisitorPass:
    """An owner's invitation: a window of at most 7 days that has not ended yet."""
    now = now or utcnow()
    name, phone = _check_visitor(visitor_name, visitor_phone)
    if valid_from.tzinfo is None or valid_until.tzinfo is None:
        raise AccessError(AccessErrorCode.INVALID_WINDOW, "Times need a time zone.", "validFrom")
    if valid_until <= valid_from:
        raise AccessError(AccessErrorCode.INVALID_WINDOW, "The pass must end after it starts.", "validUntil")
    if valid_until - valid_from > MAX_PASS_WINDOW:
        raise AccessError(AccessErrorCode.INVALID_WINDOW, "A pass is valid for 7 days at most.", "validUntil")
    if valid_until <= now or valid_from < now - dt.timedelta(minutes=5):
        raise AccessError(AccessErrorCode.INVALID_WINDOW, "The window lies in the past.", "validFrom")
    return await _insert_pass(
        session,
        estate_id=unit.estate_id,
        unit_id=unit.id,
        kind=VisitorPassKind.INVITED,
        visitor_name=name,
        visitor_phone=phone,
        valid_from=valid_from,
        valid_until=valid_until,
        issued_by_id=issued_by_id,
    )


async def register_walk_in(
    session: AsyncSession,
    *,
    unit: Unit,
    visitor_name: str,
    visitor_phone: str | None,
    issued_by_id: int,
    now: dt.datetime | None = None,
) -> VisitorPass:
    """A guard registers a visitor at the gate: valid from now to the end of the local day."""
    now = now or utcnow()
    name, phone = _check_visitor(visitor_name, visitor_phone)
    local = now.astimezone(local_timezone())
    end_of_day = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=local_timezone())
    return await _insert_pass(
        session,
        estate_id=unit.estate_id,
        unit_id=unit.id,
        kind=VisitorPassKind.WALK_IN,
        visitor_name=name,
        visitor_phone=phone,
        valid_from=now,
        valid_until=end_of_day,
        issued_by_id=issued_by_id,
    )


async def revoke_visitor_pass(session: AsyncSession, pass_id: int, *, now: dt.datetime | None = None) -> VisitorPass:
    await session.execute(select(VisitorPass.id).where(VisitorPass.id == pass_id).with_for_update())
    visitor_pass = await session.scalar(
        select(VisitorPass).where(VisitorPass.id == pass_id).execution_options(populate_existing=True)
    )
    if visitor_pass is None:
        raise AccessError(AccessErrorCode.NOT_FOUND, "No such pass.", "passId")
    if visitor_pass.revoked_at is not None:
        raise AccessError(AccessErrorCode.ALREADY_REVOKED, "The pass is revoked already.", "passId")
    visitor_pass.revoked_at = now or utcnow()
    await session.flush()
    return visitor_pass


async def issue_credential(
    session: AsyncSession,
    *,
    person_id: int,
    kind: CredentialKind,
    identifier: str,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
) -> Credential:
    identifier = identifier.strip()
    if not _IDENTIFIER.fullmatch(identifier):
        raise AccessError(AccessErrorCode.INVALID_INPUT, "Letters, digits, '_', '-', '.'; 1 to 128.", "identifier")
    valid_from = valid_from or utcnow()
    if valid_until is not None and valid_until <= valid_from:
        raise AccessError(AccessErrorCode.INVALID_WINDOW, "The credential must end after it starts.", "validUntil")
    taken = await session.scalar(
        select(Credential.id).where(Credential.kind == kind, Credential.identifier == identifier)
    )
    if taken is not None:
        raise AccessError(AccessErrorCode.DUPLICATE, "This credential is issued already.", "identifier")
    credential = Credential(
        person_id=person_id, kind=kind, identifier=identifier, valid_from=valid_from, valid_until=valid_until
    )
    session.add(credential)
    await session.flush()
    return credential


async def revoke_credential(session: AsyncSession, credential_id: int, *, now: dt.datetime | None = None) -> Credential:
    await session.execute(select(Credential.id).where(Credential.id == credential_id).with_for_update())
    credential = await session.scalar(
        select(Credential).where(Credential.id == credential_id).execution_options(populate_existing=True)
    )
    if credential is None:
        raise AccessError(AccessErrorCode.NOT_FOUND, "No such credential.", "credentialId")
    if credential.revoked_at is not None:
        raise AccessError(AccessErrorCode.ALREADY_REVOKED, "The credential is revoked already.", "credentialId")
    credential.revoked_at = now or utcnow()
    await session.flush()
    return credential


async def create_access_point(
    session: AsyncSession,
    *,
    estate_id: int,
    name: str,
    kind: AccessPointKind,
    device_id: str | None,
    building_id: int | None = None,
    location: str = "",
) -> AccessPoint:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise AccessError(AccessErrorCode.REQUIRED, "A name of 1 to 100 characters.", "name")
    device_id = (device_id or "").strip() or None
    if device_id is not None:
        bound = await session.scalar(select(AccessPoint.id).where(AccessPoint.device_id == device_id))
        if bound is not None:
            raise AccessError(AccessErrorCode.DUPLICATE, "The device is bound to another access point.", "deviceId")
    point = AccessPoint(
        estate_id=estate_id, building_id=building_id, name=name, kind=kind, device_id=device_id, location=location
    )
    session.add(point)
    await session.flush()
    return point
