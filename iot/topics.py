"""The MQTT topic contract: ``{root}/{estateCode}/{deviceId}/{kind}`` (CONTRACT.md).

``root`` is ``wuye`` unless ``WUYE_MQTT_TOPIC_ROOT`` says otherwise; ``kind`` is one of
``telemetry``, ``event``, ``access``, ``status``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

DEFAULT_TOPIC_ROOT = "wuye"

# Estate codes (``DEMO-A``) and device ids (``DEMO-A-TEMP-01``): letters, digits and
# ``-_.:``; never an MQTT wildcard, a separator or a leading ``$``.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
# A topic root or shared-subscription group: one or more plain levels.
_ROOT = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
_GROUP = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class MessageKind(enum.StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    ACCESS = "access"
    STATUS = "status"


class TopicError(ValueError):
    """A topic that is not ``{root}/{estateCode}/{deviceId}/{kind}``."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"{reason}: {_printable(topic)!r}")
        self.topic = topic
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    estate_code: str
    device_id: str
    kind: MessageKind
    root: str = DEFAULT_TOPIC_ROOT

    def __str__(self) -> str:
        return f"{self.root}/{self.estate_code}/{self.device_id}/{self.kind.value}"


def _printable(topic: str, limit: int = 200) -> str:
    return topic if len(topic) <= limit else topic[:limit] + "…"


def _check_root(root: str) -> str:
    if not _ROOT.fullmatch(root):
        raise ValueError(f"invalid MQTT topic root {root!r}")
    return root


def is_valid_segment(value: str) -> bool:
    """Whether ``value`` can be an estate code or device id in a topic."""
    return bool(_SEGMENT.fullmatch(value))


def parse_topic(topic: str, *, root: str = DEFAULT_TOPIC_ROOT) -> DeviceTopic:
    """Parse ``{root}/{estateCode}/{deviceId}/{kind}``; raise :class:`TopicError`."""
    _check_root(root)
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise TopicError(topic, f"topic is not under {prefix!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 3:
        raise TopicError(topic, "expected {estateCode}/{deviceId}/{kind} after the root")
    estate_code, device_id, kind = parts
    if not _SEGMENT.fullmatch(estate_code):
        raise TopicError(topic, "invalid estate code")
    if not _SEGMENT.fullmatch(device_id):
        raise TopicError(topic, "invalid device id")
    try:
        message_kind = MessageKind(kind)
    except ValueError:
        raise TopicError(topic, "unknown message kind") from None
    return DeviceTopic(estate_code=estate_code, device_id=device_id, kind=message_kind, root=root)


def build_topic(
    estate_code: str,
    device_id: str,
    kind: MessageKind | str,
    *,
    root: str = DEFAULT_TOPIC_ROOT,
) -> str:
    """The topic a device publishes ``kind`` messages on; validates every part."""
    _check_root(root)
    if not _SEGMENT.fullmatch(estate_code):
        raise ValueError(f"invalid estate code {estate_code!r}")
    if not _SEGMENT.fullmatch(device_id):
        raise ValueError(f"invalid device id {device_id!r}")
    return f"{root}/{estate_code}/{device_id}/{MessageKind(kind).value}"


def subscription_filter(*, root: str = DEFAULT_TOPIC_ROOT, shared_group: str | None = None) -> str:
    """``{root}/+/+/+``, as ``$share/{group}/{root}/+/+/+`` when a shared group is set."""
    _check_root(root)
    topic_filter = f"{root}/+/+/+"
    if shared_group:
        if not _GROUP.fullmatch(shared_group):
            raise ValueError(f"invalid MQTT shared-subscription group {shared_group!r}")
        return f"$share/{shared_group}/{topic_filter}"
    return topic_filter
