"""Orders and fills as the matching engine keeps them (venue-neutral; venues format them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from exchange_sim.markets import Venue

ZERO = Decimal(0)


class Side(StrEnum):
    """Buy or sell."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    """How the order trades."""

    LIMIT = "LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"
    MARKET = "MARKET"


class Status(StrEnum):
    """Binance's order statuses; Upbit's states are derived from them."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        """Still resting on the book."""
        return self in (Status.NEW, Status.PARTIALLY_FILLED)


class TimeInForce(StrEnum):
    """How long a limit order lives."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order."""

    trade_id: int
    trade_uuid: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    fee: Decimal
    fee_asset: str
    is_maker: bool
    time_ms: int


@dataclass
class Order:
    """An order with everything both venues report about it."""

    venue: Venue
    api_key: str
    order_id: int
    uuid: str
    client_order_id: str | None
    symbol: str
    base: str
    quote: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: Decimal | None  # limit price; None for market orders
    orig_qty: Decimal | None  # base quantity asked for; None for market buys by cost
    quote_order_qty: Decimal | None  # quote amount to spend (market buy by cost)
    created_ms: int
    # Upbit's ord_type: "limit", "price" (market buy by KRW amount) or "market" (market sell).
    upbit_ord_type: str = "limit"
    status: Status = Status.NEW
    executed_qty: Decimal = ZERO
    cumulative_quote: Decimal = ZERO
    fees_paid: Decimal = ZERO
    updated_ms: int = 0
    # Asset and amount still locked in the wallet for this order.
    locked_asset: str = ""
    locked_amount: Decimal = ZERO
    # Upbit reserves the fee of a bid up front.
    reserved_fee: Decimal = ZERO
    fills: list[Fill] = field(default_factory=list)
    # Set on cancel: the id of the cancel request (Binance's clientOrderId of the cancel).
    cancel_client_id: str | None = None
    rest_seq: int = 0

    @property
    def remaining_qty(self) -> Decimal:
        """Base quantity not yet executed (zero for market buys by cost)."""
        return (self.orig_qty - self.executed_qty) if self.orig_qty is not None else ZERO

    @property
    def is_open(self) -> bool:
        """Still on the book."""
        return self.status.is_open

    def snapshot(self) -> Order:
        """A copy that later changes to this order will not touch (for events)."""
        return replace(self, fills=list(self.fills))
