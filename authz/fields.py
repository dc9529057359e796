"""Masking of personal data for callers without the field permission."""

from __future__ import annotations


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` → ``138****5678``."""
    if not phone:
        return phone
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


def mask_id_number(id_number: str | None) -> str | None:
    """``110101199003071234`` → ``1101**********1234``: the region stays, the birth date never shows."""
    if not id_number:
        return id_number
    if len(id_number) < 8:
        return "*" * len(id_number)
    return f"{id_number[:4]}{'*' * (len(id_number) - 8)}{id_number[-4:]}"


def mask_credential(reference: str | None) -> str | None:
    """``card:A1000001`` → ``card:A100****``: the kind and the first four characters stay."""
    if not reference:
        return reference
    kind, sep, identifier = reference.partition(":")
    if not sep:
        kind, identifier = "", reference
    shown = identifier[:4] if len(identifier) > 4 else ""
    return f"{kind}{sep}{shown}{'*' * (len(identifier) - len(shown))}"
