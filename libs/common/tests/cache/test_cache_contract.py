"""The cache contract: every test runs against the in-process adapter and against real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from common.cache import Cache, InMemoryCache, RedisCache, WrongTypeError, create_cache
from common.testing.wait import eventually


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    """A cache and a way to let its TTLs run out (a fake clock, or real time for Redis)."""

    cache: Cache
    expire: Callable[[Callable[[], Awaitable[bool]], float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(check: Callable[[], Awaitable[bool]], ttl: float) -> None:
            clock.advance(ttl)
            assert await check()

        yield Harness(InMemoryCache(namespace, clock=clock), advance)
        return

    url: str = request.getfixturevalue("redis_url")

    async def wait_out(check: Callable[[], Awaitable[bool]], ttl: float) -> None:
        await eventually(check, timeout=ttl + 2.0)

    cache = RedisCache(url, namespace)
    try:
        yield Harness(cache, wait_out)
    finally:
        keys = [k async for k in cache.client.scan_iter(match=f"{namespace}*")]
        if keys:
            await cache.client.delete(*keys)
        await cache.close()


async def test_get_set_roundtrip_and_overwrite(harness: Harness) -> None:
    cache = harness.cache
    assert await cache.get("k") is None
    await cache.set("k", "v1")
    assert await cache.get("k") == "v1"
    await cache.set("k", "값 2")
    assert await cache.get("k") == "값 2"


async def test_set_with_ttl_expires(harness: Harness) -> None:
    cache = harness.cache
    await cache.set("short", "v", ttl_seconds=0.2)
    await cache.set("long", "v", ttl_seconds=60)
    assert await cache.get("short") == "v"

    async def short_gone() -> bool:
        return await cache.get("short") is None and not await cache.exists("short")

    await harness.expire(short_gone, 0.2)
    assert await cache.get("long") == "v"


async def test_set_without_ttl_clears_an_earlier_ttl(harness: Harness) -> None:
    cache = harness.cache
    await cache.set("k", "old", ttl_seconds=0.2)
    await cache.set("k", "new")
    await cache.set("probe", "x", ttl_seconds=0.2)

    async def probe_gone() -> bool:
        return not await cache.exists("probe")

    await harness.expire(probe_gone, 0.2)
    assert await cache.get("k") == "new"


async def test_set_if_absent(harness: Harness) -> None:
    cache = harness.cache
    assert await cache.set_if_absent("lock", "a", ttl_seconds=0.2) is True
    assert await cache.set_if_absent("lock", "b", ttl_seconds=0.2) is False
    assert await cache.get("lock") == "a"

    async def lock_gone() -> bool:
        return not await cache.exists("lock")

    await harness.expire(lock_gone, 0.2)
    assert await cache.set_if_absent("lock", "c") is True
    assert await cache.get("lock") == "c"


async def test_delete_counts_existing_keys(harness: Harness) -> None:
    cache = harness.cache
    await cache.set("a", "1")
    await cache.push_capped("b", "x", 5)
    assert await cache.delete("a", "b", "missing") == 2
    assert await cache.delete() == 0
    assert not await cache.exists("a")
    assert await cache.list_range("b") == []


async def test_exists(harness: Harness) -> None:
    cache = harness.cache
    assert await cache.exists("k") is False
    await cache.hset("k", {"f": "v"})
    assert await cache.exists("k") is True


async def test_incr_creates_counts_and_sets_ttl_only_on_creation(harness: Harness) -> None:
    cache = harness.cache
    assert await cache.incr("hits", ttl_seconds=0.3) == 1
    assert await cache.incr("hits", 5, ttl_seconds=60) == 6  # a later TTL does not extend it
    assert await cache.incr("hits", -2) == 4
    assert await cache.get("hits") == "4"

    async def window_over() -> bool:
        return not await cache.exists("hits")

    await harness.expire(window_over, 0.3)
    assert await cache.incr("hits") == 1  # a fresh window


async def test_incr_on_a_non_integer_is_refused(harness: Harness) -> None:
    cache = harness.cache
    await cache.set("word", "abc")
    with pytest.raises(WrongTypeError):
        await cache.incr("word")
    await cache.push_capped("list", "x", 3)
    with pytest.raises(WrongTypeError):
        await cache.incr("list")
    with pytest.raises(WrongTypeError):
        await cache.get("list")


async def test_push_capped_keeps_the_newest(harness: Harness) -> None:
    cache = harness.cache
    for n in range(7):
        await cache.push_capped("candles", f"c{n}", max_len=3)
    assert await cache.list_range("candles") == ["c4", "c5", "c6"]
    with pytest.raises(ValueError):
        await cache.push_capped("candles", "c7", max_len=0)


async def test_push_capped_is_atomic_under_concurrency(harness: Harness) -> None:
    cache = harness.cache
    await asyncio.gather(*(cache.push_capped("l", str(n), max_len=5) for n in range(50)))
    items = await cache.list_range("l")
    assert len(items) == 5
    assert len(set(items)) == 5


@pytest.mark.parametrize(
    ("start", "stop", "expected"),
    [
        (0, -1, ["a", "b", "c", "d"]),
        (1, 2, ["b", "c"]),
        (-2, -1, ["c", "d"]),
        (2, 100, ["c", "d"]),
        (-100, 0, ["a"]),
        (3, 1, []),
        (10, 20, []),
    ],
)
async def test_list_range_counts_like_lrange(
    harness: Harness, start: int, stop: int, expected: list[str]
) -> None:
    cache = harness.cache
    for item in "abcd":
        await cache.push_capped("l", item, max_len=10)
    assert await cache.list_range("l", start, stop) == expected
    assert await cache.list_range("missing") == []


async def test_hash_set_and_get_all(harness: Harness) -> None:
    cache = harness.cache
    assert await cache.hgetall("h") == {}
    await cache.hset("h", {"last": "101", "high": "105"})
    await cache.hset("h", {"last": "102"})
    await cache.hset("h", {})
    assert await cache.hgetall("h") == {"last": "102", "high": "105"}
    with pytest.raises(WrongTypeError):
        await cache.push_capped("h", "x", 3)


async def test_namespaces_isolate_keys(harness: Harness, namespace: str) -> None:
    cache = harness.cache
    other = cache.with_namespace(f"{namespace}-other")
    await cache.set("k", "mine")
    await other.set("k", "theirs")
    await cache.incr("n")
    assert await cache.get("k") == "mine"
    assert await other.get("k") == "theirs"
    assert await other.exists("n") is False
    assert await other.delete("k") == 1
    assert await cache.get("k") == "mine"
    assert cache.full_key("k") == f"{namespace}:k"
    await other.close()  # a view: the original keeps working
    assert await cache.get("k") == "mine"


async def test_non_positive_ttl_is_refused(harness: Harness) -> None:
    with pytest.raises(ValueError):
        await harness.cache.set("k", "v", ttl_seconds=0)
    with pytest.raises(ValueError):
        await harness.cache.incr("k", ttl_seconds=-1)


async def test_ping(harness: Harness) -> None:
    assert await harness.cache.ping() is True


async def test_memory_ttl_boundary_follows_the_clock() -> None:
    clock = FakeClock()
    cache = InMemoryCache(clock=clock)
    await cache.set("k", "v", ttl_seconds=10)
    clock.advance(9.999)
    assert await cache.get("k") == "v"
    clock.advance(0.001)
    assert await cache.get("k") is None


async def test_redis_ping_is_false_when_unreachable() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        assert await cache.ping() is False
    finally:
        await cache.close()


def test_factory_picks_the_adapter() -> None:
    assert isinstance(create_cache("memory://"), InMemoryCache)
    assert isinstance(create_cache("redis://127.0.0.1:6379/0", "ns"), RedisCache)
    with pytest.raises(ValueError):
        create_cache("memcached://x")
