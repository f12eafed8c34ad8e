"""The fast replay gives the reference's Replay to the last digit: random paths and windows of real candles.

Both venues (Upbit KRW: price units, fees in KRW; Binance: ticks, a buy's fee in base), stopAtMax on and
off, fee overrides, order amounts near the minimums (blocked slots, unsellable leftovers), levels with
more decimals than the candles, gaps between candles. Compared: the Replay (trades, realised profit,
holdings, stop and the core's whole final state), the exact text of every trade, and every figure.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.grid import MarketRules, Rounding, grid_count, levels
from gridcore.replay import CandleSeries, Replay, ReplaySpec, figures, replay, replay_reference
from gridcore.replay.types import Trade

from .conftest import DAY_START, MINUTE

D = Decimal
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KRW_PER_USDT = 1400
# The smallest of each venue miss the exchange minimum once lot rounding and fees bite (blocked slots,
# leftovers too small to sell); the others trade.
AMOUNTS = {"binance": [D(5), D(6), D(11), D(20), D(50)], "upbit": [D(5000), D(5100), D(10_000), D(30_000)]}
AMOUNT_PICKS = [0, 1, 2, 2, 3, 3, 3]
START_PRICE = {"binance": D(100_000), "upbit": D(140_000_000)}


def rules_for(venue: str, binance: MarketRules, upbit: MarketRules, fee: str | None) -> MarketRules:
    rules = binance if venue == "binance" else upbit
    return rules if fee is None else dataclasses.replace(rules, maker_fee=D(fee))


def trade_text(trades: tuple[Trade, ...]) -> list[str]:
    return [repr(t) for t in trades]


def assert_same(spec: ReplaySpec, candles: CandleSeries, *, label: bool = True) -> Replay:
    expected = replay_reference(spec, candles)
    got = replay(spec, candles)
    assert got == expected
    assert trade_text(got.trades) == trade_text(expected.trades)
    assert repr((got.realized_profit, got.held_qty, got.held_cost)) == repr(
        (expected.realized_profit, expected.held_qty, expected.held_cost)
    )
    assert got.visited <= expected.visited
    assert repr(figures(spec, candles, got)) == repr(figures(spec, candles, expected))
    if label:
        trades = len(got.trades)
        event(
            f"trades: {'0' if not trades else '1-9' if trades < 10 else '10-99' if trades < 100 else '100+'}"
        )
        event(f"stopped: {got.stop_reason}")
    return got


def grid(rules: MarketRules, lower: Decimal, upper: Decimal, count: int, finer: bool) -> tuple[Decimal, ...]:
    prices = levels(lower, upper, count, rules=rules)
    if finer:  # levels off the candles' grid: one more decimal than any candle price
        nudge = D("0.001") if rules.tick_size is not None else D("0.5")
        prices = [p + nudge for p in prices]
    return tuple(prices)


# --- random price paths -----------------------------------------------------------------------------------


@st.composite
def random_case(draw: st.DrawFn) -> dict[str, object]:
    venue = draw(st.sampled_from(["binance", "upbit"]))
    candles = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0, 0, 0, -15, 15, -40, 40]),  # open vs previous close, basis points
                st.integers(min_value=-150, max_value=150),  # close vs open
                st.integers(min_value=0, max_value=100),  # wick above
                st.integers(min_value=0, max_value=100),  # wick below
                st.sampled_from([1, 1, 1, 1, 2, 90]),  # minutes to the next candle (gaps)
            ),
            min_size=1,
            max_size=70,
        )
    )
    return {
        "venue": venue,
        "candles": candles,
        "start_minute": draw(st.integers(min_value=0, max_value=2 * 1440)),
        "below": draw(st.integers(min_value=30, max_value=500)),  # lower price, bps under the start
        "above": draw(st.integers(min_value=30, max_value=500)),
        "count": draw(st.integers(min_value=1, max_value=30)),
        "amount": AMOUNTS[venue][min(draw(st.sampled_from(AMOUNT_PICKS)), len(AMOUNTS[venue]) - 1)],
        "fee": draw(st.sampled_from([None, None, "0", "0.00075"])),
        "stop_at_max": draw(st.booleans()),
        "upper_inside": draw(st.booleans()),
        "finer": draw(st.integers(min_value=0, max_value=9)) == 0,
    }


def _round(rules: MarketRules, price: Decimal, direction: Rounding) -> Decimal:
    return rules.round_price(price, direction)


Move = tuple[int, int, int, int, int]


def random_series(rules: MarketRules, start: Decimal, moves: list[Move], minute: int) -> CandleSeries:
    rows: list[tuple[int, Decimal, Decimal, Decimal, Decimal]] = []
    stamp = DAY_START + minute * MINUTE
    close = start
    for gap, body, up, down, step in moves:
        open_ = _round(rules, close * (1 + D(gap) / 10_000), "nearest")
        close = _round(rules, open_ * (1 + D(body) / 10_000), "nearest")
        high = _round(rules, max(open_, close) * (1 + D(up) / 10_000), "up")
        low = _round(rules, min(open_, close) * (1 - D(down) / 10_000), "down")
        rows.append((stamp, open_, high, low, close))
        stamp += step * MINUTE
    return CandleSeries.from_rows(rows)


@settings(SETTINGS, max_examples=300)
@given(case=random_case())
def test_random_paths(binance: MarketRules, upbit: MarketRules, case: dict[str, object]) -> None:
    venue = str(case["venue"])
    rules = rules_for(venue, binance, upbit, case["fee"])  # type: ignore[arg-type]
    start = START_PRICE[venue]
    candles = random_series(rules, start, case["candles"], case["start_minute"])  # type: ignore[arg-type]
    lower = start * (1 - D(case["below"]) / 10_000)  # type: ignore[arg-type]
    upper = start * (1 + D(case["above"]) / 10_000)  # type: ignore[arg-type]
    top = max(candles.high)
    upper_price = min(upper, top) if case["upper_inside"] else upper
    count = min(int(case["count"]), grid_count(lower, upper, D("0.05")))  # type: ignore[call-overload]
    spec = ReplaySpec(
        levels=grid(rules, lower, upper, max(count, 1), bool(case["finer"])),
        upper_price=upper_price,
        order_amount=case["amount"],  # type: ignore[arg-type]
        stop_at_max=bool(case["stop_at_max"]),
        rules=rules,
    )
    assert_same(spec, candles)


# --- windows of the real December 2024 minutes ------------------------------------------------------------


def krw(rules: MarketRules, candles: CandleSeries) -> CandleSeries:
    """The simulator's KRW market: USDT prices × 1,400 on Upbit's price units (open/close nearest)."""
    rows = []
    directions: tuple[Rounding, ...] = ("nearest", "up", "down", "nearest")
    for i, stamp in enumerate(candles.timestamps.tolist()):
        o, h, low, c = (
            rules.round_price(p * KRW_PER_USDT, d)
            for p, d in zip(
                (candles.open[i], candles.high[i], candles.low[i], candles.close[i]), directions, strict=True
            )
        )
        rows.append((stamp, o, max(h, o, c), min(low, o, c), c))
    return CandleSeries.from_rows(rows)


@settings(SETTINGS, max_examples=80)
@given(
    venue=st.sampled_from(["binance", "upbit"]),
    start=st.integers(min_value=0, max_value=41_760),
    length=st.sampled_from([1, 2, 30, 240, 720, 1200]),
    pct=st.sampled_from(["0.05", "0.1", "0.1", "0.2", "0.5"]),
    margin=st.sampled_from(["0", "0.002", "0.01"]),
    amount=st.sampled_from(AMOUNT_PICKS),
    stop_at_max=st.booleans(),
    upper_inside=st.booleans(),
    fee=st.sampled_from([None, "0.0002"]),
)
def test_real_candle_windows(
    month: CandleSeries,
    binance: MarketRules,
    upbit: MarketRules,
    venue: str,
    start: int,
    length: int,
    pct: str,
    margin: str,
    amount: int,
    stop_at_max: bool,
    upper_inside: bool,
    fee: str | None,
) -> None:
    rules = rules_for(venue, binance, upbit, fee)
    window = month.window(start, min(start + length, len(month)))
    candles = window if venue == "binance" else krw(rules, window)
    lowest, highest = min(candles.low), max(candles.high)
    lower, upper = lowest * (1 - D(margin)), highest * (1 + D(margin))
    if lower >= upper or rules.round_price(lower, "up") >= rules.round_price(upper, "down"):
        upper = lower * D("1.01")
    count = max(1, min(200, grid_count(lower, upper, D(pct)) if upper / lower > 1 + D(pct) / 100 else 1))
    # With upper_inside, stopAtMax triggers at the window's midpoint high (if the bot gets there).
    middle = max(candles.high[: max(1, len(candles) // 2)])
    spec = ReplaySpec(
        levels=tuple(levels(lower, upper, count, rules=rules)),
        upper_price=middle if upper_inside else upper,
        order_amount=AMOUNTS[venue][amount],
        stop_at_max=stop_at_max,
        rules=rules,
    )
    assert_same(spec, candles)


def test_a_whole_month_both_ways(month: CandleSeries, binance: MarketRules) -> None:
    lower, upper = D(90_000), D(108_000)
    count = grid_count(lower, upper, D("0.73"))
    spec = ReplaySpec(tuple(levels(lower, upper, count, rules=binance)), upper, D(100), False, binance)
    got = assert_same(spec, month, label=False)
    assert spec.grid_count == 25
    assert len(got.trades) > 400
    assert got.visited < len(month) // 50  # the point of the fast path: it visits under 2 % of the candles


# --- the grid options: the fast replay still gives the reference's Replay --------------------------------


@st.composite
def grid_options(draw: st.DrawFn) -> dict[str, object]:
    """Options in bps of the start price (None: off)."""
    return {
        "trigger_price": draw(st.one_of(st.none(), st.integers(min_value=-200, max_value=200))),
        "take_profit_price": draw(st.one_of(st.none(), st.integers(min_value=20, max_value=400))),
        "stop_loss_price": draw(st.one_of(st.none(), st.integers(min_value=-400, max_value=-20))),
        "sell_base_on_stop": draw(st.booleans()),
        "trailing_up": draw(st.booleans()),
        "trailing_up_limit": draw(st.one_of(st.none(), st.integers(min_value=0, max_value=600))),
        "kind": draw(st.sampled_from(["geometric", "arithmetic"])),
    }


def with_grid_options(spec: ReplaySpec, start: Decimal, opts: dict[str, object]) -> ReplaySpec:
    rules = spec.rules
    prices = {
        name: None
        if opts[name] is None
        else rules.round_price(start * (1 + D(opts[name]) / 10_000), "nearest")  # type: ignore[arg-type]
        for name in ("trigger_price", "take_profit_price", "stop_loss_price", "trailing_up_limit")
    }
    return dataclasses.replace(
        spec,
        **prices,  # type: ignore[arg-type]
        sell_base_on_stop=bool(opts["sell_base_on_stop"]),
        trailing_up=bool(opts["trailing_up"]),
        kind=opts["kind"],  # type: ignore[arg-type]
    )


@settings(SETTINGS, max_examples=300)
@given(case=random_case(), opts=grid_options())
def test_random_paths_with_options(
    binance: MarketRules, upbit: MarketRules, case: dict[str, object], opts: dict[str, object]
) -> None:
    venue = str(case["venue"])
    rules = rules_for(venue, binance, upbit, case["fee"])  # type: ignore[arg-type]
    start = START_PRICE[venue]
    candles = random_series(rules, start, case["candles"], case["start_minute"])  # type: ignore[arg-type]
    lower = start * (1 - D(case["below"]) / 10_000)  # type: ignore[arg-type]
    upper = start * (1 + D(case["above"]) / 10_000)  # type: ignore[arg-type]
    count = min(int(case["count"]), grid_count(lower, upper, D("0.05")))  # type: ignore[call-overload]
    spec = ReplaySpec(
        levels=grid(rules, lower, upper, max(count, 1), bool(case["finer"])),
        upper_price=upper,
        order_amount=case["amount"],  # type: ignore[arg-type]
        stop_at_max=bool(case["stop_at_max"]),
        rules=rules,
    )
    got = assert_same(with_grid_options(spec, start, opts), candles)
    event(f"trailed: {min(len(got.state.added_levels), 3)}")
    event(f"market sells: {got.state.market_seq}")


@settings(SETTINGS, max_examples=40)
@given(
    venue=st.sampled_from(["binance", "upbit"]),
    start=st.integers(min_value=0, max_value=41_000),
    length=st.sampled_from([30, 240, 720]),
    amount=st.sampled_from(AMOUNT_PICKS),
    opts=grid_options(),
)
def test_real_candle_windows_with_options(
    month: CandleSeries,
    binance: MarketRules,
    upbit: MarketRules,
    venue: str,
    start: int,
    length: int,
    amount: int,
    opts: dict[str, object],
) -> None:
    rules = rules_for(venue, binance, upbit, None)
    window = month.window(start, min(start + length, len(month)))
    candles = window if venue == "binance" else krw(rules, window)
    first = candles.open[0]
    lower, upper = first * D("0.99"), first * D("1.01")
    spec = ReplaySpec(
        levels=tuple(levels(lower, upper, 20, rules=rules)),
        upper_price=upper,
        order_amount=AMOUNTS[venue][amount],
        stop_at_max=False,
        rules=rules,
    )
    got = assert_same(with_grid_options(spec, first, opts), candles)
    event(f"trailed: {min(len(got.state.added_levels), 3)}")
