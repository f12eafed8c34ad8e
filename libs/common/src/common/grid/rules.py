"""One market's exchange rules: price ticks, lot step, minimums and fees, all in Decimal.

Binance lists its rules per symbol (exchangeInfo filters: PRICE_FILTER tickSize, LOT_SIZE stepSize/minQty,
NOTIONAL minNotional). Upbit's KRW market has one price-unit table for every coin, a 5,000 KRW minimum order
total and 8-decimal volumes; ccxt's Upbit markets carry none of that, so it lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, InvalidOperation, localcontext
from itertools import pairwise
from typing import Any, Literal

Rounding = Literal["down", "up", "nearest"]
PriceUnits = tuple[tuple[Decimal, Decimal], ...]

# Upbit KRW market price units (호가 단위), the table in force since 2025-07-31
# (docs.upbit.com/kr/docs/krw-market-info, changelog krw_tick_unit_change_250731): (band's lower bound
# inclusive, unit), highest band first. Every band's lower bound is a multiple of its own unit and of the
# unit below it, so flooring stays in its band and ceiling can only land exactly on the next bound.
# The exchange simulator still uses the 2024-10 table (finer units in several bands); every unit here is a
# multiple of the simulator's unit at the same price, so each price valid here is valid there too.
UPBIT_KRW_PRICE_UNITS: PriceUnits = (
    (Decimal(2_000_000), Decimal(1000)),
    (Decimal(1_000_000), Decimal(1000)),
    (Decimal(500_000), Decimal(500)),
    (Decimal(100_000), Decimal(100)),
    (Decimal(50_000), Decimal(50)),
    (Decimal(10_000), Decimal(10)),
    (Decimal(5_000), Decimal(5)),
    (Decimal(1_000), Decimal(1)),
    (Decimal(100), Decimal(1)),
    (Decimal(10), Decimal("0.1")),
    (Decimal(1), Decimal("0.01")),
    (Decimal("0.1"), Decimal("0.001")),
    (Decimal("0.01"), Decimal("0.0001")),
    (Decimal("0.001"), Decimal("0.00001")),
    (Decimal("0.0001"), Decimal("0.000001")),
    (Decimal("0.00001"), Decimal("0.0000001")),
    (Decimal(0), Decimal("0.00000001")),
)
UPBIT_KRW_MIN_TOTAL = Decimal(5000)
UPBIT_VOLUME_STEP = Decimal("0.00000001")
UPBIT_KRW_FEE = Decimal("0.0005")
BINANCE_DEFAULT_FEE = Decimal("0.001")

# Exchange-sized numbers (≤ 20 integer digits, ≤ 18 decimals) divide and multiply exactly at this precision,
# whatever the caller's thread-local decimal context says.
_CTX = Context(prec=60)


def _dec(value: object, name: str) -> Decimal:
    """A finite Decimal from a ccxt/JSON value (floats go through str so 1e-05 stays 0.00001)."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or value is None:
        raise ValueError(f"{name} is missing")
    else:
        try:
            result = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"{name} is not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{name} is not finite: {value!r}")
    return result


