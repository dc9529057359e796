"""Every knob of wuye, read once from ``WUYE_*`` environment variables."""

from __future__ import annotations

import enum
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


# Generated once per process when no secret is configured outside production, so a
# development token never validates against another installation.
_DEV_SECRET = secrets.token_urlsafe(48)

# The sandbox payment provider's shared secret outside production. Fixed (not per process)
# because the API, the worker and `wuye sandbox-pay` must all agree on it; production refuses it.
DEV_SANDBOX_SECRET = "wuye-sandbox-development-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WUYE_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    secret_key: str | None = Field(default=None, repr=False)

    # External servers. Empty means: `wuye demo` starts embedded ones.
    database_url: str | None = None
    redis_url: str | None = None
    mqtt_url: str | None = None

    # Where `wuye demo` keeps embedded server data and writes demo.json.
    data_dir: Path = Path(".wuye")

    host: str = "127.0.0.1"
    port: int = 8000
    allowed_origins: list[str] = Field(default_factory=list)

    jwt_issuer: str = "wuye"
    jwt_audience: str = "wuye-api"
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=900)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)

    login_failures_per_account_per_minute: int = 5
    login_failures_per_ip_per_minute: int = 20
    argon2_memory_kib: int = Field(default=19 * 1024, ge=19 * 1024)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1, le=1)

    max_query_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2000
    max_body_bytes: int = 256 * 1024
    max_upload_bytes: int = 5 * 1024 * 1024

    # The company's local time zone: what "today" means for occupancies, due dates, reports.
    timezone: str = "Asia/Shanghai"
    # How many missed days the late-fee job makes up after the worker was down.
    late_fee_catch_up_days: int = Field(default=7, ge=1, le=31)
    db_pool_size: int = 10
    requests_per_minute: int = 600
    log_level: str = "INFO"

    mqtt_client_id: str = "wuye-api"
    # MQTT 5 shared-subscription group; empty keeps MQTT 3.1.1 and a plain subscription.
    mqtt_shared_group: str | None = None
    mqtt_topic_root: str = "wuye"
    # Device payloads larger than this are refused unparsed and kept as TOO_LARGE dead letters.
    mqtt_max_payload_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    # The ingest's parallel transactions (one device's messages always go to the same one,
    # in order) and the most messages one transaction takes (backend/devices/ingest.py).
    ingest_lanes: int = Field(default=2, ge=1, le=64)
    ingest_max_batch: int = Field(default=500, ge=1, le=5000)
    # A device silent for longer than this raises a MINOR device_offline alarm (the job runs
    # every minute); a device's own offline_after_seconds overrides it.
    device_offline_after_seconds: int = Field(default=600, ge=60)

    # Where text messages go. `local` records them in sms_messages without sending
    # (development, demo, tests); a gateway implementation adds its own name here.
    sms_channel: Literal["local"] = "local"
    # Dunning (催缴): the first reminder goes this many days before a bill's due date.
    dunning_days_before_due: int = Field(default=3, ge=1, le=30)
    # Work orders past a deadline: the office manager is told this long after it, the branch
    # manager twice this long after it (the assignee at the deadline itself).
    ticket_escalation_interval_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # An alarm nobody acknowledged is escalated to the branch manager this long after it was
    # first seen, and a reminder follows every such interval until it is acknowledged.
    alarm_escalation_minutes: int = Field(default=5, ge=1, le=24 * 60)
    # Where clients and payment providers reach this API (pay URLs, callback URLs).
    # Empty: http://{host}:{port}.
    public_url: str | None = None
    # The provider of ONLINE payments: "sandbox" (the only one so far) or "none". Empty:
    # the sandbox outside production, none in production.
    payment_provider: str | None = None
    payment_order_ttl_seconds: int = Field(default=1800, ge=60, le=86400)
    # Reconciliation asks the provider about PENDING payments at least this old.
    payment_reconcile_after_seconds: int = Field(default=300, ge=0)
    sandbox_merchant_id: str = "WUYE-SANDBOX"
    sandbox_secret: str | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _production_needs_secret(self) -> Settings:
        if self.env is Environment.PRODUCTION and not self.secret_key:
            raise ValueError("WUYE_SECRET_KEY is required when WUYE_ENV=production")
        if self.payment_provider not in (None, "", "none", "sandbox"):
            raise ValueError(f"WUYE_PAYMENT_PROVIDER: unknown provider {self.payment_provider!r}")
        if (
            self.production
            and self.online_provider == "sandbox"
            and self.sandbox_secret in (None, "", DEV_SANDBOX_SECRET)
        ):
            raise ValueError("WUYE_SANDBOX_SECRET is required (not the development one) for the sandbox in production")
        return self

    @property
    def production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def signing_key(self) -> str:
        return self.secret_key or _DEV_SECRET

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def online_provider(self) -> str | None:
        """The provider new ONLINE payments go through, or None when online payment is off."""
        if self.payment_provider in ("none", ""):
            return None
        if self.payment_provider is None:
            return None if self.production else "sandbox"
        return self.payment_provider

    @property
    def sandbox_signing_secret(self) -> str:
        return self.sandbox_secret or DEV_SANDBOX_SECRET


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
