"""What happens in the simulator, published synchronously to listeners (WebSocket sessions)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from exchange_sim.markets import Venue
from exchange_sim.orders import Fill, Order

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublicTrade:
    """A trade on a market's public tape."""

    venue: Venue
    symbol: str
    trade_id: int
    price: Decimal
    qty: Decimal
    time_ms: int
    buyer_is_maker: bool  # True when the taker sold (Upbit "ASK")


@dataclass(frozen=True, slots=True)
class TickerUpdate:
    """Time to push a market's rolling ticker (Binance pushes these at most once a second)."""

    venue: Venue
    symbol: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A change to one order: placed, traded, canceled or expired."""

    venue: Venue
    api_key: str
    order: Order  # a snapshot taken when the event happened
    execution: str  # NEW | TRADE | CANCELED | EXPIRED
    fill: Fill | None
    time_ms: int
    execution_id: int


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """Balances of an account that just changed: (asset, free, locked)."""

    venue: Venue
    api_key: str
    assets: tuple[tuple[str, Decimal, Decimal], ...]
    time_ms: int


Event = PublicTrade | TickerUpdate | OrderUpdate | BalanceUpdate
Listener = Callable[[Event], None]


class Hub:
    """Fan-out of events to listeners; a listener must not block (it only queues frames)."""

    def __init__(self) -> None:
        self._listeners: dict[int, Listener] = {}
        self._next = 0

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Start receiving events; returns the function that stops it."""
        self._next += 1
        token = self._next
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Hand an event to every listener."""
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    @property
    def listener_count(self) -> int:
        """How many listeners are subscribed."""
        return len(self._listeners)
