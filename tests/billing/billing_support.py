"""Shared shapes of the billing tests."""

from __future__ import annotations

from dataclasses import dataclass

from backend.billing.models import FeeItem
from backend.property.models import Estate, Unit


@dataclass
class Ledger:
    estate: Estate
    units: list[Unit]
    items: dict[str, FeeItem]
