"""The balanced assignment of partitions to replicas (`engine.assignment`), and what `Ownership` does with it on
a real database: partitions split by weight, each held by one replica at a time, a restarted replica given
its share back at once, a dead one's taken over, and a large takeover driven partition by partition."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import create_engine, create_session_factory
from common.testing.infra import scratch_database
from common.testing.wait import eventually
from engine.assignment import SLACK, assign, balanced, cap, loads, worth_recording
from engine.ownership import Ownership, Partitions
from trading.migrate import upgrade
from trading.models import ENGINE_PARTITIONS, SCHEMA, EnginePartition, EnginePartitionWeight
from trading.partitions import market_partition

NAMES = ["engine-1", "engine-2", "engine-3", "engine-4"]


def bench_weights(bots_per_market: int, markets: int = 20) -> dict[int, int]:
    """The bench's fleet: bots spread evenly over B00USDT… on Binance, each market in its partition."""
    weights: dict[int, int] = {}
    for n in range(markets):
        partition = market_partition("binance", f"B{n:02d}USDT")
        weights[partition] = weights.get(partition, 0) + bots_per_market
    return weights


# --- the pure function ------------------------------------------------------------------------------------


def test_the_bench_fleet_splits_evenly_where_rendezvous_hashing_split_it_14_to_6() -> None:
    weights = bench_weights(500)
    by_hash = loads(weights, {p: assign(p, NAMES[:2]) or "" for p in range(ENGINE_PARTITIONS)})
    assert sorted(by_hash.values()) == [3000, 7000]
    assert loads(weights, balanced(weights, NAMES[:2])) == {"engine-1": 5000, "engine-2": 5000}
    three = loads(weights, balanced(weights, NAMES[:3]))
    assert max(three.values()) <= cap(10_000, 3)


def test_small_fleets_stay_where_rendezvous_hashing_puts_them() -> None:
    # A few bots per partition never move one for balance (tests pick bot ids by `assign`).
    weights = {p: p % 4 for p in range(ENGINE_PARTITIONS)}
    assert max(loads(weights, {p: assign(p, NAMES[:2]) or "" for p in weights}).values()) < 48 + SLACK
    for count in (1, 2, 3):
        owners = balanced(weights, NAMES[:count])
        assert owners == {p: assign(p, NAMES[:count]) for p in range(ENGINE_PARTITIONS)}


def test_no_replica_no_assignment_and_one_replica_takes_everything() -> None:
    assert balanced(bench_weights(500), []) == {}
    assert set(balanced(bench_weights(500), ["engine-1"]).values()) == {"engine-1"}


weights_strategy = st.dictionaries(
    st.integers(0, ENGINE_PARTITIONS - 1), st.integers(0, 3000), max_size=ENGINE_PARTITIONS
)


@settings(max_examples=200, deadline=None)
@given(weights=weights_strategy, count=st.integers(1, 4), seed=st.integers(0, 2**32))
def test_every_partition_goes_to_one_live_replica_within_the_bound_whatever_the_order(
    weights: dict[int, int], count: int, seed: int
) -> None:
    live = NAMES[:count]
    owners = balanced(weights, live)
    assert set(owners) == set(range(ENGINE_PARTITIONS)) and set(owners.values()) <= set(live)
    # Every replica computes it from the same rows, in whatever order it lists them: the same answer.
    shuffled = list(live)
    random.Random(seed).shuffle(shuffled)
    assert balanced(dict(reversed(list(weights.items()))), shuffled) == owners
    # A partition goes past the bound only onto the least loaded replica (at most the mean before it).
    total = sum(weights.values())
    heaviest = max(weights.values(), default=0)
    assert max(loads(weights, owners).values(), default=0) <= cap(total, count) + heaviest


@settings(max_examples=100, deadline=None)
@given(weights=weights_strategy)
def test_two_replicas_share_the_weight_within_the_tolerance_when_partitions_are_small(
    weights: dict[int, int],
) -> None:
    total = sum(weights.values())
    if not weights or max(weights.values()) > total / 10:
        return  # a few heavy partitions cannot always be split evenly; the bound above still holds
    carried = loads(weights, balanced(weights, NAMES[:2]))
    assert max(carried.values()) <= cap(total, 2) + max(weights.values())
    assert min(carried.values(), default=0) >= total - cap(total, 2) - max(weights.values())


def test_a_weight_is_recorded_only_when_it_moved_by_enough() -> None:
    assert not worth_recording(500, 520)  # a few bots started: no partition moves back and forth
    assert worth_recording(500, 560)  # a tenth more
    assert not worth_recording(0, 3) and worth_recording(0, 5)
    assert worth_recording(40, 30)


# --- Ownership on a real database -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of this module's own: the replicas here claim every partition."""
    with scratch_database(postgres_admin_url) as url:
        upgrade(url)
        yield url


