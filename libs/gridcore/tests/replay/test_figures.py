"""Hand-made candles whose every trade and figure is worked out here by hand (and both paths agree).

The market of most cases: tick 1, lot 0.001, minimum 1, a 0.1 % fee in quote both ways; levels 100, 110,
120 (two slots), 100.1 per slot, so a buy at 100 is exactly 1.000 (100.1 / (100 · 1.001)) and one at 110
is 0.909 (100.1 / 110.11 = 0.90909…, floored). Candles are (open, high, low, close); the simulator trades
open → low → high → close when close ≥ open and open → high → low → close otherwise; the n-th trade of a
candle is stamped n · 15 s into its minute.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise

import pytest

from common.grid import MarketRules
from gridcore.replay import (
    BacktestFigures,
    CandleSeries,
    Replay,
    ReplaySpec,
    figures,
    replay,
    replay_reference,
)
from gridcore.replay.figures import equity_sample, percent
from gridcore.state import Side

from .conftest import DAY_START, MINUTE, series

D = Decimal
RULES = MarketRules(
    base="BTC",
    quote="USDT",
    lot_step=D("0.001"),
    min_qty=D("0.001"),
    min_notional=D(1),
    maker_fee=D("0.001"),
    taker_fee=D("0.001"),
    tick_size=D(1),
)
SPEC = ReplaySpec((D(100), D(110), D(120)), D(120), D("100.1"), False, RULES)
# Two minutes before midnight UTC: the third and fourth candles fall on the next day.
T0 = DAY_START - 2 * MINUTE


def both(spec: ReplaySpec, candles: CandleSeries) -> tuple[Replay, BacktestFigures]:
    got, expected = replay(spec, candles), replay_reference(spec, candles)
    assert got == expected
    result = figures(spec, candles, got)
    assert result == figures(spec, candles, expected)
    return got, result


def trades_of(run: Replay) -> list[tuple[int, int, Side, Decimal, Decimal, Decimal, Decimal | None]]:
    return [(t.timestamp, t.slot, t.side, t.price, t.qty, t.fee, t.profit) for t in run.trades]


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_two_buys_and_a_sell_across_midnight() -> None:
    candles = series(
        [
            (105, 105, 105, 105),  # start at 105: slot 0 buys at 100, slot 1 waits (110 is above)
            (105, 106, 99, 101),  # falls: 105, 106, 99 (buy 1.000 at 100), 101
            (101, 112, 101, 111),  # rises: 101, 101, 112 (sell at 110; slot 1 arms: buy at 110), 111
            (111, 111, 109, 109),  # falls: 111, 111, 109 (buy 0.909 at 110), 109
        ],
        start=T0,
    )
    run, result = both(SPEC, candles)
    assert trades_of(run) == [
        (T0 + MINUTE + 30_000, 0, Side.BUY, D(100), D(1), D("0.1"), None),
        # 110 − 0.11 fee − (100 + 0.1) it cost
        (T0 + 2 * MINUTE + 30_000, 0, Side.SELL, D(110), D(1), D("0.11"), D("9.79")),
        (T0 + 3 * MINUTE + 30_000, 1, Side.BUY, D(110), D("0.909"), D("0.09999"), None),
    ]
    assert (run.held_qty, run.held_cost) == (D("0.909"), D("100.08999"))
    assert run.stop_reason is None and run.stopped_at is None
    investment = D("200.2")
    assert result.grid_count == 2
    assert result.investment_amount == investment
    assert result.candles == 4
    assert result.first_candle_at == datetime(2024, 11, 30, 23, 58, tzinfo=UTC)
    assert result.last_candle_at == datetime(2024, 12, 1, 0, 1, tzinfo=UTC)
    assert (result.buy_trades, result.sell_trades) == (2, 1)
    assert result.realised_profit == D("9.79")
    assert result.fees == D("0.30999")
    assert result.unrealised_profit == D("0.909") * 109 - D("100.08999") == D("-1.00899")
    assert result.final_value == investment + D("9.79") - D("1.00899") == D("208.98101")
    assert result.total_return_percent == D("4.39")  # 8.78101 / 200.2 = 4.3861…%
    assert result.apr == D("576336.02")  # 4.3861…% over 4 minutes, × 525,600 / 4
    # Closes: 200.2, 200.2 − 100.1 + 101 = 201.1, 200.2 + 9.79 = 209.99, 208.98101.
    assert [(p.timestamp, p.value) for p in result.equity] == [
        (at(T0), D("200.2")),
        (at(T0 + MINUTE), D("201.1")),
        (at(T0 + 2 * MINUTE), D("209.99")),
        (at(T0 + 3 * MINUTE), D("208.98101")),
    ]
    assert result.max_drawdown_percent == D("0.48")  # 1.00899 / 209.99 = 0.4805 %
    assert result.time_in_range_percent == D("100.00")
    assert [(d.date, d.profit, d.trades) for d in result.daily] == [
        (date(2024, 11, 30), D(0), 1),
        (date(2024, 12, 1), D("9.79"), 2),
    ]


def test_a_fall_below_the_range_draws_down() -> None:
    candles = series(
        [
            (105, 105, 105, 105),
            (105, 105, 99, 101),  # buy 1.000 at 100
            (101, 101, 80, 80),  # out of the range below: nothing else to buy (slot 1 never armed)
            (80, 90, 80, 90),
        ]
    )
    run, result = both(SPEC, candles)
    assert [(t.side, t.price) for t in run.trades] == [(Side.BUY, D(100))]
    # Closes: 200.2, 201.1, 200.2 − 100.1 + 80 = 180.1, 190.1.
    assert [p.value for p in result.equity] == [D("200.2"), D("201.1"), D("180.1"), D("190.1")]
    assert result.max_drawdown_percent == D("10.44")  # (201.1 − 180.1) / 201.1
    assert result.time_in_range_percent == D("50.00")  # 105 and 101 in [100, 120]; 80 and 90 not
    assert result.unrealised_profit == 90 - D("100.1")
    assert result.final_value == D("190.1")
    assert result.total_return_percent == D("-5.04")  # −10.1 / 200.2 = −5.04496 %, half up
    assert result.apr == D("-662907.09")
    assert result.fees == D("0.1")
    assert [(d.profit, d.trades) for d in result.daily] == [(D(0), 1)]


def test_binance_round_trip_with_the_buy_fee_in_base() -> None:
    rules = MarketRules.binance(
        base="BTC",
        quote="USDT",
        tick_size=D("0.01"),
        lot_step=D("0.00001"),
        min_qty=D("0.00001"),
        min_notional=D(5),
    )
    spec = ReplaySpec((D(100), D(110)), D(110), D(10), False, rules)
    candles = series([(105, 105, 105, 105), (105, 105, 99, 100), (100, 111, 100, 110)])
    run, result = both(spec, candles)
    # Buy 0.1 at 100, fee 0.0001 BTC: 0.0999 held, all of it sold at 110 for 10.989 less 0.010989.
    assert trades_of(run) == [
        (DAY_START + MINUTE + 30_000, 0, Side.BUY, D(100), D("0.1"), D("0.0001"), None),
        (DAY_START + 2 * MINUTE + 30_000, 0, Side.SELL, D(110), D("0.0999"), D("0.010989"), D("0.978011")),
    ]
    assert [t.fee_currency for t in run.trades] == ["BTC", "USDT"]
    assert (run.held_qty, run.held_cost) == (D(0), D(0))
    assert result.fees == D("0.0001") * 100 + D("0.010989") == D("0.020989")  # the base fee at its price
    assert result.realised_profit == D("0.978011")
    assert result.unrealised_profit == 0
    assert result.final_value == D("10.978011")
    assert result.total_return_percent == D("9.78")
    assert result.apr == D("1713475.27")  # 9.78011 % × 525,600 / 3


@pytest.mark.parametrize("close", [106, 105])
def test_a_rising_or_flat_candle_trades_its_low_before_its_high(close: int) -> None:
    # 105 → 99 (buy at 100) → 111 (its sell at 110; slot 1 arms a buy at 110) → close (that buy fills).
    run, _ = both(SPEC, series([(105, 105, 105, 105), (105, 111, 99, close)]))
    assert [(t.slot, t.side, t.price, t.timestamp - DAY_START) for t in run.trades] == [
        (0, Side.BUY, D(100), MINUTE + 15_000),
        (0, Side.SELL, D(110), MINUTE + 30_000),
        (1, Side.BUY, D(110), MINUTE + 45_000),
    ]


def test_a_falling_candle_trades_its_high_first() -> None:
    # 105 → 111 (nothing to sell; slot 1 arms a buy at 110) → 99 (both buys fill, highest first) → 104.
    run, _ = both(SPEC, series([(105, 105, 105, 105), (105, 111, 99, 104)]))
    assert [(t.slot, t.side, t.price, t.timestamp - DAY_START) for t in run.trades] == [
        (1, Side.BUY, D(110), MINUTE + 30_000),
        (0, Side.BUY, D(100), MINUTE + 30_000),
    ]


def test_percent_rounds_half_up_to_cents() -> None:
    assert percent(1, 8) == D("12.50")
    assert percent(D("0.00125"), 1) == D("0.13")
    assert percent(D("-0.00125"), 1) == D("-0.13")
    assert percent(1, 3) == D("33.33")
    assert percent(5, 0) == D("0.00")


def test_equity_sampling_keeps_both_ends_and_at_most_500_points() -> None:
    assert equity_sample(3) == [0, 1, 2]
    assert equity_sample(500) == list(range(500))
    sample = equity_sample(41_761)
    assert len(sample) == 500 and sample[0] == 0 and sample[-1] == 41_760
    steps = {b - a for a, b in pairwise(sample)}
    assert steps <= {83, 84}  # evenly spread


def test_month_figures_hang_together(month: CandleSeries, binance: MarketRules) -> None:
    from common.grid import grid_count, levels

    count = grid_count(D(90_000), D(108_000), D("0.73"))
    spec = ReplaySpec(
        tuple(levels(D(90_000), D(108_000), count, rules=binance)), D(108_000), D(100), False, binance
    )
    run = replay(spec, month)
    result = figures(spec, month, run)
    assert len(result.equity) == 500
    assert result.equity[-1].value == result.final_value
    assert result.equity[0].timestamp == result.first_candle_at
    assert result.equity[-1].timestamp == result.last_candle_at
    assert result.buy_trades + result.sell_trades == len(run.trades) == sum(d.trades for d in result.daily)
    assert sum(d.profit for d in result.daily) == result.realised_profit == run.realized_profit
    assert len(result.daily) == 30  # 2024-11-30 (its last hour) to 2024-12-29
    assert result.final_value == result.investment_amount + result.realised_profit + result.unrealised_profit
    assert 0 < result.max_drawdown_percent < 100
    body = result.as_dict()
    assert list(body) == [
        "gridCount", "investmentAmount", "candles", "firstCandleAt", "lastCandleAt", "buyTrades",
        "sellTrades", "realisedProfit", "fees", "unrealisedProfit", "finalValue", "totalReturnPercent",
        "apr", "maxDrawdownPercent", "timeInRangePercent", "equity", "daily",
    ]  # fmt: skip
