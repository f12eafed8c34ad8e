"""The budget's buckets: half of each exchange's published limits (figures and sources in budget.py).

Apart from the budget so that the settings can check EXCHANGE_BUDGET_LIMITS against them without importing
the budget (which takes the settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.exchanges.ids import Exchange


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit: at most `limit` units per clock-aligned window of `window_seconds`."""

    name: str
    limit: int
    window_seconds: int
    per_account: bool = False


BINANCE_WEIGHT = Bucket("weight", 3000, 60)
BINANCE_ORDERS = Bucket("orders-10s", 25, 10, per_account=True)
BINANCE_ORDERS_DAY = Bucket("orders-1d", 80_000, 86_400, per_account=True)
UPBIT_QUOTATION = Bucket("quotation", 5, 1)
UPBIT_EXCHANGE = Bucket("exchange", 15, 1, per_account=True)
UPBIT_ORDER = Bucket("order", 4, 1, per_account=True)

BUCKETS: dict[Exchange, tuple[Bucket, ...]] = {
    Exchange.BINANCE: (BINANCE_WEIGHT, BINANCE_ORDERS, BINANCE_ORDERS_DAY),
    Exchange.UPBIT: (UPBIT_QUOTATION, UPBIT_EXCHANGE, UPBIT_ORDER),
}
