"""The cache port: strings, capped lists and hashes with TTLs, all under a key namespace."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Self


class CacheError(Exception):
    """A cache operation failed."""


class WrongTypeError(CacheError):
    """The key holds another kind of value (e.g. incr on a list, or on a non-integer string)."""


def check_ttl(ttl_seconds: float | None) -> None:
    """Refuse a TTL that is not a positive number of seconds."""
    if ttl_seconds is not None and not ttl_seconds > 0:
        raise ValueError("ttl_seconds must be > 0 (or None for no expiry)")


class Cache(ABC):
    """A Redis-shaped cache; losing its content must never lose anything durable."""

    def __init__(self, namespace: str = "") -> None:
        self.namespace = namespace

    def full_key(self, key: str) -> str:
        """The server-side key (namespace-prefixed)."""
        return f"{self.namespace}:{key}" if self.namespace else key

    @abstractmethod
    def with_namespace(self, namespace: str) -> Cache:
        """Another view of the same store (and connections) under another namespace."""

    @abstractmethod
    async def get(self, key: str) -> str | None:
        """The string at `key`, or None."""

    @abstractmethod
    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        """Store a string (replacing any value and TTL); expire it after `ttl_seconds`."""

    @abstractmethod
    async def set_if_absent(self, key: str, value: str, ttl_seconds: float | None = None) -> bool:
        """Store only when `key` does not exist; True when stored."""

    @abstractmethod
    async def delete(self, *keys: str) -> int:
        """Delete keys; the number that existed."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """True when `key` holds a value."""

    @abstractmethod
    async def exists_each(self, *keys: str) -> list[bool]:
        """For each key, whether it holds a value (one round trip)."""

    @abstractmethod
    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        """Add to an integer counter (0 when absent); the TTL is set only when this creates it."""

    @abstractmethod
    async def push_capped(self, key: str, value: str, max_len: int) -> None:
        """Append to a list (newest last) and keep only its last `max_len` items, atomically."""

    @abstractmethod
    async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[str]:
        """Items `start`..`stop` inclusive, negative indexes from the end (Redis LRANGE)."""

    @abstractmethod
    async def hset(self, key: str, mapping: Mapping[str, str]) -> None:
        """Set fields of a hash (other fields and the TTL stay)."""

    @abstractmethod
    async def hgetall(self, key: str) -> dict[str, str]:
        """Every field of a hash ({} when absent)."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the cache answers (readiness probes)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections (a view from `with_namespace` leaves them to its origin)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
