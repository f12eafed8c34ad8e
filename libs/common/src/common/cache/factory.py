"""Pick the cache adapter from a URL: memory:// (embedded mode) or redis(s):// (Redis)."""

from __future__ import annotations

from urllib.parse import urlsplit

from common.cache.memory import InMemoryCache
from common.cache.port import Cache
from common.cache.redis import RedisCache


def create_cache(url: str, namespace: str = "") -> Cache:
    """The cache for `url`."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return InMemoryCache(namespace)
    if scheme in ("redis", "rediss"):
        return RedisCache(url, namespace)
    raise ValueError(f"unsupported cache URL scheme {scheme!r} (memory://, redis://, rediss://)")
