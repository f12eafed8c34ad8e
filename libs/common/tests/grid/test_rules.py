"""Exchange rounding: Upbit's KRW price-unit table by band, Binance filters from the wire sample."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.grid import UPBIT_KRW_PRICE_UNITS, MarketRules
from exchange_sim import markets

D = Decimal

# (price, unit in force) at and just below every band bound of the 2025-07-31 table.
UPBIT_UNITS = [
    ("3000000", "1000"),
    ("2000000", "1000"),
    ("1999999", "1000"),
    ("1000000", "1000"),
    ("999999", "500"),
    ("500000", "500"),
    ("499999", "100"),
    ("100000", "100"),
    ("99999", "50"),
    ("50000", "50"),
    ("49999", "10"),
    ("10000", "10"),
    ("9999", "5"),
    ("5000", "5"),
    ("4999", "1"),
    ("1000", "1"),
    ("999", "1"),
    ("100", "1"),
    ("99.9", "0.1"),
    ("10", "0.1"),
    ("9.99", "0.01"),
    ("1", "0.01"),
    ("0.999", "0.001"),
    ("0.1", "0.001"),
    ("0.0999", "0.0001"),
    ("0.01", "0.0001"),
    ("0.00999", "0.00001"),
    ("0.001", "0.00001"),
    ("0.000999", "0.000001"),
    ("0.0001", "0.000001"),
    ("0.0000999", "0.0000001"),
    ("0.00001", "0.0000001"),
    ("0.00000999", "0.00000001"),
]


@pytest.mark.parametrize(("price", "unit"), UPBIT_UNITS)
def test_upbit_unit_per_band(upbit: MarketRules, price: str, unit: str) -> None:
    assert upbit.tick_at(D(price)) == D(unit)


@pytest.mark.parametrize(
    ("price", "down", "up", "nearest"),
    [
        ("51234567", "51234000", "51235000", "51235000"),
        ("51234499", "51234000", "51235000", "51234000"),
        ("51234500", "51234000", "51235000", "51235000"),  # a tie rounds up
        ("1999600", "1999000", "2000000", "2000000"),
        ("999800", "999500", "1000000", "1000000"),  # ceiling lands on the next band's bound
        ("99990", "99950", "100000", "100000"),
        ("50025", "50000", "50050", "50050"),
        ("9998", "9995", "10000", "10000"),
        ("4999.5", "4999", "5000", "5000"),
        ("123.45", "123", "124", "123"),
        ("12.345", "12.3", "12.4", "12.3"),
        ("5000000", "5000000", "5000000", "5000000"),  # on the grid: unchanged
    ],
)
def test_upbit_rounding(upbit: MarketRules, price: str, down: str, up: str, nearest: str) -> None:
    p = D(price)
    assert upbit.round_price(p, "down") == D(down)
    assert upbit.round_price(p, "up") == D(up)
    assert upbit.round_price(p, "nearest") == D(nearest)
    for result in (D(down), D(up)):
        assert upbit.is_valid_price(result)


def test_upbit_invalid_prices(upbit: MarketRules) -> None:
    assert not upbit.is_valid_price(D("51234500"))
    assert not upbit.is_valid_price(D("750250"))
    assert upbit.is_valid_price(D("750500"))
    assert not upbit.is_valid_price(D(0))
    with pytest.raises(ValueError, match="positive"):
        upbit.round_price(D(-1), "down")


def test_binance_filters_from_wire_sample(binance: MarketRules) -> None:
    assert binance.base == "BTC"
    assert binance.quote == "USDT"
    assert binance.tick_size == D("0.01")
    assert binance.lot_step == D("0.00001")
    assert binance.min_qty == D("0.00001")
    assert binance.min_notional == D(5)
    assert binance.min_price == D("0.01")
    assert binance.max_price == D(1000000)
    assert binance.maker_fee == binance.taker_fee == D("0.001")
    assert binance.buy_fee_in_base
    assert str(binance.round_price(D("96466.117"), "down")) == "96466.11"
    assert str(binance.round_price(D("96466.111"), "up")) == "96466.12"
    assert str(binance.floor_qty(D("0.000129999"))) == "0.00012"
    assert binance.floor_qty(D("0.000009")) == 0


def test_binance_rules_from_ccxt_parse_market(btcusdt_info: dict[str, Any], binance: MarketRules) -> None:
    client = ccxt.binance()
    # fetch_markets loads these first; parse_market reads them.
    client.options["crossMarginPairsData"] = []
    client.options["isolatedMarginPairsData"] = []
    market = client.parse_market(btcusdt_info)
    assert MarketRules.from_ccxt_market(market, "binance") == binance


def test_binance_fallback_to_ccxt_precision_and_limits(btcusdt_market: dict[str, Any]) -> None:
    bare = {**btcusdt_market, "info": {"symbol": "BTCUSDT", "filters": []}}
    rules = MarketRules.from_ccxt_market(bare)
    assert (rules.tick_size, rules.lot_step, rules.min_qty, rules.min_notional) == (
        D("0.01"),
        D("0.00001"),
        D("0.00001"),
        D(5),
    )


def test_binance_coarse_tick_has_no_exponent_form(btcusdt_market: dict[str, Any]) -> None:
    info = dict(btcusdt_market["info"])
    info["filters"] = [{"filterType": "PRICE_FILTER", "minPrice": "10", "maxPrice": "0", "tickSize": "10.00"}]
    rules = MarketRules.from_ccxt_market({**btcusdt_market, "info": info})
    assert str(rules.round_price(D("96466"), "down")) == "96460"
    assert rules.max_price is None


def test_upbit_from_ccxt_market() -> None:
    market = {"id": "KRW-BTC", "symbol": "BTC/KRW", "base": "BTC", "quote": "KRW", "maker": 0.0005,
              "taker": 0.0005, "limits": {"cost": {"min": None}}, "info": {"market": "KRW-BTC"}}  # fmt: skip
    rules = MarketRules.from_ccxt_market(market)
    assert rules == MarketRules.upbit_krw(base="BTC")
    assert rules.min_notional == 5000
    with pytest.raises(ValueError, match="KRW"):
        MarketRules.from_ccxt_market({**market, "id": "BTC-ETH", "quote": "BTC"})
    with pytest.raises(ValueError, match="exchange"):
        MarketRules.from_ccxt_market({"id": "ETHBTC", "info": {}})


def test_minimums(upbit: MarketRules, binance: MarketRules) -> None:
    assert upbit.meets_minimum(D(50_000_000), D("0.0001"))  # exactly 5,000 KRW
    assert not upbit.meets_minimum(D(50_000_000), D("0.00009999"))
    assert binance.meets_minimum(D(100_000), D("0.00005"))
    assert not binance.meets_minimum(D(99_999), D("0.00005"))
    assert not binance.meets_minimum(D(1_000_000), D(0))


def test_buy_qty_keeps_a_quote_fee_inside_the_order_amount(upbit: MarketRules, binance: MarketRules) -> None:
    qty = upbit.buy_qty(D(10_000), D(50_000_000))
    assert qty == D("0.00019990")
    assert qty * D(50_000_000) * (1 + upbit.maker_fee) <= 10_000
    # Binance takes the buy's fee in BTC, so the whole amount buys and the sell is net of the fee.
    assert binance.buy_qty(D(10), D(100_000)) == D("0.0001")
    assert binance.sell_qty_after_buy(D("0.0001")) == D("0.00009")


def test_rules_round_trip_through_json(upbit: MarketRules, binance: MarketRules) -> None:
    for rules in (upbit, binance):
        assert MarketRules.from_dict(rules.to_dict()) == rules


def test_rules_refuse_inconsistent_definitions() -> None:
    common: dict[str, Any] = {"base": "BTC", "quote": "USDT", "lot_step": D("0.1"), "min_qty": D(0),
                              "min_notional": D(0), "maker_fee": D(0), "taker_fee": D(0)}  # fmt: skip
    with pytest.raises(ValueError, match="exactly one"):
        MarketRules(**common)
    with pytest.raises(ValueError, match="ordered"):
        MarketRules(**common, price_units=((D(0), D(1)), (D(10), D(1))))
    with pytest.raises(ValueError, match="fee"):
        MarketRules(**{**common, "maker_fee": D(1)}, tick_size=D(1))


def test_every_price_of_our_table_is_valid_in_the_simulator(upbit: MarketRules) -> None:
    # Our table is Upbit's current one; the simulator's is the 2024-10 one, finer in several bands. Orders
    # on our grid must pass the simulator's check, so each of our units must be a multiple of its unit.
    probes = [lower for lower, _ in UPBIT_KRW_PRICE_UNITS if lower > 0]
    probes += [p * D(k) / 7 for p in probes for k in (1, 3, 5, 9, 13, 20, 69)]
    for price in probes:
        ours, theirs = upbit.tick_at(price), markets.upbit_krw_unit(price)
        assert ours % theirs == 0, (price, ours, theirs)
        for direction in ("down", "up", "nearest"):
            rounded = upbit.round_price(price, direction)
            if rounded > 0:
                assert rounded % markets.upbit_krw_unit(rounded) == 0, (price, direction, rounded)


prices = st.decimals(min_value=D("0.000001"), max_value=D("5000000000"), places=8, allow_nan=False)


@settings(max_examples=300, derandomize=True, database=None)
@given(price=prices, other=prices)
def test_rounding_properties(
    upbit: MarketRules, binance: MarketRules, price: Decimal, other: Decimal
) -> None:
    for rules in (upbit, binance):
        down, up = rules.round_price(price, "down"), rules.round_price(price, "up")
        nearest = rules.round_price(price, "nearest")
        assert down <= price <= up
        assert up == price or up - price <= rules.tick_at(up)
        assert rules.is_valid_price(up) or (rules.max_price is not None and up > rules.max_price)
        assert (
            down == 0
            or rules.is_valid_price(down)
            or (rules.max_price is not None and down > rules.max_price)
        )
        assert nearest in (down, up)
        low, high = sorted((price, other))
        for direction in ("down", "up", "nearest"):
            assert rules.round_price(low, direction) <= rules.round_price(high, direction)  # type: ignore[arg-type]
