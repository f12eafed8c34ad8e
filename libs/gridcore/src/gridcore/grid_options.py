"""The grid options' transitions (API.md "Grid options"), a base of GridBot: trailing up, the market sell
of sell-base-on-stop. Kept apart from machine.py, which holds the plain grid's rules; the pure rules they
apply (stops, the next level, a fill's shares) are in gridcore.options.
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal, localcontext

from gridcore.book import GridBook
from gridcore.commands import CancelOrder, Command, RecordTrade, SellMarket, SlotChanged
from gridcore.events import OrderFilled
from gridcore.ids import market_order_id
from gridcore.options import CTX, next_level, share_fill, take_cost, trail_step
from gridcore.state import ZERO, OpenOrder, Phase, Side, Slot, SlotState


class GridOptions(GridBook):
    """Trailing up and the market sell on stop; GridBot provides the plain grid's transitions."""

    def _replenish(self, slot: Slot, market: Decimal | None, out: list[Command]) -> None:
        raise NotImplementedError  # GridBot's

    def _set_idle(self, slot: Slot, reason: str | None, out: list[Command], *, armable: bool) -> None:
        raise NotImplementedError  # GridBot's

    def _finish_halt(self, out: list[Command]) -> None:
        raise NotImplementedError  # GridBot's

    def _trail_level(self) -> Decimal | None:
        """The level trailing adds next (cached until it is added); None beyond the limit."""
        if self._next_trail is None:
            with localcontext(CTX):
                if self._trail_step is None:
                    self._trail_step = trail_step(self._config)
                self._next_trail = next_level(self._config, self._trail_step, self._levels[-1])
        return self._next_trail

    def _trail(self, high: Decimal, out: list[Command]) -> None:
        """Trailing up: for each step the high reached above the top level, a new top slot, the lowest retired."""
        state = self.state
        while (level := self._trail_level()) is not None and high >= level:
            self._next_trail = None
            self._levels.append(level)
            state.added_levels.append(level)
            top = Slot(index=len(state.slots))
            state.slots.append(top)
            retired = state.slots[state.low_slot]
            state.low_slot += 1
            position = bisect_left(self._idle, retired.index)
            if position < len(self._idle) and self._idle[position] == retired.index:
                del self._idle[position]
            order = retired.order
            if order is not None and order.side is Side.BUY:
                # Its buy's quote goes to the new top slot, which buys only once that cancel is confirmed
                # (or the buy filled first), so open buys never commit more than the investment.
                state.trail_waits[retired.index] = top.index
                if not order.cancel_requested:
                    order.cancel_requested = True
                    out.append(CancelOrder(order.client_order_id))
                out.append(
                    SlotChanged(top.index, SlotState.IDLE, reason="waiting for the lowest buy's cancel")
                )
            else:
                if order is None:
                    self._set_idle(retired, None, out, armable=False)
                self._set_idle(top, None, out, armable=True)

    def _release(self, slot: Slot, out: list[Command]) -> None:
        """A retired slot's buy closed: the top slot waiting for it may buy now."""
        top = self.state.trail_waits.pop(slot.index, None)
        if top is not None and self.state.phase is Phase.RUNNING:
            self._replenish(self.state.slots[top], self.state.last_price, out)

    def _sell_base(self, out: list[Command]) -> bool:
        """Sell what the slots hold at market (lot-rounded down); False when that misses the minimum."""
        state, rules = self.state, self._rules
        price = state.last_price
        qty = rules.floor_qty(sum((slot.holding_qty for slot in state.slots), ZERO))
        if price is None or not rules.meets_minimum(price, qty):
            return False  # what is held stays in the slots' holdings
        state.market_seq += 1
        cid = market_order_id(self._prefix, state.epoch, state.market_seq)
        state.market_sell = OpenOrder(client_order_id=cid, side=Side.SELL, price=price, qty=qty)
        out.append(SellMarket(cid, qty, price))
        return True

    def _on_market_fill(self, order: OpenOrder, fill: OrderFilled, out: list[Command]) -> None:
        """Book a market sell's fill into the slots whose base it sold (lowest first), one trade per slot."""
        if fill.fill_id in order.fill_ids:
            return
        order.fill_ids.append(fill.fill_id)
        order.filled_qty += fill.qty
        rules, state = self._rules, self.state
        currency = fill.fee_currency.upper()
        in_base, in_quote = currency == rules.base.upper(), currency == rules.quote.upper()
        for slot, qty, fee in share_fill(state.slots, fill.qty, fill.fee):
            cost = take_cost(slot, qty + (fee if in_base else ZERO))
            profit = qty * fill.price - (fee if in_quote else ZERO) - cost
            state.realized_profit += profit
            out.append(
                RecordTrade(
                    slot=slot.index,
                    side=Side.SELL,
                    price=fill.price,
                    qty=qty,
                    fee=fee,
                    fee_currency=fill.fee_currency,
                    profit=profit,
                    client_order_id=order.client_order_id,
                    fill_id=f"{fill.fill_id}:{slot.index}",
                )
            )
        if fill.is_final or order.filled_qty >= order.qty:
            state.market_sell = None
            self._finish_halt(out)

    def _market_closed(self, client_order_id: str, out: list[Command]) -> None:
        """The market sell was canceled or refused: what it did not sell stays held, and the halt ends."""
        market = self.state.market_sell
        if market is not None and market.client_order_id == client_order_id:
            self.state.market_sell = None
            self._finish_halt(out)
