"""The MQTT ingest spine: one subscriber that validates device messages and hands them to
handlers registered per message kind.

Delivery guarantees (DESIGN.md §5, §9):

- QoS 1 on a persistent session (``clean_session=False``; on MQTT 5 also a
  ``session_expiry_interval``), so messages published while the subscriber is away are
  delivered when it returns.
- ``optimistic_acknowledgement=False``: the PUBACK is sent only after the handler has
  run, so a message whose handler was still running when the connection or process
  died is redelivered — by brokers that keep in-flight messages in the session
  (Mosquitto, EMQX; the embedded amqtt drops them). One window remains: a message with a
  msgId whose handler was cut short by a crash keeps its Redis claim, so its
  redelivery counts as a duplicate (``stop()`` and handler failures release the claim).
- MQTT 3.1.1 by default, MQTT 5 only with a shared-subscription group; the version is
  always passed explicitly (gmqtt would otherwise try 5 and fall back after ~6 s).
- A repeated ``msgId`` from the same device is handled once, through an injected
  ``seen(device_id, msg_id)`` (Redis ``SET NX EX`` in the app, see
  :class:`RedisMessageDeduplicator`).
- Messages of one device are handled in arrival order (a ``raised`` is never overtaken
  by its ``cleared``); different devices are handled concurrently up to ``concurrency``.
- Nothing a device sends can stop the loop: bad topics and payloads are counted in
  ``invalid`` and logged with the topic and the error only (no payload values); handler
  exceptions (and handlers exceeding ``handler_timeout``) are counted in
  ``handler_errors`` and logged, the message is acknowledged, and its msgId released so
  a retry by the device is handled.
- Reconnection with exponential back-off and jitter is done here, not by gmqtt: each
  connection gets a fresh gmqtt client, so no stale client can reconnect behind our back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

import structlog
from gmqtt import Client as _GmqttClient
from gmqtt.mqtt.constants import MQTTv50, MQTTv311, PubAckReasonCode

from iot.payloads import MAX_PAYLOAD_BYTES, Payload, PayloadError, parse_payload
from iot.topics import (
    DEFAULT_TOPIC_ROOT,
    DeviceTopic,
    MessageKind,
    TopicError,
    parse_topic,
    subscription_filter,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from backend.settings import Settings

__all__ = [
    "DeviceMessage",
    "ForgetFn",
    "Handler",
    "InvalidFn",
    "InvalidMessage",
    "MemoryMessageDeduplicator",
    "MqttEndpoint",
    "MqttSubscriber",
    "RedisMessageDeduplicator",
    "SeenFn",
    "parse_mqtt_url",
]

log = structlog.get_logger("iot.subscriber")

T = TypeVar("T")

Handler = Callable[["DeviceMessage"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Queued:
    """A handler that keeps one device's messages in order itself: ``submit(message)`` must
    enqueue the message *synchronously* (before returning) and return what completes once it
    is handled and committed. The subscriber calls it while holding the device's lock and
    awaits the result after releasing it, so the next messages of the same device are
    submitted behind it at once and a batching handler can take many of them per
    transaction. The PUBACK is still sent only when the awaitable completes."""

    submit: Callable[[DeviceMessage], Awaitable[None]]


AnyHandler = Handler | Queued
SeenFn = Callable[[str, str], Awaitable[bool]]
"""``seen(device_id, msg_id)``: record the pair, return True if it was already recorded."""
ForgetFn = Callable[[str, str], Awaitable[None]]
"""``forget(device_id, msg_id)``: drop a record, so a retry of a failed message is handled."""
InvalidFn = Callable[["InvalidMessage"], Awaitable[None]]
"""``on_invalid(message)``: keep a message that failed validation (the dead-letter table)."""

_ACK_OK: Final = int(PubAckReasonCode.SUCCESS)
_ACK_PAYLOAD_INVALID: Final = int(PubAckReasonCode.PAYLOAD_FORMAT_INVALID)
_ACK_HANDLER_FAILED: Final = int(PubAckReasonCode.IMPLEMENTATION_SPECIFIC_ERROR)

MQTT_V311: Final[int] = int(MQTTv311)
MQTT_V5: Final[int] = int(MQTTv50)


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """A validated device message, as handlers receive it."""

    topic: DeviceTopic
    payload: Payload
    retained: bool = False
    redelivered: bool = False  # the MQTT DUP flag: the broker sent it before
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def kind(self) -> MessageKind:
        return self.topic.kind

    @property
    def estate_code(self) -> str:
        return self.topic.estate_code

    @property
    def device_id(self) -> str:
        return self.topic.device_id

    @property
    def msg_id(self) -> str | None:
        return self.payload.msg_id


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A message that failed validation, as the ``on_invalid`` hook receives it.

    ``reason``: ``BAD_TOPIC``, ``MALFORMED`` (not JSON), ``INVALID_PAYLOAD`` (JSON off the
    contract) or ``TOO_LARGE``; ``detail`` names the problems without the payload's values.
    """

    topic: str
    device_id: str | None
    payload: bytes
    reason: str
    detail: str


