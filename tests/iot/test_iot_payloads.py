"""The payload contract (CONTRACT.md "MQTT topics"): valid examples and every kind of invalid."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from iot.payloads import (
    MAX_PAYLOAD_BYTES,
    AccessPayload,
    AccessResult,
    AlarmState,
    Direction,
    EventPayload,
    PayloadError,
    Severity,
    StatusPayload,
    TelemetryPayload,
    parse_payload,
    payload_from_dict,
)
from iot.topics import MessageKind

TS = "2026-11-22T08:00:00Z"
VALID: dict[MessageKind, dict[str, Any]] = {
    MessageKind.TELEMETRY: {"ts": TS, "metrics": {"temperature": 72.5}},
    MessageKind.EVENT: {
        "ts": TS,
        "type": "smoke",
        "severity": "critical",
        "state": "raised",
        "message": "Smoke in the pump room",
    },
    MessageKind.ACCESS: {
        "ts": TS,
        "credential": "card:A1000001",
        "direction": "in",
        "result": "granted",
        "reason": None,
    },
    MessageKind.STATUS: {"online": False},
}


def _with(kind: MessageKind, **changes: Any) -> dict[str, Any]:
    data = dict(VALID[kind])
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


_DROP = object()


def test_contract_examples_verbatim() -> None:
    telemetry = parse_payload(
        MessageKind.TELEMETRY, b'{"ts": "2026-11-22T08:00:00Z", "metrics": {"temperature": 72.5}}'
    )
    assert isinstance(telemetry, TelemetryPayload)
    assert telemetry.ts == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert telemetry.metrics == {"temperature": 72.5}
    assert telemetry.msg_id is None

    event = parse_payload(MessageKind.EVENT, json.dumps(VALID[MessageKind.EVENT]))
    assert isinstance(event, EventPayload)
    assert (event.type, event.severity, event.state) == ("smoke", Severity.CRITICAL, AlarmState.RAISED)

    access = parse_payload(MessageKind.ACCESS, json.dumps(VALID[MessageKind.ACCESS]).encode())
    assert isinstance(access, AccessPayload)
    assert (access.credential, access.direction, access.result, access.reason) == (
        "card:A1000001",
        Direction.IN,
        AccessResult.GRANTED,
        None,
    )

    status = parse_payload(MessageKind.STATUS, b'{"online": false}')
    assert isinstance(status, StatusPayload)
    assert status.online is False
    assert status.ts is None


@pytest.mark.parametrize("kind", list(MessageKind))
def test_msg_id_on_every_kind(kind: MessageKind) -> None:
    payload = payload_from_dict(kind, _with(kind, msgId="0b8f6c1e-1d2a-4f8e-9a51-3f9a1c2b7d10"))
    assert payload.msg_id == "0b8f6c1e-1d2a-4f8e-9a51-3f9a1c2b7d10"
    assert '"msgId":"0b8f6c1e-1d2a-4f8e-9a51-3f9a1c2b7d10"' in payload.to_json()


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-22T08:00:00Z", datetime(2026, 11, 22, 8, 0, tzinfo=UTC)),
        ("2026-11-22T16:00:00+08:00", datetime(2026, 11, 22, 8, 0, tzinfo=UTC)),
        ("2026-11-22T16:00:00.250+0800", datetime(2026, 11, 22, 8, 0, 0, 250000, tzinfo=UTC)),
        ("2026-11-22T03:00:00-05:00", datetime(2026, 11, 22, 8, 0, tzinfo=UTC)),
        ("2026-11-22 08:00:00z", datetime(2026, 11, 22, 8, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_with_offset_are_normalised_to_utc(ts: str, expected: datetime) -> None:
    payload = payload_from_dict(MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, ts=ts))
    assert payload.ts == expected
    assert payload.ts is not None
    assert payload.ts.utcoffset() == timedelta(0)


def test_unknown_fields_are_ignored() -> None:
    payload = payload_from_dict(MessageKind.EVENT, _with(MessageKind.EVENT, vendor="acme", firmware=3))
    assert isinstance(payload, EventPayload)


@pytest.mark.parametrize("severity", ["critical", "major", "minor", "warning"])
@pytest.mark.parametrize("state", ["raised", "cleared"])
def test_every_severity_and_state(severity: str, state: str) -> None:
    payload = payload_from_dict(MessageKind.EVENT, _with(MessageKind.EVENT, severity=severity, state=state))
    assert isinstance(payload, EventPayload)
    assert (payload.severity.value, payload.state.value) == (severity, state)


@pytest.mark.parametrize(
    ("direction", "result", "reason"),
    [("in", "granted", None), ("out", "granted", None), ("in", "denied", "unknown card"), ("out", "denied", None)],
)
def test_every_direction_and_result(direction: str, result: str, reason: str | None) -> None:
    payload = payload_from_dict(
        MessageKind.ACCESS, _with(MessageKind.ACCESS, direction=direction, result=result, reason=reason)
    )
    assert isinstance(payload, AccessPayload)
    assert (payload.direction.value, payload.result.value, payload.reason) == (direction, result, reason)


def test_telemetry_accepts_ints_and_several_metrics() -> None:
    payload = payload_from_dict(
        MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics={"temperature": 21, "humidity": 40.5})
    )
    assert isinstance(payload, TelemetryPayload)
    assert payload.metrics == {"temperature": 21.0, "humidity": 40.5}


INVALID: list[tuple[str, MessageKind, dict[str, Any], str]] = [
    # timestamps
    ("ts missing", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, ts=_DROP), "ts"),
    ("ts without offset", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, ts="2026-11-22T08:00:00"), "ts"),
    ("ts a date only", MessageKind.EVENT, _with(MessageKind.EVENT, ts="2026-11-22"), "ts"),
    ("ts epoch number", MessageKind.ACCESS, _with(MessageKind.ACCESS, ts=1795334400), "ts"),
    ("ts epoch string", MessageKind.ACCESS, _with(MessageKind.ACCESS, ts="1795334400"), "ts"),
    ("ts impossible date", MessageKind.EVENT, _with(MessageKind.EVENT, ts="2026-02-30T08:00:00Z"), "ts"),
    ("ts free text", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, ts="yesterday"), "ts"),
    ("status ts without offset", MessageKind.STATUS, {"online": True, "ts": "2026-11-22T08:00:00"}, "ts"),
    # telemetry
    ("metrics missing", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics=_DROP), "metrics"),
    ("metrics empty", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics={}), "metrics"),
    ("metrics a list", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics=[72.5]), "metrics"),
    ("metric a string", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics={"t": "72.5"}), "metrics.t"),
    ("metric a boolean", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics={"t": True}), "metrics.t"),
    ("metric null", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics={"t": None}), "metrics.t"),
    ("metric nested", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics={"t": {"v": 1}}), "metrics.t"),
    ("metric name empty", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, metrics={"": 1}), "metrics"),
    # event
    ("severity upper case", MessageKind.EVENT, _with(MessageKind.EVENT, severity="CRITICAL"), "severity"),
    ("severity unknown", MessageKind.EVENT, _with(MessageKind.EVENT, severity="fatal"), "severity"),
    ("severity missing", MessageKind.EVENT, _with(MessageKind.EVENT, severity=_DROP), "severity"),
    ("state unknown", MessageKind.EVENT, _with(MessageKind.EVENT, state="open"), "state"),
    ("state missing", MessageKind.EVENT, _with(MessageKind.EVENT, state=_DROP), "state"),
    ("type missing", MessageKind.EVENT, _with(MessageKind.EVENT, type=_DROP), "type"),
    ("type not snake case", MessageKind.EVENT, _with(MessageKind.EVENT, type="Smoke Alarm"), "type"),
    ("message a number", MessageKind.EVENT, _with(MessageKind.EVENT, message=42), "message"),
    # access
    ("direction unknown", MessageKind.ACCESS, _with(MessageKind.ACCESS, direction="inside"), "direction"),
    ("result unknown", MessageKind.ACCESS, _with(MessageKind.ACCESS, result="ok"), "result"),
    ("credential missing", MessageKind.ACCESS, _with(MessageKind.ACCESS, credential=_DROP), "credential"),
    ("credential empty", MessageKind.ACCESS, _with(MessageKind.ACCESS, credential=""), "credential"),
    ("credential a number", MessageKind.ACCESS, _with(MessageKind.ACCESS, credential=1000001), "credential"),
    # status
    ("online a string", MessageKind.STATUS, {"online": "false"}, "online"),
    ("online a number", MessageKind.STATUS, {"online": 0}, "online"),
    ("online missing", MessageKind.STATUS, {}, "online"),
    # msgId
    ("msgId empty", MessageKind.TELEMETRY, _with(MessageKind.TELEMETRY, msgId=""), "msgId"),
    ("msgId a number", MessageKind.STATUS, {"online": True, "msgId": 7}, "msgId"),
    ("msgId too long", MessageKind.EVENT, _with(MessageKind.EVENT, msgId="x" * 129), "msgId"),
    ("msgId with spaces", MessageKind.ACCESS, _with(MessageKind.ACCESS, msgId="a b"), "msgId"),
]


@pytest.mark.parametrize(("kind", "data", "field"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_field(kind: MessageKind, data: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_payload(kind, json.dumps(data))
    error = info.value
    assert error.kind is kind
    assert any(problem.startswith(field) for problem in error.problems), error.problems
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"{",
        b"[]",
        b"null",
        b'"online"',
        b"72.5",
        b"\xff\xfe\x00",
        b'{"online": NaN}',
    ],
    ids=["empty", "text", "truncated", "array", "null", "string", "number", "not utf-8", "nan"],
)
@pytest.mark.parametrize("kind", list(MessageKind))
def test_not_a_json_object(kind: MessageKind, raw: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_payload(kind, raw)


def test_non_finite_metric_rejected() -> None:
    with pytest.raises(PayloadError, match=r"metrics\.t"):
        parse_payload(MessageKind.TELEMETRY, b'{"ts": "2026-11-22T08:00:00Z", "metrics": {"t": Infinity}}')
    with pytest.raises(PayloadError, match=r"metrics\.t"):
        parse_payload(MessageKind.TELEMETRY, b'{"ts": "2026-11-22T08:00:00Z", "metrics": {"t": 1e400}}')


def test_oversized_payload_rejected_before_parsing() -> None:
    raw = b'{"online": true, "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    with pytest.raises(PayloadError) as info:
        parse_payload(MessageKind.STATUS, raw)
    assert info.value.reason == "too_large"


def test_errors_never_echo_payload_values() -> None:
    secret_card = "card:SECRET-9876543"
    data = _with(MessageKind.ACCESS, credential=secret_card, direction="sideways", ts="not-a-time-SECRET")
    with pytest.raises(PayloadError) as info:
        parse_payload(MessageKind.ACCESS, json.dumps(data))
    text = str(info.value) + " ".join(info.value.problems)
    assert "SECRET" not in text
    assert "sideways" not in text
    assert "direction" in text
    assert "ts" in text


def test_to_json_round_trips_and_matches_the_wire_names() -> None:
    event = EventPayload(
        ts=datetime(2026, 11, 22, 16, 0, tzinfo=timezone(timedelta(hours=8))),
        type="water_leak",
        severity=Severity.MAJOR,
        state=AlarmState.CLEARED,
        msg_id="m-1",
    )
    wire = json.loads(event.to_json())
    assert wire == {
        "msgId": "m-1",
        "ts": "2026-11-22T08:00:00Z",
        "type": "water_leak",
        "severity": "major",
        "state": "cleared",
        "message": None,
    }
    assert parse_payload(MessageKind.EVENT, event.to_json()) == event
    assert json.loads(StatusPayload(online=False).to_json()) == {"online": False}
