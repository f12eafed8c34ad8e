"""In-process cache for the embedded mode and tests: Redis semantics, TTLs on a given clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from common.cache.port import Cache, WrongTypeError, check_ttl

_SWEEP_EVERY_WRITES = 1024

Value = str | list[str] | dict[str, str]


@dataclass(slots=True)
class _Entry:
    value: Value
    expires_at: float | None = None


class InMemoryCache(Cache):
    """A dict with expiry; every operation is atomic because none of them awaits."""

    def __init__(self, namespace: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(namespace)
        self._clock = clock
        self._data: dict[str, _Entry] = {}
        self._writes = 0

    def with_namespace(self, namespace: str) -> InMemoryCache:
        """A view of this store under another namespace."""
        view = InMemoryCache(namespace, self._clock)
        view._data = self._data
        return view

    def _deadline(self, ttl_seconds: float | None) -> float | None:
        check_ttl(ttl_seconds)
        return None if ttl_seconds is None else self._clock() + ttl_seconds

    def _entry(self, key: str) -> _Entry | None:
        full = self.full_key(key)
        entry = self._data.get(full)
        if entry is not None and entry.expires_at is not None and self._clock() >= entry.expires_at:
            del self._data[full]
            return None
        return entry

    def _store(self, key: str, entry: _Entry) -> None:
        self._data[self.full_key(key)] = entry
        self._writes += 1
        # Keys nobody reads again (rate-limit windows) would otherwise pile up forever.
        if self._writes % _SWEEP_EVERY_WRITES == 0:
            now = self._clock()
            expired = [k for k, e in self._data.items() if e.expires_at is not None and now >= e.expires_at]
            for k in expired:
                del self._data[k]

    @staticmethod
    def _str(entry: _Entry | None) -> str | None:
        if entry is None:
            return None
        if isinstance(entry.value, str):
            return entry.value
        raise WrongTypeError("operation against a key holding a list or a hash")

    @staticmethod
    def _list(entry: _Entry | None) -> list[str] | None:
        if entry is None:
            return None
        if isinstance(entry.value, list):
            return entry.value
        raise WrongTypeError("operation against a key holding a string or a hash")

    @staticmethod
    def _dict(entry: _Entry | None) -> dict[str, str] | None:
        if entry is None:
            return None
        if isinstance(entry.value, dict):
            return entry.value
        raise WrongTypeError("operation against a key holding a string or a list")

    async def get(self, key: str) -> str | None:
        """The string at `key`, or None."""
        return self._str(self._entry(key))

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        """Store a string, replacing any value and TTL."""
        self._store(key, _Entry(value, self._deadline(ttl_seconds)))

    async def set_if_absent(self, key: str, value: str, ttl_seconds: float | None = None) -> bool:
        """Store only when absent."""
        deadline = self._deadline(ttl_seconds)
        if self._entry(key) is not None:
            return False
        self._store(key, _Entry(value, deadline))
        return True

    async def delete(self, *keys: str) -> int:
        """Delete keys; the number that existed."""
        removed = 0
        for key in keys:
            if self._entry(key) is not None:
                del self._data[self.full_key(key)]
                removed += 1
        return removed

    async def exists(self, key: str) -> bool:
        """True when `key` holds a value."""
        return self._entry(key) is not None

    async def exists_each(self, *keys: str) -> list[bool]:
        """For each key, whether it holds a value."""
        return [self._entry(key) is not None for key in keys]

    async def incr(self, key: str, amount: int = 1, ttl_seconds: float | None = None) -> int:
        """Add to a counter; the TTL applies only when this call creates it."""
        deadline = self._deadline(ttl_seconds)
        entry = self._entry(key)
        current = self._str(entry)
        if current is None:
            entry = _Entry("0", deadline)
            current = "0"
        try:
            value = int(current) + amount
        except ValueError:
            raise WrongTypeError("value is not an integer") from None
        assert entry is not None
        entry.value = str(value)
        self._store(key, entry)
        return value

    async def push_capped(self, key: str, value: str, max_len: int) -> None:
        """Append and keep the last `max_len` items."""
        if max_len < 1:
            raise ValueError("max_len must be >= 1")
        entry = self._entry(key)
        items = self._list(entry)
        if entry is None or items is None:
            self._store(key, _Entry([value]))
            return
        items.append(value)
        del items[:-max_len]
        self._store(key, entry)

    async def list_range(self, key: str, start: int = 0, stop: int = -1) -> list[str]:
        """Items `start`..`stop` inclusive, as Redis LRANGE counts them."""
        items = self._list(self._entry(key)) or []
        size = len(items)
        first = max(size + start, 0) if start < 0 else start
        last = min(size + stop if stop < 0 else stop, size - 1)
        if first > last:
            return []
        return list(items[first : last + 1])

    async def hset(self, key: str, mapping: Mapping[str, str]) -> None:
        """Set fields; other fields and the TTL stay."""
        if not mapping:
            return
        entry = self._entry(key)
        fields = self._dict(entry)
        if entry is None or fields is None:
            self._store(key, _Entry(dict(mapping)))
            return
        fields.update(mapping)
        self._store(key, entry)

    async def hgetall(self, key: str) -> dict[str, str]:
        """Every field of a hash."""
        return dict(self._dict(self._entry(key)) or {})

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def close(self) -> None:
        """Nothing to release."""
