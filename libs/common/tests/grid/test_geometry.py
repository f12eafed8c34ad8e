"""Grid geometry: exact counts at exact powers, levels on the tick grid, collisions dropped, validation."""

from __future__ import annotations

from decimal import Decimal, localcontext
from itertools import pairwise

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from common.errors import ErrorCode
from common.grid import (
    MAX_GRID_COUNT,
    GridError,
    MarketRules,
    grid_count,
    investment_amount,
    levels,
    plan_grid,
    validate_order_amount,
)

D = Decimal


@pytest.mark.parametrize(
    ("lower", "upper", "pct", "count"),
    [
        ("100", "121", "10", 2),  # 1.1² = 1.21 exactly: floating point says 1.9999…
        ("100", "133.1", "10", 3),
        ("100", "146.41", "10", 4),
        ("100", "120.9999", "10", 1),
        ("100", "110", "10", 1),
        ("100", "109.99", "10", 0),
        ("1", "1024", "100", 10),
        ("1", "1023.99", "100", 9),
        ("3", "3.0301", "0.5", 2),  # 1.005² = 1.010025
        ("50000000", "70000000", "2", 16),  # API.md's example
        ("1", "2", "0.5", 138),
    ],
)
def test_grid_count(lower: str, upper: str, pct: str, count: int) -> None:
    assert grid_count(D(lower), D(upper), D(pct)) == count


def test_grid_count_exact_powers_of_many_steps() -> None:
    for pct in ("1", "2", "2.5", "0.1", "7"):
        step = 1 + D(pct) / 100
        for k in (1, 5, 37, 200):
            with localcontext(prec=2000):  # exact: 1.025^200 has 600 decimals
                upper = D(1000) * step**k
                below = upper - D("1e-500")
            assert grid_count(D(1000), upper, D(pct)) == k
            assert grid_count(D(1000), below, D(pct)) == k - 1


@pytest.mark.parametrize(
    ("lower", "upper", "pct"),
    [("0", "10", "1"), ("-1", "10", "1"), ("10", "10", "1"), ("11", "10", "1"), ("1", "2", "0"), ("1", "2", "-1"),
     ("NaN", "2", "1"), ("1", "Infinity", "1"), ("1", "2", "NaN")],
)  # fmt: skip
def test_invalid_ranges(lower: str, upper: str, pct: str) -> None:
    with pytest.raises(GridError) as caught:
        grid_count(D(lower), D(upper), D(pct))
    assert caught.value.code is ErrorCode.INVALID_PRICE_RANGE


def test_spec_example_upbit(upbit: MarketRules) -> None:
    plan = plan_grid(D(50_000_000), D(70_000_000), D(2), D(10_000), upbit)
    assert plan.grid_count == 16
    assert plan.investment_amount == 160_000
    assert plan.levels[0] == 50_000_000
    assert plan.levels[-1] == 70_000_000
    assert all(upbit.is_valid_price(p) for p in plan.levels)
    assert plan.levels[1] == 51_063_000  # 50M·1.4^(1/16) = 51,062,7xx → nearest 1,000


def test_too_few_and_too_many_levels(upbit: MarketRules) -> None:
    with pytest.raises(GridError) as caught:
        plan_grid(D(50_000_000), D(50_500_000), D(2), D(10_000), upbit)
    assert caught.value.code is ErrorCode.INVALID_PRICE_RANGE
    assert caught.value.details["gridCount"] == 0
    with pytest.raises(GridError) as caught:
        plan_grid(D(10_000_000), D(100_000_000), D(1), D(10_000), upbit)
    assert caught.value.code is ErrorCode.INVALID_PRICE_RANGE
    assert caught.value.details["gridCount"] == 231
    assert caught.value.details["max"] == MAX_GRID_COUNT
    assert caught.value.status == 400


def test_arithmetic_levels(binance: MarketRules) -> None:
    assert levels(D(100), D(200), 4, "arithmetic", rules=binance) == [D(100), D(125), D(150), D(175), D(200)]
    three = levels(D(100), D(200), 3, "arithmetic", rules=binance)
    assert three == [D(100), D("133.33"), D("166.67"), D(200)]


