"""What a market-data frame means once parsed, whatever the exchange's wire format."""

from __future__ import annotations

from typing import NamedTuple


class TradeEvent(NamedTuple):
    """One trade: price and quantity as the exchange's decimal text (and the price as a float to compare)."""

    ticker: str
    trade_id: int
    price_f: float
    price: str
    qty: str
    ts: int


class StatsEvent(NamedTuple):
    """24h statistics: change in percent (2 decimals) and base volume, as decimal text."""

    ticker: str
    change_pct: str | None
    volume: str
    ts: int


class AckEvent(NamedTuple):
    """The answer to a control request we sent (Binance SUBSCRIBE/UNSUBSCRIBE)."""

    request_id: int
    error: str | None


class StatusEvent(NamedTuple):
    """Upbit's answer to PING: {"status":"UP"}."""

    status: str


class ErrorEvent(NamedTuple):
    """An error frame from the exchange."""

    name: str
    message: str


Event = TradeEvent | StatsEvent | AckEvent | StatusEvent | ErrorEvent


def num_text(value: object) -> str:
    """A JSON number as decimal text: exchange strings as sent, floats by their shortest exact repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise ValueError(f"not a number: {value!r}")


def percent_text(rate: float) -> str:
    """A fraction (0.0126713295) as a percentage with 2 decimals ("1.27")."""
    return f"{rate * 100:.2f}"
