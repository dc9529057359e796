"""The topic contract: ``wuye/{estateCode}/{deviceId}/{telemetry|event|access|status}``."""

from __future__ import annotations

import pytest

from iot.topics import (
    DeviceTopic,
    MessageKind,
    TopicError,
    build_topic,
    parse_topic,
    subscription_filter,
)


@pytest.mark.parametrize("kind", list(MessageKind))
def test_parse_every_kind(kind: MessageKind) -> None:
    parsed = parse_topic(f"wuye/DEMO-A/DEMO-A-TEMP-01/{kind.value}")
    assert parsed == DeviceTopic(estate_code="DEMO-A", device_id="DEMO-A-TEMP-01", kind=kind)
    assert str(parsed) == f"wuye/DEMO-A/DEMO-A-TEMP-01/{kind.value}"


def test_build_and_parse_round_trip() -> None:
    topic = build_topic("DEMO-C", "DEMO-C-LEAK-01", "event")
    assert topic == "wuye/DEMO-C/DEMO-C-LEAK-01/event"
    assert parse_topic(topic).kind is MessageKind.EVENT


def test_custom_root() -> None:
    topic = build_topic("E1", "D1", MessageKind.STATUS, root="acme/wuye")
    assert topic == "acme/wuye/E1/D1/status"
    parsed = parse_topic(topic, root="acme/wuye")
    assert (parsed.estate_code, parsed.device_id, parsed.root) == ("E1", "D1", "acme/wuye")
    with pytest.raises(TopicError):
        parse_topic(topic)  # not under the default root


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("other/DEMO-A/D1/telemetry", "not under"),
        ("wuye", "not under"),
        ("wuyeX/DEMO-A/D1/telemetry", "not under"),
        ("wuye/DEMO-A/telemetry", "expected"),
        ("wuye/DEMO-A/D1/telemetry/extra", "expected"),
        ("wuye//D1/telemetry", "estate code"),
        ("wuye/DEMO-A//telemetry", "device id"),
        ("wuye/+/D1/telemetry", "estate code"),
        ("wuye/DEMO-A/#/telemetry", "device id"),
        ("wuye/$SYS/D1/telemetry", "estate code"),
        ("wuye/DEMO A/D1/telemetry", "estate code"),
        ("wuye/DEMO-A/D1/alarm", "unknown message kind"),
        ("wuye/DEMO-A/D1/Telemetry", "unknown message kind"),
        ("wuye/DEMO-A/D1/", "unknown message kind"),
    ],
)
def test_parse_rejects(topic: str, reason: str) -> None:
    with pytest.raises(TopicError) as info:
        parse_topic(topic)
    assert reason in info.value.reason
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("estate", "device", "kind"),
    [("DEMO A", "D1", "event"), ("E", "D/1", "event"), ("E", "+", "event"), ("E", "D1", "alarm")],
)
def test_build_rejects(estate: str, device: str, kind: str) -> None:
    with pytest.raises(ValueError, match=r"invalid|not a valid"):
        build_topic(estate, device, kind)


def test_subscription_filter() -> None:
    assert subscription_filter() == "wuye/+/+/+"
    assert subscription_filter(shared_group=None) == "wuye/+/+/+"
    assert subscription_filter(shared_group="") == "wuye/+/+/+"
    assert subscription_filter(shared_group="wuye-api") == "$share/wuye-api/wuye/+/+/+"
    assert subscription_filter(root="x/y", shared_group="g") == "$share/g/x/y/+/+/+"


@pytest.mark.parametrize("group", ["a/b", "+", "#", "a b"])
def test_subscription_filter_rejects_bad_group(group: str) -> None:
    with pytest.raises(ValueError, match="shared-subscription group"):
        subscription_filter(shared_group=group)


@pytest.mark.parametrize("root", ["", "wuye/", "/wuye", "wu+ye", "wuye/#"])
def test_rejects_bad_root(root: str) -> None:
    with pytest.raises(ValueError, match="topic root"):
        subscription_filter(root=root)