def test_colliding_levels_are_dropped() -> None:
    whole = MarketRules.binance(
        base="X", quote="USDT", tick_size=D(1), lot_step=D("0.001"), min_qty=D("0.001"), min_notional=D(1)
    )
    count = grid_count(D(100), D(105), D("0.5"))
    assert count == 9
    grid = levels(D(100), D(105), count, rules=whole)
    assert grid == [D(100), D(101), D(102), D(103), D(104), D(105)]
    plan = plan_grid(D(100), D(105), D("0.5"), D(10), whole)
    assert plan.grid_count == 5
    assert plan.formula_count == 9
    assert plan.investment_amount == 50


def test_ends_stay_inside_the_range(binance: MarketRules) -> None:
    grid = levels(D("100.005"), D("100.999"), 3, rules=binance)
    assert grid[0] == D("100.01")
    assert grid[-1] == D("100.99")
    with pytest.raises(GridError, match="narrower"):
        levels(D("100.001"), D("100.009"), 1, rules=binance)


def test_exchange_price_limits(binance: MarketRules) -> None:
    with pytest.raises(GridError, match="maximum"):
        levels(D(900_000), D(2_000_000), 10, rules=binance)


def test_order_amount_minimums(upbit: MarketRules, binance: MarketRules) -> None:
    grid = levels(D(50_000_000), D(70_000_000), 16, rules=upbit)
    with pytest.raises(GridError) as caught:
        validate_order_amount(D(4_999), grid, upbit)
    assert caught.value.code is ErrorCode.INVALID_ORDER_AMOUNT
    assert caught.value.details["minimum"] == 5000
    # 5,000 KRW at 50,000,000 buys 0.00009995 BTC (the fee stays inside the amount): 4,997.5 KRW < 5,000.
    with pytest.raises(GridError, match="buy"):
        validate_order_amount(D(5_000), grid, upbit)
    validate_order_amount(D(5_010), grid, upbit)
    # On Binance 5 USDT buys 0.00005 BTC at 100,000, but the fee leaves 0.00004995: 0.00004 to sell.
    grid = levels(D(100_000), D(110_000), 4, rules=binance)
    with pytest.raises(GridError, match="sell"):
        validate_order_amount(D(5), grid, binance)
    validate_order_amount(D(7), grid, binance)
    with pytest.raises(GridError):
        validate_order_amount(D(0), grid, binance)


def test_investment_amount() -> None:
    assert investment_amount(16, D(10_000)) == 160_000


@st.composite
def ranges(draw: st.DrawFn) -> tuple[Decimal, Decimal, Decimal]:
    lower = draw(st.decimals(min_value=D("0.5"), max_value=D(90_000_000), places=2))
    spread = draw(st.integers(min_value=1, max_value=300))  # upper = lower·(1 + spread%)
    pct = draw(st.sampled_from([D("0.1"), D("0.3"), D("0.5"), D(1), D("1.7"), D(2), D(5), D(10)]))
    return lower, lower * (1 + D(spread) / 100), pct


@settings(max_examples=200, derandomize=True, database=None)
@given(bounds=ranges(), kind=st.sampled_from(["geometric", "arithmetic"]))
def test_level_properties(
    upbit: MarketRules, binance: MarketRules, bounds: tuple[Decimal, Decimal, Decimal], kind: str
) -> None:
    lower, upper, pct = bounds
    count = grid_count(lower, upper, pct)
    assume(1 <= count <= MAX_GRID_COUNT)
    for rules in (upbit, binance):
        if rules.max_price is not None and upper > rules.max_price:
            continue
        if rules.round_price(lower, "up") >= rules.round_price(upper, "down"):
            with pytest.raises(GridError, match="narrower"):
                levels(lower, upper, count, kind, rules=rules)  # type: ignore[arg-type]
            continue
        grid = levels(lower, upper, count, kind, rules=rules)  # type: ignore[arg-type]
        assert all(a < b for a, b in pairwise(grid))
        assert lower <= grid[0] and grid[-1] <= upper
        assert all(rules.is_valid_price(p) for p in grid)
        assert 1 <= len(grid) - 1 <= count


def test_absurdly_long_inputs_stay_cheap() -> None:
    pct = D("1." + "3" * 5000)
    assert grid_count(D(100), D(1000), pct) == 173  # ln 10 / ln 1.01333…
    assert grid_count(D(1), D(10) ** 30, D("0.001")) > MAX_GRID_COUNT
