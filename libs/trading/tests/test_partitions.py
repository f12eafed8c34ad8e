"""Bot ids in their market's partition."""

from __future__ import annotations

import uuid
from collections import Counter

from trading.models import ENGINE_PARTITIONS
from trading.partitions import market_partition, new_bot_id, partition_of


def test_a_new_bot_id_is_a_random_v4_id_in_its_markets_partition() -> None:
    ids = [new_bot_id("upbit", "KRW-BTC") for _ in range(500)]
    assert len(set(ids)) == 500
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert {partition_of(i) for i in ids} == {market_partition("upbit", "KRW-BTC")}


def test_only_the_partition_bits_of_a_given_id_change() -> None:
    base = uuid.UUID("4c011006-ce29-414e-93b8-11cf0e8027ff")
    made = new_bot_id("binance", "ETHUSDT", base)
    assert partition_of(made) == market_partition("binance", "ETHUSDT")
    assert (made.int ^ base.int) >> 64 < ENGINE_PARTITIONS and made.int & (2**64 - 1) == base.int & (
        2**64 - 1
    )


def test_markets_spread_over_the_partitions() -> None:
    counts = Counter(market_partition("binance", f"T{n}USDT") for n in range(6400))
    assert len(counts) == ENGINE_PARTITIONS
    assert max(counts.values()) < 2 * 6400 / ENGINE_PARTITIONS
