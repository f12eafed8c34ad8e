"""Edge cases: a price that never enters the range, stopAtMax, a single candle, progress, the candle series."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gridcore.replay import CandleSeries, Replay, ReplaySpec, figures, replay, replay_reference
from gridcore.state import Phase, Side, Status, StopReason

from .conftest import DAY_START, MINUTE, series
from .test_figures import RULES, SPEC, both

D = Decimal


@pytest.mark.parametrize(
    ("rows", "waiting"),
    [
        # Above the range: both slots buy at once, and no price ever comes down to 110.
        ([(155, 160, 150, 152), (152, 158, 121, 157), (157, 157, 157, 157)], 2),
        # Below it: no slot buys, and none arms (no price goes above 100).
        ([(95, 99, 90, 92), (92, 100, 91, 100), (100, 100, 99, 99)], 0),
    ],
)
def test_a_price_that_never_enters_the_range_trades_nothing(
    rows: list[tuple[int, int, int, int]], waiting: int
) -> None:
    run, result = both(SPEC, series(rows))
    assert run.trades == ()
    assert sum(1 for slot in run.state.slots if slot.order is not None) == waiting
    assert (result.buy_trades, result.sell_trades, result.fees) == (0, 0, D(0))
    assert result.final_value == result.investment_amount == D("200.2")
    assert (result.total_return_percent, result.apr, result.max_drawdown_percent) == (D(0), D(0), D(0))
    assert result.time_in_range_percent == (D("33.33") if waiting == 0 else D("0.00"))  # 100 is in range
    assert [p.value for p in result.equity] == [D("200.2")] * 3
    assert [(d.profit, d.trades) for d in result.daily] == [(D(0), 0)]


def test_stop_at_max_stops_at_the_trade_that_reaches_upper_price() -> None:
    spec = ReplaySpec(SPEC.levels, SPEC.upper_price, SPEC.order_amount, True, RULES)
    candles = series(
        [
            (105, 105, 105, 105),
            (105, 105, 99, 101),  # buy 1.000 at 100
            (101, 125, 101, 118),  # rises: its sell at 110 fills at 125, which reaches 120: stop
            (118, 118, 95, 96),  # back down through every level: nothing trades any more
        ]
    )
    run, result = both(spec, candles)
    assert [(t.side, t.price) for t in run.trades] == [(Side.BUY, D(100)), (Side.SELL, D(110))]
    assert run.stop_reason is StopReason.STOP_AT_MAX
    assert run.stopped_at == DAY_START + 2 * MINUTE + 30_000
    assert (run.state.phase, run.state.status) == (Phase.HALTED, Status.STOPPED)
    assert all(slot.order is None for slot in run.state.slots)
    assert run.visited == 2  # candle 0 changes nothing; the fast path ends at the stop
    assert result.realised_profit == D("9.79")
    assert result.final_value == D("209.99")


def test_stop_at_max_keeps_what_the_slots_hold() -> None:
    spec = ReplaySpec(SPEC.levels, D(115), SPEC.order_amount, True, RULES)
    candles = series([(111, 111, 111, 111), (111, 111, 109, 109), (109, 116, 109, 116), (116, 116, 90, 90)])
    run, result = both(spec, candles)
    # Slot 1 bought 0.909 at 110; the price reached 115 (under its sell at 120) and the bot stopped.
    assert [(t.slot, t.side) for t in run.trades] == [(1, Side.BUY)]
    assert run.stopped_at == DAY_START + 2 * MINUTE + 30_000
    assert (run.held_qty, run.held_cost) == (D("0.909"), D("100.08999"))
    assert result.unrealised_profit == D("0.909") * 90 - D("100.08999")  # marked to the last close


def test_stop_at_max_when_the_first_price_is_already_at_upper_price() -> None:
    spec = ReplaySpec(SPEC.levels, D(110), SPEC.order_amount, True, RULES)
    run, result = both(spec, series([(110, 112, 100, 101), (101, 101, 95, 95)]))
    assert run.trades == ()
    assert (run.stop_reason, run.stopped_at) == (StopReason.STOP_AT_MAX, DAY_START)
    assert run.visited == 0
    assert result.final_value == result.investment_amount


def test_a_single_candle() -> None:
    run, result = both(SPEC, series([(105, 106, 99, 101)]))
    assert [(t.side, t.price) for t in run.trades] == [(Side.BUY, D(100))]
    assert result.candles == 1
    assert result.first_candle_at == result.last_candle_at == datetime(2024, 12, 1, tzinfo=UTC)
    assert [p.value for p in result.equity] == [D("201.1")]  # 200.2 − 100.1 + 1.000 × 101
    assert result.total_return_percent == D("0.45")  # 0.9 / 200.2
    assert result.apr == D("236283.72")  # over one minute
    assert result.max_drawdown_percent == 0
    assert [(d.profit, d.trades) for d in result.daily] == [(D(0), 1)]


def test_candles_with_gaps_count_the_span_for_apr() -> None:
    rows = [(DAY_START, 105, 106, 99, 101), (DAY_START + 59 * MINUTE, 101, 101, 101, 101)]
    candles = CandleSeries.from_rows(rows)
    _, result = both(SPEC, candles)
    assert result.candles == 2
    assert result.apr == D("3938.06")  # 0.4496 % over 60 minutes


@pytest.mark.parametrize("fast", [True, False])
def test_progress_is_reported_once_per_percent_up_to_100(month: CandleSeries, fast: bool) -> None:
    window = month.window(0, 5_000)
    seen: list[int] = []
    run = (replay if fast else replay_reference)(SPEC_AT_MONTH, window, seen.append)
    assert isinstance(run, Replay)
    assert seen == sorted(set(seen)) and seen[-1] == 100 and len(seen) <= 101
    assert all(0 <= p <= 100 for p in seen)


SPEC_AT_MONTH = ReplaySpec(tuple(D(p) for p in range(94_000, 98_001, 500)), D(98_000), D(100), False, RULES)


# --- the candle series -------------------------------------------------------------------------------------


def test_candle_series_holds_every_price_at_one_scale() -> None:
    candles = CandleSeries.from_rows([(DAY_START, "96440.0", "96450.12", "96440", D("96441.5"))])
    assert candles.scale == 2
    assert [repr(p) for p in (candles.open[0], candles.high[0], candles.low[0], candles.close[0])] == [
        "Decimal('96440.00')", "Decimal('96450.12')", "Decimal('96440.00')", "Decimal('96441.50')",
    ]  # fmt: skip
    again = pickle.loads(pickle.dumps(candles))
    assert repr(again.close) == repr(candles.close)
    assert (again.timestamps == candles.timestamps).all()


def test_candle_series_from_the_shared_file_format() -> None:
    rows = [
        {
            "open": "1",
            "high": "2",
            "low": "1",
            "close": "2",
            "close_datetime": "2024-12-01 00:00:59.999000+01:00",
        },
        {
            "open": "2",
            "high": "2",
            "low": "1",
            "close": "1",
            "close_datetime": "2024-12-01 00:01:59.999000+01:00",
        },
    ]
    candles = CandleSeries.from_csv_rows(rows)
    assert candles.timestamps.tolist() == [DAY_START - 60 * MINUTE, DAY_START - 59 * MINUTE]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "at least one candle"),
        ([(DAY_START, 1.5, 2, 1, 1)], "never a float"),
        ([(DAY_START, 1, 2, 1, 3)], "low <= open, close <= high"),
        ([(DAY_START, 1, 2, 0, 1)], "positive"),
        ([(DAY_START + 1, 1, 2, 1, 1)], "whole minutes"),
        ([(DAY_START, 1, 2, 1, 1), (DAY_START, 1, 2, 1, 1)], "strictly increasing"),
    ],
)
def test_candle_series_refuses_what_is_not_a_candle(
    rows: list[tuple[int, object, object, object, object]], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        CandleSeries.from_rows(rows)  # type: ignore[arg-type]


def test_levels_with_more_decimals_than_the_candles() -> None:
    spec = ReplaySpec((D("99.5"), D("109.25"), D(120)), D(120), D("100.1"), False, RULES)
    run, _ = both(spec, series([(105, 105, 105, 105), (105, 110, 99, 110), (110, 110, 109, 109)]))
    assert [(t.side, t.price) for t in run.trades] == [
        (Side.BUY, D("99.5")),
        (Side.SELL, D("109.25")),
        (Side.BUY, D("109.25")),
    ]
    assert (
        figures(spec, series([(105, 105, 105, 105)]), replay(spec, series([(105, 105, 105, 105)]))).candles
        == 1
    )
