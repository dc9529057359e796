"""Shared pieces of the asset tests: a fresh estate (a "site") and GraphQL documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.assets.models import Asset, MaintenancePlan
from backend.property.models import Building, Estate


@dataclass
class Site:
    estate: Estate
    buildings: list[Building]
    assets: dict[str, Asset] = field(default_factory=dict)
    plans: list[MaintenancePlan] = field(default_factory=list)


ASSET_FIELDS = """
  id code tag type name model manufacturer location installDate warrantyUntil status parameters deviceId retiredAt
  estate { code } building { code } parent { code } children { code }
"""

CREATE_ASSET = f"""
mutation($input: CreateAssetInput!) {{
  createAsset(input: $input) {{ asset {{ {ASSET_FIELDS} }} errors {{ field code message }} }}
}}
"""

UPDATE_ASSET = f"""
mutation($input: UpdateAssetInput!) {{
  updateAsset(input: $input) {{ asset {{ {ASSET_FIELDS} }} errors {{ field code message }} }}
}}
"""

RETIRE_ASSET = """
mutation($input: RetireAssetInput!) {
  retireAsset(input: $input) { asset { id status retiredAt } errors { field code message } }
}
"""

ASSETS = """
query($filter: AssetFilter, $first: Int) {
  assets(first: $first, filter: $filter) { totalCount edges { node { id code } } }
}
"""

ASSET_BY_TAG = """
query($tag: String!) { assetByTag(tag: $tag) { id code } }
"""

PLAN_FIELDS = """
  id name assetType intervalDays intervalMonths cron leadDays checklist nextDueDate lastCompletedAt active
  estate { code } asset { code } assignee { username }
"""

CREATE_PLAN = f"""
mutation($input: CreateMaintenancePlanInput!) {{
  createMaintenancePlan(input: $input) {{ maintenancePlan {{ {PLAN_FIELDS} }} errors {{ field code message }} }}
}}
"""

UPDATE_PLAN = f"""
mutation($input: UpdateMaintenancePlanInput!) {{
  updateMaintenancePlan(input: $input) {{ maintenancePlan {{ {PLAN_FIELDS} }} errors {{ field code message }} }}
}}
"""

DEACTIVATE_PLAN = """
mutation($input: DeactivateMaintenancePlanInput!) {
  deactivateMaintenancePlan(input: $input) { maintenancePlan { id active } errors { field code message } }
}
"""

PLANS = """
query($filter: MaintenancePlanFilter) {
  maintenancePlans(first: 100, filter: $filter) { totalCount edges { node { id name } } }
}
"""

MAINTENANCE_DUE = """
query($estateId: ID!, $withinDays: Int!) {
  maintenanceDue(estateId: $estateId, withinDays: $withinDays) {
    plan { id name } dueDate overdue daysUntilDue openTicketId openTicketNumber openTicketStatus
  }
}
"""


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["errors"]]
