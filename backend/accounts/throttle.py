"""Login throttling in Redis: failures per account and per client address, per minute."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    redis: Redis
    per_account: int
    per_ip: int

    def _keys(self, username: str, ip: str) -> tuple[str, str]:
        return f"wuye:login:fail:user:{username.lower()}", f"wuye:login:fail:ip:{ip}"

    async def retry_after(self, username: str, ip: str) -> int | None:
        """Seconds to wait when either counter is at its limit, else ``None``."""
        user_key, ip_key = self._keys(username, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(user_key)
            pipe.ttl(user_key)
            pipe.get(ip_key)
            pipe.ttl(ip_key)
            user_count, user_ttl, ip_count, ip_ttl = await pipe.execute()
        waits = []
        if user_count is not None and int(user_count) >= self.per_account:
            waits.append(max(int(user_ttl), 1))
        if ip_count is not None and int(ip_count) >= self.per_ip:
            waits.append(max(int(ip_ttl), 1))
        return max(waits) if waits else None

    async def record_failure(self, username: str, ip: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self._keys(username, ip):
                # Start the window on the first failure (INCR keeps the TTL). Not EXPIRE NX:
                # that needs Redis 7, and the embedded server is 6.2.
                pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def reset_account(self, username: str) -> None:
        await self.redis.delete(self._keys(username, "")[0])