def _units_from_json(raw: object) -> PriceUnits:
    if not isinstance(raw, list | tuple):
        raise ValueError("price_units must be a list of [lower, unit] pairs")
    return tuple((_dec(pair[0], "price unit bound"), _dec(pair[1], "price unit")) for pair in raw)


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Price, quantity and fee rules of one spot market (either a fixed `tick_size` or banded `price_units`)."""

    base: str
    quote: str
    lot_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    tick_size: Decimal | None = None
    price_units: PriceUnits | None = None
    # Binance takes a buy's fee from the base asset received (unless paid in BNB); Upbit charges KRW both ways.
    buy_fee_in_base: bool = False
    min_price: Decimal | None = None
    max_price: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.tick_size is None) == (self.price_units is None):
            raise ValueError("exactly one of tick_size and price_units is required")
        if self.tick_size is not None and not self.tick_size > 0:
            raise ValueError("tick_size must be positive")
        if self.price_units is not None:
            bounds = [lower for lower, _ in self.price_units]
            if not bounds or bounds[-1] != 0 or any(a <= b for a, b in pairwise(bounds)):
                raise ValueError("price_units must be ordered highest band first and end with a 0 bound")
            if any(not unit > 0 for _, unit in self.price_units):
                raise ValueError("price units must be positive")
        if not self.lot_step > 0:
            raise ValueError("lot_step must be positive")
        if self.min_qty < 0 or self.min_notional < 0:
            raise ValueError("minimums cannot be negative")
        if not (0 <= self.maker_fee < 1 and 0 <= self.taker_fee < 1):
            raise ValueError("fee rates must be in [0, 1)")
        if not self.base or not self.quote:
            raise ValueError("base and quote currencies are required")

    # --- constructors -------------------------------------------------------------------------------------

    @classmethod
    def binance(
        cls,
        *,
        base: str,
        quote: str,
        tick_size: Decimal,
        lot_step: Decimal,
        min_qty: Decimal,
        min_notional: Decimal,
        maker_fee: Decimal = BINANCE_DEFAULT_FEE,
        taker_fee: Decimal = BINANCE_DEFAULT_FEE,
        min_price: Decimal | None = None,
        max_price: Decimal | None = None,
    ) -> MarketRules:
        """Rules of a Binance spot symbol from its filter values."""
        return cls(
            base=base,
            quote=quote,
            lot_step=lot_step,
            min_qty=min_qty,
            min_notional=min_notional,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
            tick_size=tick_size,
            buy_fee_in_base=True,
            min_price=min_price,
            max_price=max_price,
        )

    @classmethod
    def upbit_krw(
        cls,
        *,
        base: str,
        maker_fee: Decimal = UPBIT_KRW_FEE,
        taker_fee: Decimal = UPBIT_KRW_FEE,
        min_total: Decimal = UPBIT_KRW_MIN_TOTAL,
    ) -> MarketRules:
        """Rules of an Upbit KRW market: the KRW price-unit table, 8-decimal volumes, fees in KRW."""
        return cls(
            base=base,
            quote="KRW",
            lot_step=UPBIT_VOLUME_STEP,
            min_qty=UPBIT_VOLUME_STEP,
            min_notional=min_total,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
            price_units=UPBIT_KRW_PRICE_UNITS,
            buy_fee_in_base=False,
        )

    @classmethod
    def from_ccxt_market(cls, market: Mapping[str, Any], exchange: str | None = None) -> MarketRules:
        """Rules from a ccxt market structure (Binance filters from `info`; Upbit's KRW table built in)."""
        venue = exchange or _guess_exchange(market)
        if venue == "binance":
            return _binance_from_ccxt(market)
        if venue == "upbit":
            return _upbit_from_ccxt(market)
        raise ValueError(f"no market rules for exchange {venue!r}")

    # --- prices -------------------------------------------------------------------------------------------

    def tick_at(self, price: Decimal) -> Decimal:
        """The price unit that applies at this price."""
        if self.tick_size is not None:
            return self.tick_size
        assert self.price_units is not None
        for lower, unit in self.price_units:
            if price >= lower:
                return unit
        return self.price_units[-1][1]

    def is_valid_price(self, price: Decimal) -> bool:
        """True when the exchange accepts this price (on the tick grid, inside min/max price)."""
        if not price.is_finite() or price <= 0:
            return False
        if self.min_price is not None and price < self.min_price:
            return False
        if self.max_price is not None and price > self.max_price:
            return False
        with localcontext(_CTX):
            return price % self.tick_at(price) == 0

    def round_price(self, price: Decimal, direction: Rounding) -> Decimal:
        """The valid price below ("down"), above ("up") or nearest to ("nearest", ties up) a price."""
        if not price.is_finite() or price <= 0:
            raise ValueError(f"price must be positive: {price}")
        with localcontext(_CTX):
            down = _floor_to(price, self.tick_at(price))
            if direction == "down":
                return down
            up = _ceil_to(price, self.tick_at(price))
            # Ceiling may land on the next band's lower bound; that bound is on both bands' grids,
            # but re-round with the coarser unit anyway so no table can yield an invalid price.
            coarser = self.tick_at(up)
            if up % coarser != 0:
                up = _ceil_to(up, coarser)
            if direction == "up":
                return up
            if direction != "nearest":
                raise ValueError(f"unknown rounding direction {direction!r}")
            if down == 0:
                return up
            return down if price - down < up - price else up

    # --- quantities ---------------------------------------------------------------------------------------

    def floor_qty(self, qty: Decimal) -> Decimal:
        """The quantity rounded down to the lot step (0 for anything below one step)."""
        if qty <= 0:
            return Decimal(0) * self.lot_step
        with localcontext(_CTX):
            return _floor_to(qty, self.lot_step)

    def meets_minimum(self, price: Decimal, qty: Decimal) -> bool:
        """True when a limit order of qty at price passes the exchange's minimum quantity and notional."""
        with localcontext(_CTX):
            return qty > 0 and qty >= self.min_qty and qty * price >= self.min_notional

    @property
    def buy_reserve_fee(self) -> Decimal:
        """The fee rate assumed when sizing a buy: the higher one, as a resting buy may still fill as taker."""
        return max(self.maker_fee, self.taker_fee)

    def buy_qty(self, order_amount: Decimal, price: Decimal) -> Decimal:
        """Base quantity a grid buy of `order_amount` quote at `price` orders, rounded down to the lot step.

        Where the fee is charged in quote (Upbit locks price·volume·(1+fee) for a bid), the fee is inside
        the order amount, so a slot never spends more than `order_amount` and the bot's investment covers
        every open buy including fees.
        """
        with localcontext(_CTX):
            if self.buy_fee_in_base:
                return self.floor_qty(order_amount / price)
            return self.floor_qty(order_amount / (price * (1 + self.buy_reserve_fee)))

    def sell_qty_after_buy(self, bought_qty: Decimal) -> Decimal:
        """What a full buy of `bought_qty` can sell: net of a base-asset fee, rounded down to the lot step."""
        with localcontext(_CTX):
            if self.buy_fee_in_base:
                return self.floor_qty(bought_qty * (1 - self.buy_reserve_fee))
            return self.floor_qty(bought_qty)

    # --- persistence ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (Decimals as strings), e.g. for `bots.market_rules`."""
        return {
            "base": self.base,
            "quote": self.quote,
            "lot_step": _text(self.lot_step),
            "min_qty": _text(self.min_qty),
            "min_notional": _text(self.min_notional),
            "maker_fee": _text(self.maker_fee),
            "taker_fee": _text(self.taker_fee),
            "tick_size": None if self.tick_size is None else _text(self.tick_size),
            "price_units": None
            if self.price_units is None
            else [[_text(lower), _text(unit)] for lower, unit in self.price_units],
            "buy_fee_in_base": self.buy_fee_in_base,
            "min_price": None if self.min_price is None else _text(self.min_price),
            "max_price": None if self.max_price is None else _text(self.max_price),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarketRules:
        """The inverse of `to_dict`."""

        def opt(name: str) -> Decimal | None:
            value = data.get(name)
            return None if value is None else _dec(value, name)

        units = data.get("price_units")
        return cls(
            base=str(data["base"]),
            quote=str(data["quote"]),
            lot_step=_dec(data["lot_step"], "lot_step"),
            min_qty=_dec(data["min_qty"], "min_qty"),
            min_notional=_dec(data["min_notional"], "min_notional"),
            maker_fee=_dec(data["maker_fee"], "maker_fee"),
            taker_fee=_dec(data["taker_fee"], "taker_fee"),
            tick_size=opt("tick_size"),
            price_units=None if units is None else _units_from_json(units),
            buy_fee_in_base=bool(data.get("buy_fee_in_base", False)),
            min_price=opt("min_price"),
            max_price=opt("max_price"),
        )


def _text(value: Decimal) -> str:
    """Plain decimal notation (never "1E-8"), for stored JSON and exchange APIs alike."""
    return format(value, "f")


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def _canonical(value: Decimal) -> Decimal:
    """Trailing zeros dropped but never an exponent form ("10.000" -> 10, not 1E+1)."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


def _guess_exchange(market: Mapping[str, Any]) -> str:
    info = market.get("info")
    if isinstance(info, Mapping) and "filters" in info:
        return "binance"
    market_id = str(market.get("id", ""))
    if "-" in market_id:  # Upbit ids are QUOTE-BASE ("KRW-BTC"); Binance's have no dash
        return "upbit"
    raise ValueError(f"cannot tell which exchange market {market_id!r} belongs to; pass exchange=")


def _fee(market: Mapping[str, Any], name: str, default: Decimal) -> Decimal:
    value = market.get(name)
    return default if value is None else _dec(value, name)


def _binance_from_ccxt(market: Mapping[str, Any]) -> MarketRules:
    info = market.get("info") or {}
    filters = {f.get("filterType"): f for f in info.get("filters", []) if isinstance(f, Mapping)}
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    price_filter = filters.get("PRICE_FILTER", {})
    lot = filters.get("LOT_SIZE", {})
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}

    def pick(primary: object, fallback: object, name: str) -> Decimal:
        # The exchange's own strings are exact; ccxt's derived floats are the fallback (TICK_SIZE mode).
        return _dec(primary if primary is not None else fallback, name)

    def positive_or_none(value: Decimal) -> Decimal | None:
        return value if value > 0 else None

    tick = pick(price_filter.get("tickSize"), precision.get("price"), "tickSize")
    step = pick(lot.get("stepSize"), precision.get("amount"), "stepSize")
    min_qty = pick(lot.get("minQty"), (limits.get("amount") or {}).get("min") or 0, "minQty")
    min_notional = pick(
        notional.get("minNotional"), (limits.get("cost") or {}).get("min") or 0, "minNotional"
    )
    min_price = price_filter.get("minPrice")
    max_price = price_filter.get("maxPrice")
    return MarketRules.binance(
        base=str(market["base"]),
        quote=str(market["quote"]),
        tick_size=_canonical(tick),
        lot_step=_canonical(step),
        min_qty=_canonical(min_qty),
        min_notional=_canonical(min_notional),
        maker_fee=_fee(market, "maker", BINANCE_DEFAULT_FEE),
        taker_fee=_fee(market, "taker", BINANCE_DEFAULT_FEE),
        # Binance writes 0 for "no limit".
        min_price=None if min_price is None else positive_or_none(_canonical(_dec(min_price, "minPrice"))),
        max_price=None if max_price is None else positive_or_none(_canonical(_dec(max_price, "maxPrice"))),
    )


def _upbit_from_ccxt(market: Mapping[str, Any]) -> MarketRules:
    quote = str(market.get("quote", ""))
    if quote != "KRW":
        raise ValueError(f"only Upbit KRW markets are supported, not {market.get('id')!r}")
    cost_min = (market.get("limits") or {}).get("cost", {}).get("min")
    return MarketRules.upbit_krw(
        base=str(market["base"]),
        maker_fee=_fee(market, "maker", UPBIT_KRW_FEE),
        taker_fee=_fee(market, "taker", UPBIT_KRW_FEE),
        # ccxt's fetch_markets leaves the minimum empty; fetch_market (orders/chance) fills it in.
        min_total=UPBIT_KRW_MIN_TOTAL if cost_min is None else _dec(cost_min, "min_total"),
    )