_INVALID_REASONS: Final = {"too_large": "TOO_LARGE", "malformed": "MALFORMED", "invalid": "INVALID_PAYLOAD"}


# --------------------------------------------------------------------------- dedup


class RedisMessageDeduplicator:
    """``seen`` / ``forget`` backed by Redis ``SET key 1 NX EX ttl``.

    Pass ``seen=dedup.seen, forget=dedup.forget`` (or ``seen=dedup``) to the subscriber.
    Shared by every replica, so a repeat delivered to another process is caught too.
    """

    def __init__(
        self,
        redis: Redis,
        ttl_seconds: int = 86400,
        *,
        key_prefix: str = "wuye:iot:msg",
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._redis = redis
        self._ttl = ttl_seconds
        self._prefix = key_prefix

    def key(self, device_id: str, msg_id: str) -> str:
        return f"{self._prefix}:{device_id}:{msg_id}"

    async def seen(self, device_id: str, msg_id: str) -> bool:
        created = await self._redis.set(self.key(device_id, msg_id), b"1", nx=True, ex=self._ttl)
        return not created

    async def forget(self, device_id: str, msg_id: str) -> None:
        await self._redis.delete(self.key(device_id, msg_id))

    async def __call__(self, device_id: str, msg_id: str) -> bool:
        return await self.seen(device_id, msg_id)


class MemoryMessageDeduplicator:
    """In-process ``seen`` / ``forget`` (tests, single process without Redis)."""

    def __init__(self, ttl_seconds: float = 86400, *, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._expiry: dict[tuple[str, str], float] = {}

    async def seen(self, device_id: str, msg_id: str) -> bool:
        now = time.monotonic()
        key = (device_id, msg_id)
        expires = self._expiry.get(key)
        if expires is not None and expires > now:
            return True
        if len(self._expiry) >= self._max:
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            while len(self._expiry) >= self._max:  # still full: drop the oldest
                del self._expiry[next(iter(self._expiry))]
        self._expiry[key] = now + self._ttl
        return False

    async def forget(self, device_id: str, msg_id: str) -> None:
        self._expiry.pop((device_id, msg_id), None)

    async def __call__(self, device_id: str, msg_id: str) -> bool:
        return await self.seen(device_id, msg_id)


# --------------------------------------------------------------------------- connection


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int
    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    ssl: bool = False


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """``mqtt://user:pass@host:port`` (``mqtts://`` for TLS) → :class:`MqttEndpoint`."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("mqtt", "tcp"):
        tls, default_port = False, 1883
    elif scheme in ("mqtts", "ssl", "tls"):
        tls, default_port = True, 8883
    else:
        raise ValueError("MQTT URL must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError("MQTT URL has no host")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError("MQTT URL has an invalid port") from None
    return MqttEndpoint(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ssl=tls,
    )


class _DropGmqttReconnectNoise(logging.Filter):
    """We disable gmqtt's own reconnect; its 'max attempts' error is then just noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "max number of failed connection attempts" not in str(record.msg)


_gmqtt_logger = logging.getLogger("iot.gmqtt")
_gmqtt_logger.addFilter(_DropGmqttReconnectNoise())


class _Backoff:
    def __init__(self, minimum: float, maximum: float) -> None:
        self._min = minimum
        self._max = maximum
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        delay = min(self._max, self._min * float(2**self._attempt))
        self._attempt = min(self._attempt + 1, 32)
        return delay * random.uniform(0.8, 1.2)


# --------------------------------------------------------------------------- subscriber


class MqttSubscriber:
    """Subscribe to ``{root}/+/+/+`` and dispatch validated messages by kind.

    ``url``: ``mqtt://user:password@host:port`` (``mqtts://`` for TLS).
    ``client_id``: the persistent session's id. With ``shared_group`` (→ MQTT 5 and
    ``$share/{group}/{root}/+/+/+``) the host name is appended unless
    ``unique_client_id=False``, so replicas never share a session.
    ``handlers``: ``{MessageKind: async handler or Queued}``; or :meth:`register` / :meth:`on`.
    ``seen`` / ``forget``: msgId deduplication (see :class:`RedisMessageDeduplicator`);
    without ``seen`` every delivery is handled.
    ``session_expiry_interval`` (MQTT 5 only; 3.1.1 sessions never expire): how long the
    broker keeps queueing for us while we are away.
    ``concurrency``: how many devices are handled at once (one device's messages are
    always handled one after another, in order).
    ``handler_timeout``: a handler running longer is cancelled and counted as failed,
    so one stuck call cannot stall its devices forever (``None``: no limit). Not applied to
    :class:`Queued` handlers, which answer for their own time.
    ``on_invalid``: called with every message that fails validation (before it is
    acknowledged); its failures are logged and never stop the loop.
    ``max_payload_bytes``: larger payloads are refused unparsed (``TOO_LARGE``).
    ``drain_timeout``: how long :meth:`stop` lets running handlers finish.

    Counters for ``/metrics``: ``received``, ``processed``, ``invalid``, ``duplicates``,
    ``handler_errors``, ``unhandled`` (no handler for the kind), ``connects``.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str = "wuye-api",
        shared_group: str | None = None,
        topic_root: str = DEFAULT_TOPIC_ROOT,
        handlers: Mapping[MessageKind, AnyHandler] | None = None,
        seen: SeenFn | None = None,
        forget: ForgetFn | None = None,
        version: int | None = None,
        unique_client_id: bool | None = None,
        session_expiry_interval: int = 600,
        keepalive: int = 30,
        concurrency: int = 16,
        connect_timeout: float = 10.0,
        reconnect_min_delay: float = 1.0,
        reconnect_max_delay: float = 30.0,
        drain_timeout: float = 5.0,
        handler_timeout: float | None = 60.0,
        on_invalid: InvalidFn | None = None,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._endpoint = parse_mqtt_url(url)
        self._shared_group = shared_group or None
        self._root = topic_root
        self._filter = subscription_filter(root=topic_root, shared_group=self._shared_group)
        self._version = version if version is not None else (MQTT_V5 if self._shared_group else MQTT_V311)
        if self._version not in (MQTT_V311, MQTT_V5):
            raise ValueError("version must be MQTTv311 (4) or MQTTv50 (5)")
        # Replicas sharing a group must not share a client id (the broker would make
        # them take each other's session over, endlessly), but each one's id must be
        # stable across its restarts: Mosquitto keeps handing a disconnected member its
        # share of the group's messages, so an id that changed on restart would leave
        # an orphan session swallowing messages until it expires. Hence the host name
        # (one subscriber process per host; otherwise set a distinct client id each).
        if unique_client_id is None:
            unique_client_id = self._shared_group is not None
        if unique_client_id:
            client_id = f"{client_id}-{socket.gethostname()}"
        self._client_id = client_id[:128]
        self._handlers: dict[MessageKind, AnyHandler] = {}
        for kind, handler in (handlers or {}).items():
            self.register(kind, handler)
        self._seen = seen
        self._forget = forget
        self._on_invalid = on_invalid
        self._max_payload_bytes = max_payload_bytes
        self._session_expiry = session_expiry_interval
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._backoff = _Backoff(reconnect_min_delay, reconnect_max_delay)
        self._reconnect_max_delay = reconnect_max_delay
        self._drain_timeout = drain_timeout
        self._handler_timeout = handler_timeout
        self._stripes = [asyncio.Lock() for _ in range(concurrency)]

        self._client: Any = None  # the live gmqtt.Client
        self._ready = asyncio.Event()
        self._session_present = False
        self._lost = asyncio.Event()
        self._suback: asyncio.Future[bool] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[Any]] = set()
        self._ever_subscribed = False

        self.received = 0
        self.processed = 0
        self.invalid = 0
        self.duplicates = 0
        self.handler_errors = 0
        self.unhandled = 0
        self.connects = 0

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> MqttSubscriber:
        """Build from ``WUYE_MQTT_URL``, ``_CLIENT_ID``, ``_SHARED_GROUP``, ``_TOPIC_ROOT``."""
        if not settings.mqtt_url:
            raise ValueError("WUYE_MQTT_URL is not configured")
        kwargs.setdefault("client_id", settings.mqtt_client_id)
        kwargs.setdefault("shared_group", settings.mqtt_shared_group)
        kwargs.setdefault("topic_root", settings.mqtt_topic_root)
        return cls(settings.mqtt_url, **kwargs)

    # ------------------------------------------------------------------ configuration

    def register(self, kind: MessageKind | str, handler: AnyHandler) -> None:
        """Route messages of ``kind`` to ``handler`` (one handler per kind)."""
        kind = MessageKind(kind)
        if kind in self._handlers:
            raise ValueError(f"a handler for {kind.value!r} messages is already registered")
        self._handlers[kind] = handler

    def on(self, kind: MessageKind | str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`register`."""

        def decorate(handler: Handler) -> Handler:
            self.register(kind, handler)
            return handler

        return decorate

    @property
    def _subscribed(self) -> bool:
        return self._ready.is_set()

    @_subscribed.setter
    def _subscribed(self, value: bool) -> None:
        if value:
            self._ready.set()
        else:
            self._ready.clear()

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def topic_filter(self) -> str:
        return self._filter

    @property
    def protocol_version(self) -> int:
        return self._version

    @property
    def connected(self) -> bool:
        """Connected to the broker with the subscription acknowledged (for /readyz)."""
        client = self._client
        if client is None or not self._subscribed:
            return False
        try:
            return bool(client.is_connected)
        except AttributeError:  # no connection object yet
            return False

    def metrics(self) -> dict[str, int]:
        return {
            "received": self.received,
            "processed": self.processed,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "handler_errors": self.handler_errors,
            "unhandled": self.unhandled,
            "connects": self.connects,
            "connected": int(self.connected),
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start connecting in the background (returns at once; see :meth:`wait_connected`).

        A broker that is down at start is retried with back-off; ``connected`` tells
        when messages flow.
        """
        if self._supervisor is not None:
            raise RuntimeError("subscriber already started")
        self._stopping = False
        self._supervisor = asyncio.create_task(self._supervise(), name="mqtt-subscriber")

    async def wait_connected(self) -> None:
        """Wait until :attr:`connected` (bound it with ``asyncio.timeout``)."""
        while not self.connected:
            if self._ready.is_set():  # subscribed, the socket just closing: re-check soon
                await asyncio.sleep(0.05)
            else:
                await self._ready.wait()

    async def stop(self) -> None:
        """Finish in-flight messages (up to ``drain_timeout``), then disconnect.

        The session survives the disconnect: messages still unacknowledged at that
        point, and those published while we are away, are delivered on the next start.
        """
        self._stopping = True
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=self._drain_timeout)
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        client, self._client = self._client, None
        self._subscribed = False
        if client is not None:
            await self._close_client(client)
        leftovers = set(self._inflight)
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)

    async def __aenter__(self) -> MqttSubscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _new_client(self) -> Any:
        properties: dict[str, Any] = {}
        if self._version == MQTT_V5:
            properties["session_expiry_interval"] = self._session_expiry
            properties["receive_maximum"] = max(len(self._stripes) * 4, 16)
        client = _GmqttClient(
            self._client_id,
            clean_session=False,
            optimistic_acknowledgement=False,
            logger=_gmqtt_logger,
            **properties,
        )
        # Reconnecting is ours (fresh client, back-off); gmqtt's own never fires:
        # its check is ``failed_connections <= reconnect_retries``, false for -2.
        client.set_config({"reconnect_retries": -2, "reconnect_delay": 0})
        if self._endpoint.username is not None:
            client.set_auth_credentials(self._endpoint.username, self._endpoint.password)
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        return client

    async def _close_client(self, client: Any) -> None:
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(client.disconnect(), timeout=5)

    async def _supervise(self) -> None:
        first = True
        while not self._stopping:
            if not first:
                delay = self._backoff.next_delay()
                log.info("mqtt_reconnect_wait", delay=round(delay, 2))
                await asyncio.sleep(delay)
            first = False
            client = self._new_client()
            self._lost.clear()
            self._session_present = False
            try:
                await asyncio.wait_for(self._connect(client), timeout=self._connect_timeout)
            except asyncio.CancelledError:
                await self._close_client(client)
                raise
            except Exception as exc:
                log.warning(
                    "mqtt_connect_failed",
                    host=self._endpoint.host,
                    port=self._endpoint.port,
                    error=f"{type(exc).__name__}: {exc}",
                )
                self._subscribed = False
                self._client = None
                await self._close_client(client)
                continue
            connected_at = time.monotonic()
            self.connects += 1
            log.info(
                "mqtt_connected",
                host=self._endpoint.host,
                port=self._endpoint.port,
                client_id=self._client_id,
                version="5" if self._version == MQTT_V5 else "3.1.1",
                topic_filter=self._filter,
                session_present=self._session_present,
            )
            await self._lost.wait()  # (cancelled by stop(), which disconnects itself)
            self._subscribed = False
            self._client = None
            await self._close_client(client)
            if time.monotonic() - connected_at > self._reconnect_max_delay:
                self._backoff.reset()
            log.warning("mqtt_connection_lost", host=self._endpoint.host, port=self._endpoint.port)

    async def _connect(self, client: Any) -> None:
        self._client = client
        self._subscribed = False
        await self._unless_lost(
            client.connect(
                self._endpoint.host,
                self._endpoint.port,
                ssl=self._endpoint.ssl,
                keepalive=self._keepalive,
                version=self._version,
            )
        )
        # Subscribe on a new session, and once per process in any case (the filter
        # may have changed since the stored session was made).
        if not self._session_present or not self._ever_subscribed:
            suback: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._suback = suback
            client.subscribe(self._filter, qos=1)
            if not await self._unless_lost(suback):
                raise ConnectionError(f"broker refused the subscription to {self._filter!r}")
        self._ever_subscribed = True
        self._subscribed = True

    async def _unless_lost(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, giving up as soon as the connection drops (gmqtt would
        otherwise wait for a CONNACK or SUBACK that can no longer come)."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task.cancelled():
            raise ConnectionError("connection to the MQTT broker lost")
        return task.result()

    # ------------------------------------------------------------------ gmqtt callbacks

    def _on_connect(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        self._session_present = bool(flags)

    def _on_subscribe(self, client: Any, mid: int, qos: tuple[int, ...], properties: Any) -> None:
        if client is not self._client:
            return
        granted = bool(qos) and all(q < 128 for q in qos)
        if not granted:
            log.error("mqtt_subscribe_refused", topic_filter=self._filter, codes=list(qos))
        if self._suback is not None and not self._suback.done():
            self._suback.set_result(granted)

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        if client is self._client:
            self._subscribed = False
            self._lost.set()

    async def _on_message(self, client: Any, topic: str | bytes, payload: bytes, qos: int, properties: Any) -> int:
        """gmqtt's callback: its return value is the PUBACK reason code, sent once this
        coroutine has finished (``optimistic_acknowledgement=False``)."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        props = properties if isinstance(properties, dict) else {}
        try:
            return await self.handle(
                topic,
                payload,
                retained=bool(props.get("retain")),
                redelivered=bool(props.get("dup")),
            )
        except asyncio.CancelledError:
            # Only stop() cancels us, after the connection is closed: this reason
            # code goes nowhere, and the broker redelivers the message next session.
            return _ACK_HANDLER_FAILED

    # ------------------------------------------------------------------ the pipeline

    async def handle(
        self,
        topic: str | bytes,
        payload: bytes | str,
        *,
        retained: bool = False,
        redelivered: bool = False,
    ) -> int:
        """Validate, deduplicate and dispatch one message; return the PUBACK code.

        Never raises for anything a device can send.
        """
        self.received += 1
        device_topic: DeviceTopic | None = None
        try:
            if not isinstance(topic, str):
                raise TopicError(topic.decode("utf-8", "replace"), "topic is not valid UTF-8")
            device_topic = parse_topic(topic, root=self._root)
            parsed = parse_payload(device_topic.kind, payload, max_bytes=self._max_payload_bytes)
        except (TopicError, PayloadError) as exc:
            self.invalid += 1
            error = exc.reason if isinstance(exc, TopicError) else str(exc)
            log.warning("mqtt_message_invalid", topic=_log_topic(topic), error=error)
            if self._on_invalid is not None:
                reason = "BAD_TOPIC" if isinstance(exc, TopicError) else _INVALID_REASONS[exc.reason]
                await self._report_invalid(
                    InvalidMessage(
                        topic=_log_topic(topic, limit=255),
                        device_id=device_topic.device_id if device_topic is not None else None,
                        payload=payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload),
                        reason=reason,
                        detail=error,
                    )
                )
            return _ACK_PAYLOAD_INVALID
        message = DeviceMessage(topic=device_topic, payload=parsed, retained=retained, redelivered=redelivered)
        # No await before taking the device's lock: tasks reach it in arrival order
        # and asyncio locks are FIFO, so one device's messages keep their order.
        lock = self._stripes[zlib.crc32(device_topic.device_id.encode()) % len(self._stripes)]
        await lock.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                lock.release()

        try:
            return await self._dispatch(message, release)
        finally:
            release()

    async def _dispatch(self, message: DeviceMessage, release: Callable[[], None]) -> int:
        """Run the message's handler; ``release`` lets go of the device's lock (a
        :class:`Queued` handler's message is in its queue, in order, once submitted)."""
        handler = self._handlers.get(message.kind)
        if handler is None:
            self.unhandled += 1
            return _ACK_OK
        msg_id = message.msg_id
        claimed = False
        if msg_id is not None and self._seen is not None:
            try:
                if await self._seen(message.device_id, msg_id):
                    self.duplicates += 1
                    log.debug("mqtt_message_duplicate", topic=str(message.topic))
                    return _ACK_OK
                claimed = True
            except Exception as exc:  # dedup store down: at-least-once beats losing it
                log.warning(
                    "mqtt_dedup_unavailable",
                    topic=str(message.topic),
                    error=f"{type(exc).__name__}: {exc}",
                )
        try:
            if isinstance(handler, Queued):
                # No time limit: a queued handler answers for its own time (the ingest waits
                # out a database outage rather than acknowledge what it could not store).
                done = handler.submit(message)
                release()
                await done
            else:
                async with asyncio.timeout(self._handler_timeout):
                    await handler(message)
        except asyncio.CancelledError:
            if claimed:
                await self._release(message.device_id, msg_id)
            raise
        except Exception as exc:
            self.handler_errors += 1
            log.error(
                "mqtt_handler_failed",
                topic=str(message.topic),
                kind=message.kind.value,
                error=type(exc).__name__,
                exc_info=True,
            )
            if claimed:
                await self._release(message.device_id, msg_id)
            return _ACK_HANDLER_FAILED
        self.processed += 1
        return _ACK_OK

    async def _report_invalid(self, message: InvalidMessage) -> None:
        assert self._on_invalid is not None
        try:
            async with asyncio.timeout(self._handler_timeout):
                await self._on_invalid(message)
        except Exception as exc:
            log.error("mqtt_dead_letter_failed", topic=_log_topic(message.topic), error=type(exc).__name__)

    async def _release(self, device_id: str, msg_id: str | None) -> None:
        if self._forget is None or msg_id is None:
            return
        try:
            await asyncio.wait_for(self._forget(device_id, msg_id), timeout=2)
        except Exception as exc:
            log.warning("mqtt_dedup_release_failed", device_id=device_id, error=type(exc).__name__)


def _log_topic(topic: str | bytes, limit: int = 200) -> str:
    text = topic if isinstance(topic, str) else topic.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"
