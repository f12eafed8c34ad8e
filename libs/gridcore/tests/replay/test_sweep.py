"""A sweep gives each spec the figures of its own replay, in order, on one process or on a pool."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.grid import MarketRules, grid_count, levels
from gridcore.replay import CandleSeries, ReplaySpec, figures, replay, sweep

D = Decimal


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sweep_matches_each_replay(month: CandleSeries, binance: MarketRules, workers: int) -> None:
    candles = month.window(10_000, 13_000)
    low, high = min(candles.low), max(candles.high)
    specs = []
    for pct in ("0.1", "0.2", "0.4"):
        for stop_at_max in (False, True):
            lower, upper = low * D("0.99"), high * D("1.01")
            grid = tuple(levels(lower, upper, grid_count(lower, upper, D(pct)), rules=binance))
            top = high if stop_at_max else upper
            specs.append(ReplaySpec(grid, top.quantize(D("0.01")), D(20), stop_at_max, binance))
    seen: list[int] = []
    usage: dict[int, float] = {}
    got = sweep(specs, candles, workers=workers, progress=seen.append, usage=usage)
    assert got == [figures(spec, candles, replay(spec, candles)) for spec in specs]
    assert seen[-1] == 100 and seen == sorted(seen)
    assert len(usage) == workers and all(cpu > 0 for cpu in usage.values())
    assert any(f.sell_trades for f in got)
