"""What a worker process holds: database, Redis, the events bus, the SMS channel and the
payment providers."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.billing.providers import ProviderRegistry, build_providers
from backend.db import make_engine, make_sessionmaker
from backend.events import EventBus, RedisEventBus
from backend.notifications.sms import SmsChannel, build_sms_channel
from backend.settings import Settings


@dataclass(slots=True)
class WorkerRuntime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    bus: EventBus
    sms: SmsChannel
    payment_providers: ProviderRegistry

    @classmethod
    def build(cls, settings: Settings) -> WorkerRuntime:
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError("WUYE_DATABASE_URL and WUYE_REDIS_URL are required.")
        engine = make_engine(settings.database_url, pool_size=5)
        redis = Redis.from_url(settings.redis_url)
        return cls(
            settings,
            engine,
            make_sessionmaker(engine),
            redis,
            RedisEventBus(redis),
            build_sms_channel(settings),
            build_providers(settings, redis),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()
