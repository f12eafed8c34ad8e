"""The markets each simulated exchange lists, with the real exchanges' price and quantity rules."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from common.grid.rules import UPBIT_KRW_PRICE_UNITS

Venue = Literal["upbit", "binance"]
VENUES: tuple[Venue, ...] = ("upbit", "binance")

# Upbit KRW price units (호가 단위): one table for the simulator and for our own rounding (common.grid).
_UPBIT_KRW_UNITS = UPBIT_KRW_PRICE_UNITS
_UPBIT_SMALLEST_UNIT = Decimal("0.00000001")
UPBIT_VOLUME_STEP = Decimal("0.00000001")
UPBIT_MAX_TOTAL = Decimal(1_000_000_000)


def upbit_krw_unit(price: Decimal) -> Decimal:
    """Upbit's KRW price unit for a price."""
    for lower, unit in _UPBIT_KRW_UNITS:
        if price >= lower:
            return unit
    return _UPBIT_SMALLEST_UNIT


@dataclass(frozen=True, slots=True)
class Market:
    """One listed market; prices and sizes follow the venue's rules."""

    venue: Venue
    symbol: str  # the venue's own id: "BTCUSDT" on Binance, "KRW-BTC" on Upbit
    base: str
    quote: str
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    min_price: Decimal
    max_price: Decimal
    tick_size: Decimal | None = None  # None: Upbit's price-dependent KRW unit table
    korean_name: str = ""
    english_name: str = ""

    def tick_at(self, price: Decimal) -> Decimal:
        """The price unit that applies at this price."""
        return self.tick_size if self.tick_size is not None else upbit_krw_unit(price)

    def round_price(self, price: Decimal) -> Decimal:
        """The nearest valid price (half up), never below one unit."""
        unit = self.tick_at(price)
        rounded = (price / unit).to_integral_value(rounding=ROUND_HALF_UP) * unit
        # Rounding can cross into a band with a coarser unit (e.g. 1,999,999.6 -> 2,000,000).
        coarser = self.tick_at(rounded)
        if coarser != unit:
            rounded = (rounded / coarser).to_integral_value(rounding=ROUND_HALF_UP) * coarser
        return max(rounded, unit)

    def price_is_valid(self, price: Decimal) -> bool:
        """True when the price sits on the venue's price grid."""
        return price > 0 and price % self.tick_at(price) == 0


@dataclass(frozen=True, slots=True)
class Asset:
    """A coin the simulator trades: names and how its USDT price moves."""

    code: str
    korean_name: str
    english_name: str
    start_usdt: Decimal  # starting price of its random walk
    sigma: float  # standard deviation of one minute's log return in the walk
    minute_volume: Decimal  # typical base volume traded in a minute


ASSETS: tuple[Asset, ...] = (
    Asset("BTC", "비트코인", "Bitcoin", Decimal("96466.11"), 0.0007, Decimal("15")),
    Asset("ETH", "이더리움", "Ethereum", Decimal("3700.00"), 0.0009, Decimal("250")),
    Asset("XRP", "엑스알피(리플)", "XRP", Decimal("2.3000"), 0.0012, Decimal("400000")),
    Asset("SOL", "솔라나", "Solana", Decimal("230.00"), 0.0011, Decimal("3000")),
)
ASSET_BY_CODE = {asset.code: asset for asset in ASSETS}

# Binance spot filters as the real exchange lists them for these symbols.
_BINANCE_RULES: dict[str, tuple[str, str, str, str, str]] = {
    # base: (tickSize, stepSize, maxQty, minPrice, maxPrice)
    "BTC": ("0.01", "0.00001", "9000", "0.01", "1000000"),
    "ETH": ("0.01", "0.0001", "9000", "0.01", "1000000"),
    "XRP": ("0.0001", "0.1", "9222449", "0.0001", "1000"),
    "SOL": ("0.01", "0.001", "9000", "0.01", "10000"),
}


def _binance_market(asset: Asset) -> Market:
    tick, step, max_qty, min_price, max_price = _BINANCE_RULES[asset.code]
    return Market(
        venue="binance",
        symbol=f"{asset.code}USDT",
        base=asset.code,
        quote="USDT",
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(step),
        max_qty=Decimal(max_qty),
        min_notional=Decimal("5"),
        max_notional=Decimal("9000000"),
        min_price=Decimal(min_price),
        max_price=Decimal(max_price),
        korean_name=asset.korean_name,
        english_name=asset.english_name,
    )


def _upbit_market(asset: Asset, min_total: Decimal) -> Market:
    return Market(
        venue="upbit",
        symbol=f"KRW-{asset.code}",
        base=asset.code,
        quote="KRW",
        tick_size=None,
        step_size=UPBIT_VOLUME_STEP,
        min_qty=UPBIT_VOLUME_STEP,
        max_qty=Decimal("100000000000"),
        min_notional=min_total,
        max_notional=UPBIT_MAX_TOTAL,
        min_price=_UPBIT_SMALLEST_UNIT,
        max_price=Decimal("10000000000"),
        korean_name=asset.korean_name,
        english_name=asset.english_name,
    )


def default_markets(upbit_min_total: Decimal = Decimal(5000)) -> dict[Venue, dict[str, Market]]:
    """Every market of both venues, keyed by venue and then by the venue's symbol."""
    return {
        "upbit": {m.symbol: m for m in (_upbit_market(a, upbit_min_total) for a in ASSETS)},
        "binance": {m.symbol: m for m in (_binance_market(a) for a in ASSETS)},
    }


def assets_of(venue: Venue) -> tuple[str, ...]:
    """Asset codes that can hold a balance on a venue."""
    quote = "KRW" if venue == "upbit" else "USDT"
    return (quote, *(asset.code for asset in ASSETS))