@pytest.fixture
async def factory(scratch_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the scratch database."""
    engine = create_engine(scratch_url, schemas=[SCHEMA], pool_size=10)
    yield create_session_factory(engine)
    await engine.dispose()


class FakeRuntime:
    """What a runtime gives `Ownership`: loads that mark each partition ready (unless told to hold one back)."""

    def __init__(self, counts: dict[int, int]) -> None:
        self.counts = counts
        self.hold_back: set[int] = set()
        self.released = asyncio.Event()
        self.lost: set[int] = set()

    async def gained(self, partitions: Partitions, ready: Callable[[int], None]) -> None:
        for partition in sorted(partitions):
            if partition in self.hold_back:
                continue
            await asyncio.sleep(0)
            ready(partition)
        if self.hold_back & partitions:
            await self.released.wait()

    async def lost_(self, partitions: Partitions) -> None:
        self.lost |= partitions

    async def superseded(self) -> None:
        return None


def replica(factory: async_sessionmaker[AsyncSession], name: str, runtime: FakeRuntime) -> Ownership:
    """An Ownership with short rounds on the scratch database."""
    return Ownership(
        factory,
        name,
        heartbeat_seconds=0.2,
        # The engine's default: a loaded machine must not make a live replica look dead here either.
        ttl_seconds=2.0,
        on_gained=runtime.gained,
        on_lost=runtime.lost_,
        on_superseded=runtime.superseded,
        weigh=lambda: runtime.counts,
    )


def ready_set(ownership: Ownership) -> set[int]:
    """The partitions an Ownership drives now (held, loaded, not being handed over)."""
    return {p for p, held in ownership.held.items() if held.ready.is_set() and not held.releasing}


async def recorded(factory: async_sessionmaker[AsyncSession]) -> dict[int, tuple[Any, int]]:
    """(owner, weight) of every partition row."""
    async with factory() as session:
        rows = await session.execute(
            select(EnginePartition.partition, EnginePartition.owner, EnginePartitionWeight.weight).join(
                EnginePartitionWeight, EnginePartitionWeight.partition == EnginePartition.partition
            )
        )
    return {int(r.partition): (r.owner, int(r.weight)) for r in rows}


@pytest.mark.timeout(60)
async def test_replicas_split_by_weight_and_a_restarted_one_gets_its_share_back_at_once(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    counts = bench_weights(500)
    one, two = FakeRuntime(counts), FakeRuntime(counts)
    first, second = replica(factory, "engine-1", one), replica(factory, "engine-2", two)
    overlaps: list[set[int]] = []
    watched = {"engine-2": True}

    async def watch() -> None:
        while True:
            # A replica that stopped its rounds (as if dead) still lists what it held: not watched then.
            if watched["engine-2"] and (both := ready_set(first) & ready_set(second)):
                overlaps.append(both)
            await asyncio.sleep(0.005)  # the watch's sampling period, not a synchronisation

    watcher = asyncio.create_task(watch())
    try:
        await first.join()
        # Alone, it takes everything and records each partition's bots as its weight.
        assert len(ready_set(first)) == ENGINE_PARTITIONS
        await eventually(lambda: _weights_are(factory, counts), timeout=5)
        await second.join()
        expected = balanced(counts, ["engine-1", "engine-2"])
        share = {name: {p for p, r in expected.items() if r == name} for name in ("engine-1", "engine-2")}

        async def split() -> bool:
            return ready_set(first) == share["engine-1"] and ready_set(second) == share["engine-2"]

        await eventually(split, timeout=10)
        assert loads(counts, expected) == {"engine-1": 5000, "engine-2": 5000}
        rows = await recorded(factory)
        assert {p for p, (owner, _) in rows.items() if owner == "engine-2"} == share["engine-2"]

        # engine-2 dies (no hand-over): engine-1 takes its partitions once the heartbeat is stale.
        watched["engine-2"] = False
        await second.stop()
        await eventually(lambda: _ready_count(first, ENGINE_PARTITIONS), timeout=10)
        # Restarted under its name, it takes back exactly its share: its partitions were its own.
        second = replica(factory, "engine-2", two)
        watched["engine-2"] = True
        await second.join()
        await eventually(split, timeout=10)
    finally:
        watcher.cancel()
        await first.close()
        await second.close()
        await first.handover()
        await second.handover()
    assert overlaps == []


@pytest.mark.timeout(60)
async def test_a_takeover_drives_each_partition_as_soon_as_it_is_loaded(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    runtime = FakeRuntime({})
    slow = 7
    runtime.hold_back = {slow}
    ownership = replica(factory, "engine-1", runtime)
    joining = asyncio.create_task(ownership.join())
    try:
        # Every other partition is driven while one is still loading; that one is not.
        await eventually(lambda: _ready_count(ownership, ENGINE_PARTITIONS - 1), timeout=10)
        assert slow in ownership.held and slow not in ready_set(ownership)
        runtime.released.set()
        await joining
        assert len(ready_set(ownership)) == ENGINE_PARTITIONS
    finally:
        joining.cancel()
        await ownership.close()
        await ownership.handover()


async def _weights_are(factory: async_sessionmaker[AsyncSession], counts: dict[int, int]) -> bool:
    rows = await recorded(factory)
    return all(rows[p][1] == counts.get(p, 0) for p in rows)


async def _ready_count(ownership: Ownership, count: int) -> bool:
    return len(ready_set(ownership)) == count
