"""Process-wide access to the cache and the bus: in the embedded mode every service shares one instance.

A `memory://` URL names one in-process cache or bus: every service of the one-process mode that asks for
it gets the same object, so a logout seen by auth is seen by the gateway too. Network URLs get their own
client per caller. Resources are reference-counted and closed by their last user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.bus import Bus, create_bus
from common.cache import Cache, create_cache


@dataclass
class _Shared:
    caches: dict[str, tuple[Cache, int]] = field(default_factory=dict)
    buses: dict[str, tuple[Bus, int]] = field(default_factory=dict)


_shared = _Shared()


def _is_memory(url: str) -> bool:
    return url.startswith("memory://")


async def acquire_cache(url: str, namespace: str = "") -> Cache:
    """The cache at `url` (shared per process for memory://)."""
    if not _is_memory(url):
        return create_cache(url, namespace)
    key = f"{url}|{namespace}"
    cache, refs = _shared.caches.get(key, (None, 0))
    if cache is None:
        cache = create_cache(url, namespace)
    _shared.caches[key] = (cache, refs + 1)
    return cache


async def release_cache(cache: Cache) -> None:
    """Give a cache back; the last user closes it."""
    for key, (shared, refs) in list(_shared.caches.items()):
        if shared is cache:
            if refs > 1:
                _shared.caches[key] = (shared, refs - 1)
                return
            del _shared.caches[key]
            break
    await cache.close()


async def acquire_bus(url: str, namespace: str = "") -> Bus:
    """The started bus at `url` (shared per process for memory://)."""
    if not _is_memory(url):
        bus = create_bus(url, namespace)
        await bus.start()
        return bus
    key = f"{url}|{namespace}"
    bus_or_none, refs = _shared.buses.get(key, (None, 0))
    if bus_or_none is None:
        bus_or_none = create_bus(url, namespace)
        await bus_or_none.start()
    _shared.buses[key] = (bus_or_none, refs + 1)
    return bus_or_none


async def release_bus(bus: Bus) -> None:
    """Give a bus back; the last user closes it."""
    for key, (shared, refs) in list(_shared.buses.items()):
        if shared is bus:
            if refs > 1:
                _shared.buses[key] = (shared, refs - 1)
                return
            del _shared.buses[key]
            break
    await bus.close()
