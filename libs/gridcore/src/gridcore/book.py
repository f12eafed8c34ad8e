"""A grid bot's book: its state, the indexes derived from it, and the read-only questions asked of it.

A base of GridBot (through GridOptions): the derived indexes are built here from the state and kept by the
transitions in machine.py and grid_options.py; nothing here changes the state.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from decimal import Decimal

from gridcore.commands import PlaceOrder, SellMarket
from gridcore.ids import MARKET_SLOT, bot_prefix
from gridcore.options import StopEnd, stop_hit
from gridcore.state import GridState, OpenOrder, Phase, Side


class GridBook:
    """The state and its indexes (open buys and sells by slot, armable idle slots, orders by client id)."""

    def __init__(self, state: GridState) -> None:
        """The book of a state (indexes rebuilt from it)."""
        self.state = state
        self._config = state.config
        # Every level, trailing's included (a list: trailing appends to it).
        self._levels = list(state.all_levels())
        self._rules = state.config.rules
        self._prefix = bot_prefix(state.config.bot_id)
        # Derived indexes, never stored: slot indices sorted ascending, and since a slot's buy rests at
        # level i and its sell at level i+1, index order is price order on each side.
        self._buys: list[int] = []
        self._sells: list[int] = []
        self._idle: list[int] = []  # armable idle slots (running only)
        self._by_cid: dict[str, int] = {}
        self._trail_step: Decimal | None = None  # computed on the first trail
        self._next_trail: Decimal | None = None  # cached next trailing level (None: not computed or none)
        waiting = set(state.trail_waits.values())
        for slot in state.slots:
            if slot.order is not None:
                self._by_cid[slot.order.client_order_id] = slot.index
                (self._buys if slot.order.side is Side.BUY else self._sells).append(slot.index)
            elif (
                state.phase is Phase.RUNNING
                and state.triggered
                and slot.blocked is None
                and slot.index >= state.low_slot
                and slot.index not in waiting
            ):
                self._idle.append(slot.index)

    # --- queries --------------------------------------------------------------------------------------------

    def open_orders(self) -> list[tuple[int, OpenOrder]]:
        """(slot, order) for every open order, by slot; the market sell under way last, at MARKET_SLOT."""
        found = [(s.index, s.order) for s in self.state.slots if s.order is not None]
        if self.state.market_sell is not None:
            found.append((MARKET_SLOT, self.state.market_sell))
        return found

    def open_order(self, client_order_id: str) -> tuple[int, OpenOrder] | None:
        """The open order with this id and its slot, if any; the market sell under way is at MARKET_SLOT."""
        index = self._by_cid.get(client_order_id)
        if index is None:
            market = self.state.market_sell
            if market is not None and market.client_order_id == client_order_id:
                return MARKET_SLOT, market
            return None
        order = self.state.slots[index].order
        assert order is not None
        return index, order

    def place_command(self, client_order_id: str) -> PlaceOrder | None:
        """The PlaceOrder of an open order, to send again (same id) when the first send's fate is unknown."""
        found = self.open_order(client_order_id)
        if found is None or found[0] == MARKET_SLOT:
            return None
        slot, order = found
        return PlaceOrder(order.client_order_id, slot, order.side, order.price, order.qty)

    def market_sell_command(self) -> SellMarket | None:
        """The SellMarket of the market sell under way, to send again (same id) when its fate is unknown."""
        order = self.state.market_sell
        return None if order is None else SellMarket(order.client_order_id, order.qty, order.price)

    def stop_point(self, low: Decimal, high: Decimal, closed_up: bool | None) -> StopEnd | None:
        """At which end of a tick's path a running bot stops (stopAtMax, take-profit, stop-loss), if it does."""
        state = self.state
        if state.phase is not Phase.RUNNING:
            return None
        hit = stop_hit(self._config, state.stop_at_max, low, high, closed_up)
        return None if hit is None else hit[1]

    def buys_at_or_above(self, price: Decimal) -> list[int]:
        """Slots whose open buy is priced >= price, highest first (O(log n + k))."""
        start = bisect_left(self._buys, price, key=self._levels.__getitem__)
        return self._buys[start:][::-1]

    def sells_at_or_below(self, price: Decimal) -> list[int]:
        """Slots whose open sell is priced <= price, lowest first (O(log n + k))."""
        end = bisect_right(self._sells, price, key=lambda i: self._levels[i + 1])
        return self._sells[:end]
