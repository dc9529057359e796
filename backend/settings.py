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

    # Where text messages go. `local` records them in sms_messages without sending
    # (development, demo, tests); a gateway implementation adds its own name here.
    sms_channel: Literal["local"] = "local"
    # Dunning (催缴): the first reminder goes this many days before a bill's due date.
    dunning_days_before_due: int = Field(default=3, ge=1, le=30)

    @model_validator(mode="after")
    def _production_needs_secret(self) -> Settings:
        if self.env is Environment.PRODUCTION and not self.secret_key:
            raise ValueError("WUYE_SECRET_KEY is required when WUYE_ENV=production")
        return self

    @property
    def production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def signing_key(self) -> str:
        return self.secret_key or _DEV_SECRET


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
