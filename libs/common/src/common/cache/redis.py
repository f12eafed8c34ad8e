"""Redis cache on redis.asyncio: one connection pool, MULTI where two commands must act as one."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from common.cache.port import Cache, CacheError, WrongTypeError, check_ttl

log = logging.getLogger(__name__)


def _ms(ttl_seconds: float) -> int:
    return max(1, round(ttl_seconds * 1000))


def _text(value: bytes | str) -> str:
    # The client decodes responses already; bytes only appear in redis-py's type hints.
    return value.decode() if isinstance(value, bytes) else value


@contextmanager
def _errors() -> Iterator[None]:
    """Redis errors as cache errors, so callers need not import redis."""
    try:
        yield
    except ResponseError as exc:
        text = str(exc)
        if "WRONGTYPE" in text or "not an integer" in text:
            raise WrongTypeError(text) from exc
        raise CacheError(text) from exc
    except RedisError as exc:
        raise CacheError(str(exc)) from exc


class RedisCache(Cache):
    """The production cache; keys are `namespace:key`."""

    def __init__(
        self,
        url: str,
        namespace: str = "",
        *,
        max_connections: int = 200,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 2.0,
    ) -> None:
        super().__init__(namespace)
        self._owns_client = True
        # A blocking pool makes a burst wait for a free connection instead of failing with "Too many
        # connections"; one attempt and no backoff so a dead Redis is reported in bounded time.
        pool = BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
        )
        self._client: Redis = Redis(connection_pool=pool)

    def with_namespace(self, namespace: str) -> RedisCache:
        """A view sharing this cache's connection pool under another namespace."""
        view = RedisCache.__new__(RedisCache)
        Cache.__init__(view, namespace)
        view._client = self._client
        view._owns_client = False
        return view

    @property
    def client(self) -> Redis:
        """The raw client (e.g. for the gateway's rate limiter); its keys are NOT namespaced."""
        return self._client

    async def get(self, key: str) -> str | None:
        """The string at `key`, or None."""
        with _errors():
            value = await self._client.get(self.full_key(key))
        return None if value is None else _text(value)

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        """SET with an optional PX expiry."""
        check_ttl(ttl_seconds)
        px = None if ttl_seconds is None else _ms(ttl_seconds)
        with _errors():
            await self._client.set(self.full_key(key), value, px=px)

    async def set_if_absent(self, key: str, value: str, ttl_seconds: float | None = None) -> bool:
        """SET NX with an optional PX expiry."""
        check_ttl(ttl_seconds)
        px = None if ttl_seconds is None else _ms(ttl_seconds)
        with _errors():
            stored = await self._client.set(self.full_key(key), value, px=px, nx=True)
        return bool(stored)

    async def delete(self, *keys: str) -> int:
        """DEL; the number that existed."""
        if not keys:
            return 0
        with _errors():
            return int(await self._client.delete(*(self.full_key(k) for k in keys)))

    async def exists(self, key: str) -> bool:
        """EXISTS."""
        with _errors():
            return int(await self._client.exists(self.full_key(key))) > 0

    async def exists_each(self, *keys: str) -> list[bool]:
        """EXISTS per key, pipelined (EXISTS of several keys only counts them)."""
        if not keys:
            return []
        with _errors():
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.exists(self.full_key(key))
                results = await pipe.execute()
        return [int(result) > 0 for result in results]

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        """INCRBY; with a TTL, SET NX PX 0 first in the same MULTI so only creation sets it."""
        check_ttl(ttl_seconds)
        full = self.full_key(key)
        with _errors():
            if ttl_seconds is None:
                return int(await self._client.incrby(full, amount))
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(full, 0, px=_ms(ttl_seconds), nx=True)
                pipe.incrby(full, amount)
                results = await pipe.execute()
        return int(results[-1])

    async def push_capped(self, key: str, value: str, max_len: int) -> None:
        """RPUSH then LTRIM to the last `max_len`, in one MULTI."""
        if max_len < 1:
            raise ValueError("max_len must be >= 1")
        full = self.full_key(key)
        with _errors():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.rpush(full, value)
                pipe.ltrim(full, -max_len, -1)
                await pipe.execute()

    async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[str]:
        """LRANGE (inclusive stop)."""
        with _errors():
            items = await self._client.lrange(self.full_key(key), start, stop)
        return [_text(item) for item in items]

    async def hset(self, key: str, mapping: Mapping[str, str]) -> None:
        """HSET of every field."""
        if not mapping:
            return
        fields: dict[FieldT, EncodableT] = {k: v for k, v in mapping.items()}
        with _errors():
            await self._client.hset(self.full_key(key), mapping=fields)

    async def hgetall(self, key: str) -> dict[str, str]:
        """HGETALL."""
        with _errors():
            fields = await self._client.hgetall(self.full_key(key))
        return {_text(k): _text(v) for k, v in fields.items()}

    async def ping(self) -> bool:
        """PING; False instead of an error when Redis is unreachable."""
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            log.warning("redis ping failed", exc_info=True)
            return False

    async def close(self) -> None:
        """Close the client and its connection pool (unless this is a view)."""
        if self._owns_client:
            await self._client.aclose()
