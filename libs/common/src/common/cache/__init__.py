"""The cache port and its adapters (Redis, in-process)."""

from common.cache.factory import create_cache
from common.cache.memory import InMemoryCache
from common.cache.port import Cache, CacheError, WrongTypeError
from common.cache.redis import RedisCache

__all__ = ["Cache", "CacheError", "InMemoryCache", "RedisCache", "WrongTypeError", "create_cache"]
