"""The MQTT payload contract (CONTRACT.md, "MQTT topics"): one model per message kind.

Validation is strict: JSON types are not coerced (``"72.5"`` is not a number, ``"false"``
not a boolean), ``ts`` is an ISO-8601 date-time with ``Z`` or an offset (normalised to
UTC), enumerations are the lower-case wire values. Unknown extra fields are ignored so
device vendors can add their own. Every payload may carry ``msgId``.

:func:`parse_payload` never lets a pydantic or JSON error escape: it raises
:class:`PayloadError`, whose message names the failing fields but never echoes the
payload's values (they may be personal data, e.g. an access credential).
"""

from __future__ import annotations

import enum
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, cast

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from iot.topics import MessageKind

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_METRICS: Final = 100

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}(:?\d{2})?)$")


def _iso_datetime_only(value: object) -> object:
    """Accept only ISO-8601 strings with an offset (or aware datetimes from Python)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.fullmatch(value):
        raise ValueError("must be an ISO-8601 date-time with 'Z' or an offset")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError("must be a valid ISO-8601 date-time") from None


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_datetime_only),
    AfterValidator(_to_utc),
]
MsgId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
MetricName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")]
MetricValue = Annotated[float, Field(allow_inf_nan=False)]


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


class AlarmState(enum.StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class AccessResult(enum.StrEnum):
    GRANTED = "granted"
    DENIED = "denied"


class _Payload(BaseModel):
    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="ignore",
        str_strip_whitespace=False,
    )

    # Wire name ``msgId``; ``msg_id`` is accepted too (Python callers).
    msg_id: MsgId | None = Field(
        default=None, validation_alias=AliasChoices("msgId", "msg_id"), serialization_alias="msgId"
    )

    def to_json(self) -> str:
        """The wire form: contract field names, ``ts`` in UTC with ``Z``; an absent
        ``msgId`` (or status ``ts``) is left out, ``reason``/``message`` stay ``null``."""
        omit = {name for name in ("msg_id", "ts") if getattr(self, name, None) is None}
        return self.model_dump_json(by_alias=True, exclude=omit)


class TelemetryPayload(_Payload):
    """``{"ts": "2026-11-22T08:00:00Z", "metrics": {"temperature": 72.5}}``"""

    ts: Timestamp
    metrics: Annotated[dict[MetricName, MetricValue], Field(min_length=1, max_length=MAX_METRICS)]


class EventPayload(_Payload):
    """``{"ts", "type": "smoke", "severity": "critical", "state": "raised", "message"}``"""

    ts: Timestamp
    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]  # alarms.type is 48 long
    severity: Severity
    state: AlarmState
    message: Annotated[str, Field(max_length=1000)] | None = None


class AccessPayload(_Payload):
    """``{"ts", "credential": "card:A1000001", "direction": "in", "result": "granted",
    "reason": null}``"""

    ts: Timestamp
    credential: Annotated[str, Field(min_length=1, max_length=128)]
    direction: Direction
    result: AccessResult
    reason: Annotated[str, Field(max_length=500)] | None = None


class StatusPayload(_Payload):
    """``{"online": false}`` — retained, and the device's last will. ``ts`` optional."""

    online: bool
    ts: Timestamp | None = None


Payload = TelemetryPayload | EventPayload | AccessPayload | StatusPayload

PAYLOAD_MODELS: Final[dict[MessageKind, type[_Payload]]] = {
    MessageKind.TELEMETRY: TelemetryPayload,
    MessageKind.EVENT: EventPayload,
    MessageKind.ACCESS: AccessPayload,
    MessageKind.STATUS: StatusPayload,
}


class PayloadError(ValueError):
    """A payload that does not satisfy the contract for its kind.

    ``problems`` are ``"field: reason"`` strings without the offending values.
    """

    def __init__(
        self,
        kind: MessageKind,
        problems: list[str],
        *,
        reason: Literal["too_large", "malformed", "invalid"] = "invalid",
    ) -> None:
        self.kind = kind
        self.problems = tuple(problems)
        self.reason = reason
        super().__init__(f"invalid {kind.value} payload: " + "; ".join(problems))


def _summarise(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(part) for part in item["loc"]) or "payload"
        problems.append(f"{loc}: {item['msg']}")
    return problems[:10]


def parse_payload(kind: MessageKind, raw: bytes | bytearray | str, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Payload:
    """Validate a raw MQTT payload for ``kind``; raise :class:`PayloadError` (``reason``
    ``too_large``, ``malformed`` for what is not JSON at all, else ``invalid``)."""
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        raise PayloadError(kind, [f"payload: larger than {max_bytes} bytes"], reason="too_large")
    if size == 0:
        raise PayloadError(kind, ["payload: empty"], reason="malformed")
    model = PAYLOAD_MODELS[kind]
    try:
        payload = model.model_validate_json(raw)
    except ValidationError as exc:
        malformed = any(item["type"] == "json_invalid" for item in exc.errors(include_input=False))
        raise PayloadError(kind, _summarise(exc), reason="malformed" if malformed else "invalid") from None
    return cast(Payload, payload)


def payload_from_dict(kind: MessageKind, data: dict[str, Any]) -> Payload:
    """Validate already-decoded JSON data (as :func:`parse_payload`, same strictness)."""
    return parse_payload(kind, json.dumps(data, default=str))
