"""Market-data messages: conflated price ticks on the durable topic exchange `market`.

A tick is published non-persistent (transient semantics: a newer tick supersedes it) with the routing key
`price.<exchange>.<ticker>` (and, folded again to at most one a second, `display.price.<exchange>.<ticker>`).
`high`/`low` are the extremes of every trade since the previous tick of the
same ticker (including trades fetched over REST after a reconnection), so a consumer sees every crossing
of a price level even though ticks are conflated. `seq` grows by one per tick of a ticker within one
`epoch` (a publisher process lifetime): a jump means lost ticks, a new epoch a publisher restart.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from common.exchanges.ids import Exchange

MARKET_EXCHANGE = "market"
"""The durable topic exchange carrying price ticks."""

PRICE_ROUTING_PREFIX = "price"
DISPLAY_ROUTING_PREFIX = "display.price"


def price_routing_key(exchange: Exchange | str, ticker: str) -> str:
    """`price.<exchange>.<ticker>`, e.g. price.upbit.KRW-BTC (tickers contain no dots)."""
    return f"{PRICE_ROUTING_PREFIX}.{Exchange(exchange).value}.{ticker}"


def display_routing_key(exchange: Exchange | str, ticker: str) -> str:
    """`display.price.<exchange>.<ticker>`: the same ticks folded to at most one per display interval.

    For what shows a price rather than trades on it (the gateway's sockets); `price.#` does not match it.
    """
    return f"{DISPLAY_ROUTING_PREFIX}.{Exchange(exchange).value}.{ticker}"


def price_binding_key(exchange: Exchange | str | None = None, ticker: str | None = None) -> str:
    """A binding key for some or all price ticks: price.#, price.binance.*, price.upbit.KRW-BTC."""
    if exchange is None:
        return f"{PRICE_ROUTING_PREFIX}.#"
    return f"{PRICE_ROUTING_PREFIX}.{Exchange(exchange).value}.{ticker or '*'}"


class PriceTick(BaseModel):
    """Trades of one ticker folded since its previous tick (decimals travel as exact strings)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    exchange: Exchange
    ticker: str = Field(min_length=1, max_length=40)
    last: Decimal
    high: Decimal
    low: Decimal
    seq: int = Field(ge=1)
    epoch: str = Field(min_length=1, max_length=64)
    trades: int = Field(ge=0)
    first_trade_at: datetime
    last_trade_at: datetime
    published_at: datetime

    @field_serializer("last", "high", "low", when_used="json")
    def _decimal_text(self, value: Decimal) -> str:
        # Fixed-point text, never exponent notation (str(Decimal("1E-7")) would be "1E-7").
        return format(value, "f")

    @property
    def routing_key(self) -> str:
        """Where this tick is published."""
        return price_routing_key(self.exchange, self.ticker)
