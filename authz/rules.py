"""Policy lines: parsing policy.csv, validating values before they are stored or loaded.

pycasbin splits stored values on commas and brackets and silently ignores an effect it does
not know (``Deny``), so every value is checked here and a bad one is refused loudly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

POLICY_CSV = Path(__file__).with_name("policy.csv")
MODEL_CONF = Path(__file__).with_name("model.conf")

ROLES = (
    "admin",
    "manager",
    "customer_service",
    "finance",
    "technician",
    "security_guard",
    "supervisor",
    "resident",
)
EFFECTS = ("allow", "deny")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.*:/\-]+$")
_ARITY = {"p": 5, "g": 3}


class PolicyError(ValueError):
    """A policy line that must not be stored or loaded."""


@dataclass(frozen=True, slots=True)
class PolicyLine:
    ptype: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        validate(self.ptype, self.values)


def validate(ptype: str, values: tuple[str, ...] | list[str]) -> None:
    if ptype not in _ARITY:
        raise PolicyError(f"unknown policy type {ptype!r}")
    if len(values) != _ARITY[ptype]:
        raise PolicyError(f"{ptype} line needs {_ARITY[ptype]} values, got {len(values)}")
    for value in values:
        if not _SAFE_VALUE.fullmatch(value):
            raise PolicyError(f"policy value {value!r} has characters Casbin cannot store safely")
    if ptype == "p" and values[4] not in EFFECTS:
        raise PolicyError(f"effect must be exactly 'allow' or 'deny', not {values[4]!r}")
    if ptype == "g" and not (values[2].startswith("/") and values[2].endswith("/")):
        raise PolicyError(f"role domain must be an org-unit path, not {values[2]!r}")


def read_policy_csv(path: Path = POLICY_CSV) -> list[PolicyLine]:
    lines: list[PolicyLine] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        ptype, *values = (part.strip() for part in text.split(","))
        try:
            lines.append(PolicyLine(ptype, tuple(values)))
        except PolicyError as exc:
            raise PolicyError(f"{path.name}:{number}: {exc}") from exc
    return lines


def subject(user_id: int) -> str:
    return f"u:{user_id}"
