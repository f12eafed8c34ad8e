"""Commands out of the core: what the driver must do (orders, trade records, status, read-model updates)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gridcore.state import Side, SlotState, Status


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Place a limit order; the id is final, so sending it again can never make a second order."""

    client_order_id: str
    slot: int
    side: Side
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class SellMarket:
    """Sell `qty` base at market (sell base on stop); the id is final, like a PlaceOrder's.

    `price` is the last price the core saw, the one its minimum check used: a paper broker fills at the
    tick's price with the taker fee; a live driver writes the id down before the exchange call and
    answers with OrderFilled (one or more, the last final), OrderCanceled or OrderRejected.
    """

    client_order_id: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel an order; answer with OrderCanceled (or OrderFilled when the fill won the race)."""

    client_order_id: str


@dataclass(frozen=True, slots=True)
class RecordTrade:
    """One fill to record; `profit` (sells only) is that fill's share of the round trip's profit net of fees."""

    slot: int
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str
    profit: Decimal | None
    client_order_id: str
    fill_id: str


@dataclass(frozen=True, slots=True)
class SetStatus:
    """The bot's status changed (a stop's is sent once no order is open any more)."""

    status: Status
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class SlotChanged:
    """A slot's state or order changed (the grid-level read model); `reason` says why an idle slot waits."""

    slot: int
    state: SlotState
    client_order_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    reason: str | None = None


Command = PlaceOrder | SellMarket | CancelOrder | RecordTrade | SetStatus | SlotChanged
