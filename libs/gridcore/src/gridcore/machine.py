"""The grid state machine (ARCHITECTURE.md "The grid"): one bot's events in, commands out.

Deterministic and free of I/O: no clock, no randomness, no asyncio; the same events in the same order give
the same commands. Every decimal operation runs in the module's own context, so a caller's thread-local
context cannot change a result.

Slot rules, in one place (`_replenish`): a slot without an order that holds a sellable quantity sells it
at its upper level; otherwise, once the market is strictly above its lower level, it buys `order_amount`
worth there; otherwise it waits idle until a tick's high passes its lower level. A slot whose order would
miss the exchange minimum stays idle with the reason, and is retried only when the order amount changes
or the bot is started again.

Grid options (trigger, take-profit, stop-loss, sell base on stop, trailing up; docs/engine.md) are on
GridConfig; trailing and the market sell's transitions are in `gridcore.grid_options`, a base of GridBot,
and the state with its derived indexes and read-only queries in `gridcore.book`, a base of that.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import replace
from decimal import Decimal, localcontext
from typing import Any

from gridcore.commands import (
    CancelOrder,
    Command,
    PlaceOrder,
    RecordTrade,
    SetStatus,
    SlotChanged,
)
from gridcore.events import (
    Abandon,
    ConfigChanged,
    Event,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    Start,
    Stop,
    Tick,
)
from gridcore.grid_options import GridOptions
from gridcore.ids import client_order_id
from gridcore.options import CTX, MONEY_QUANTUM, stop_hit, take_cost
from gridcore.state import (
    ZERO,
    GridConfig,
    GridState,
    OpenOrder,
    Phase,
    Side,
    Slot,
    SlotState,
    Status,
    StopReason,
)
from gridcore.watch import Watch

_CTX = CTX
# The stops after which sell-base-on-stop sells (an error's or a lost credential's halt never does).
_SELLING_STOPS = frozenset(
    {StopReason.USER, StopReason.STOP_AT_MAX, StopReason.TAKE_PROFIT, StopReason.STOP_LOSS}
)
__all__ = ["MONEY_QUANTUM", "GridBot", "Watch"]


class GridBot(GridOptions):
    """One bot's grid: `handle(event)` mutates the state and returns the commands to carry out, in order."""

    @classmethod
    def new(cls, config: GridConfig, order_amount: Decimal, stop_at_max: bool, epoch: int = 0) -> GridBot:
        """A stopped bot over a fresh grid (see GridState.initial for `epoch`)."""
        return cls(GridState.initial(config, order_amount, stop_at_max, epoch))

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> GridBot:
        """A bot from a stored snapshot (`snapshot()`)."""
        return cls(GridState.from_dict(snapshot))

    def snapshot(self) -> dict[str, Any]:
        """The JSON-safe state to store (the indexes are rebuilt from it)."""
        return self.state.to_dict()

    # --- queries (the rest are GridBook's) -------------------------------------------------------------

    def watch(self) -> Watch:
        """The prices that concern this bot now (O(1))."""
        levels, state, config = self._levels, self.state, self._config
        running = state.phase is Phase.RUNNING
        trading = running and state.triggered
        waiting = running and not state.triggered
        return Watch(
            lowest_buy=levels[self._buys[0]] if self._buys else None,
            highest_buy=levels[self._buys[-1]] if self._buys else None,
            lowest_sell=levels[self._sells[0] + 1] if self._sells else None,
            highest_sell=levels[self._sells[-1] + 1] if self._sells else None,
            next_arm=levels[self._idle[0]] if running and self._idle else None,
            stop_price=config.upper_price if trading and state.stop_at_max else None,
            take_profit=config.take_profit_price if trading else None,
            stop_loss=config.stop_loss_price if trading else None,
            trigger_above=config.trigger_price if waiting and state.trigger_above else None,
            trigger_below=config.trigger_price if waiting and state.trigger_above is False else None,
            trail_at=self._trail_level() if trading and config.trailing_up else None,
        )

    # --- events ---------------------------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        """Apply one event; return the commands it causes, in the order they must be carried out."""
        out: list[Command] = []
        with localcontext(_CTX):
            if isinstance(event, Tick):
                self._on_tick(event, out)
            elif isinstance(event, OrderFilled):
                self._on_filled(event, out)
            elif isinstance(event, OrderCanceled):
                self._on_canceled(event, out)
            elif isinstance(event, OrderRejected):
                self._on_rejected(event, out)
            elif isinstance(event, Start):
                self._on_start(event, out)
            elif isinstance(event, Stop):
                self._on_stop(event, out)
            elif isinstance(event, Abandon):
                self._on_abandon(out)
            elif isinstance(event, ConfigChanged):
                self._on_config(event, out)
            else:  # pragma: no cover - the Event union is closed
                raise TypeError(f"not an engine event: {event!r}")
        return out

    def _on_start(self, event: Start, out: list[Command]) -> None:
        state = self.state
        # Running: starting again changes nothing. Halting: cancels are still in flight; the driver
        # starts the bot once the stop has completed (SetStatus(stopped)).
        if state.phase is not Phase.HALTED:
            return
        state.epoch += 1
        state.phase, state.status, state.error_message = Phase.RUNNING, Status.RUNNING, None
        state.halt_status, state.stop_reason = Status.STOPPED, None
        state.last_price = event.price
        state.trail_waits.clear()  # every retired buy was closed by the halt
        out.append(SetStatus(Status.RUNNING))
        trigger = self._config.trigger_price
        if not state.triggered:
            assert trigger is not None
            state.trigger_above = trigger > event.price if trigger != event.price else None
            if state.trigger_above is not None:
                for slot in state.slots:
                    slot.blocked = None
                return  # nothing is placed until a tick trades at or through the trigger
            state.triggered = True
        self._trade_from(event.price, event.price, event.price, None, out)

    def _trade_from(
        self, price: Decimal, low: Decimal, high: Decimal, closed_up: bool | None, out: list[Command]
    ) -> None:
        """A start (or a trigger) at this price: stop if a stop is reached, else give every slot its order."""
        hit = stop_hit(self._config, self.state.stop_at_max, low, high, closed_up)
        if hit is not None:
            self._halt(Status.STOPPED, None, hit[0], out)
            return
        for slot in self.state.slots:
            slot.blocked = None
            self._replenish(slot, price, out)

    def _on_tick(self, tick: Tick, out: list[Command]) -> None:
        state = self.state
        state.last_price = tick.last
        if state.phase is not Phase.RUNNING:
            return
        if not state.triggered:
            above, trigger = state.trigger_above, self._config.trigger_price
            assert trigger is not None
            if not (tick.high >= trigger if above else tick.low <= trigger):
                return
            state.triggered = True
            self._trade_from(tick.last, tick.low, tick.high, tick.closed_up, out)
            # The grid starts from the last price: a tick's high may come before the trigger within it (a fall
            # to a trigger below), so arming idle slots up to it would place buys above the market.
            return
        else:
            hit = stop_hit(self._config, state.stop_at_max, tick.low, tick.high, tick.closed_up)
            if hit is not None:
                self._halt(Status.STOPPED, None, hit[0], out)
                return
        if self._config.trailing_up:
            self._trail(tick.high, out)
        # Idle slots are sorted by level, so the ones the high passed are a prefix: O(log n + armed).
        end = bisect_left(self._idle, tick.high, key=self._levels.__getitem__)
        armed, self._idle[:end] = self._idle[:end], []
        for index in armed:
            self._replenish(self.state.slots[index], tick.high, out)

    def _on_filled(self, fill: OrderFilled, out: list[Command]) -> None:
        index = self._by_cid.get(fill.client_order_id)
        if index is None:
            market = self.state.market_sell
            if market is not None and market.client_order_id == fill.client_order_id:
                self._on_market_fill(market, fill, out)
            return  # else a redelivery for an order already closed, or not ours
        slot = self.state.slots[index]
        order = slot.order
        assert order is not None
        if fill.fill_id in order.fill_ids:
            return  # redelivered fill
        order.fill_ids.append(fill.fill_id)
        order.filled_qty += fill.qty
        failure = self._account(slot, order, fill, out) if fill.qty > 0 else None
        if fill.is_final or order.filled_qty >= order.qty:
            self._close(slot)
            if order.side is Side.SELL and order.filled_qty > 0:
                slot.round_trips += 1
            self._release(slot, out)
            if self.state.phase is Phase.RUNNING and failure is None:
                # After a sell the market is at the sell level, above the buy level: the slot buys again.
                # After a buy it sells what it holds (or, holding too little to sell, waits to re-arm).
                self._replenish(slot, fill.price, out)
            else:
                self._set_idle(slot, None, out, armable=False)
                self._finish_halt(out)
        # A partial fill changes no order: the slot acts on the final one.
        if failure is not None:
            self._fail(failure, out)

    def _account(self, slot: Slot, order: OpenOrder, fill: OrderFilled, out: list[Command]) -> str | None:
        """Book one fill into the slot's holdings and profit; a message when it broke an invariant."""
        rules, state = self._rules, self.state
        currency = fill.fee_currency.upper()
        base_fee = fill.fee if currency == rules.base.upper() else ZERO
        quote_fee = fill.fee if currency == rules.quote.upper() else ZERO
        # A fee in a third currency (e.g. BNB) is recorded but not in the profit: its quote value is unknown.
        gross = fill.qty * fill.price
        profit: Decimal | None = None
        oversold = False
        if order.side is Side.BUY:
            slot.holding_qty += fill.qty - base_fee
            slot.holding_cost += gross + quote_fee
        else:
            base_out = fill.qty + base_fee
            oversold = base_out > slot.holding_qty
            profit = gross - quote_fee - take_cost(slot, base_out)
            state.realized_profit += profit
        out.append(
            RecordTrade(
                slot=slot.index,
                side=order.side,
                price=fill.price,
                qty=fill.qty,
                fee=fill.fee,
                fee_currency=fill.fee_currency,
                profit=profit,
                client_order_id=order.client_order_id,
                fill_id=fill.fill_id,
            )
        )
        if oversold:
            return (
                f"The exchange reported selling more {rules.base} than slot {slot.index} held "
                f"(order {order.client_order_id}); the bot stopped to protect the account"
            )
        return None

    def _on_canceled(self, event: OrderCanceled, out: list[Command]) -> None:
        index = self._by_cid.get(event.client_order_id)
        if index is None:
            self._market_closed(event.client_order_id, out)
            return
        slot = self.state.slots[index]
        order = slot.order
        assert order is not None
        self._close(slot)
        self._release(slot, out)
        if self.state.phase is Phase.RUNNING and not order.cancel_requested:
            # Canceled outside the engine (by hand, or an exchange expiry): the slot carries on, so its
            # order is placed again with a new id; what it filled before stays in its holdings.
            self._replenish(slot, self.state.last_price, out)
            return
        self._set_idle(slot, None, out, armable=False)
        self._finish_halt(out)

    def _on_rejected(self, event: OrderRejected, out: list[Command]) -> None:
        index = self._by_cid.get(event.client_order_id)
        if index is None:
            self._market_closed(event.client_order_id, out)
            return
        slot = self.state.slots[index]
        order = slot.order
        assert order is not None
        self._close(slot)
        self.state.trail_waits.pop(slot.index, None)  # the bot fails: its waiting top slot stays idle
        self._set_idle(slot, None, out, armable=False)
        if self.state.phase is Phase.RUNNING:
            self._fail(
                f"The exchange rejected the {order.side.value} order of slot {slot.index} "
                f"({order.qty} {self._rules.base} at {order.price} {self._rules.quote}): {event.reason}",
                out,
            )
        else:
            self._finish_halt(out)

    def _on_stop(self, event: Stop, out: list[Command]) -> None:
        state = self.state
        target = Status.ERROR if event.error_message else Status.STOPPED
        reason = StopReason.ERROR if event.error_message else event.reason
        if state.phase is Phase.RUNNING:
            self._halt(target, event.error_message, reason, out)
        elif state.phase is Phase.HALTING:
            state.halt_status = target
            if target is Status.ERROR:
                state.error_message = event.error_message
                state.sell_pending = False  # an error's halt sells nothing
            # The halt under way keeps its cause, unless this stop turns it into an error.
            if target is Status.ERROR or state.stop_reason is None:
                state.stop_reason = reason
        else:
            # Already at rest: confirm at once (the driver's stop handshake waits for a SetStatus).
            state.status, state.stop_reason = target, reason
            state.error_message = event.error_message if target is Status.ERROR else None
            out.append(SetStatus(state.status, state.error_message))

    def _on_abandon(self, out: list[Command]) -> None:
        state = self.state
        if state.phase is not Phase.HALTING:
            return
        for slot in state.slots:
            if slot.order is not None:
                self._close(slot)
                self._set_idle(slot, None, out, armable=False)
        # The exchange cannot be reached: no market sell either.
        state.trail_waits.clear()
        state.market_sell, state.sell_pending = None, False
        self._finish_halt(out)

    def _on_config(self, event: ConfigChanged, out: list[Command]) -> None:
        state = self.state
        if event.stop_at_max is not None:
            state.stop_at_max = event.stop_at_max
        if event.stops is not None:
            take_profit, stop_loss = event.stops
            # Checked at the next tick, like stopAtMax: a stop moved past the market stops the bot then.
            self._config = state.config = replace(
                state.config, take_profit_price=take_profit, stop_loss_price=stop_loss
            )
        if event.order_amount is None or event.order_amount == state.order_amount:
            return
        state.order_amount = event.order_amount
        if state.phase is not Phase.RUNNING:
            return
        # Only slots waiting for lack of a big enough order are affected now; resting orders keep their size.
        for slot in state.slots:
            if slot.blocked is not None and slot.order is None and slot.index >= state.low_slot:
                slot.blocked = None
                self._replenish(slot, state.last_price, out)

    # --- transitions ----------------------------------------------------------------------------------------

    def _replenish(self, slot: Slot, market: Decimal | None, out: list[Command]) -> None:
        """Give an order-less slot of a running bot its next order, or leave it idle saying why."""
        rules, order_amount = self._rules, self.state.order_amount
        buy_price, sell_price = self._levels[slot.index], self._levels[slot.index + 1]
        sell_qty = rules.floor_qty(slot.holding_qty)
        if sell_qty > 0 and rules.meets_minimum(sell_price, sell_qty):
            self._place(slot, Side.SELL, sell_price, sell_qty, out)
            return
        state = self.state
        if slot.index < state.low_slot or slot.index in state.trail_waits.values():
            # Retired by trailing (it only sells what it holds), or a new top slot waiting for a cancel.
            self._set_idle(slot, None, out, armable=False)
            return
        if market is None or not buy_price < market:
            reason = (
                f"holding {slot.holding_qty} {rules.base}, below the exchange minimum" if sell_qty else None
            )
            self._set_idle(slot, reason, out, armable=True)
            return
        qty = rules.buy_qty(order_amount, buy_price)
        if rules.meets_minimum(buy_price, qty):
            self._place(slot, Side.BUY, buy_price, qty, out)
            return
        slot.blocked = (
            f"a buy of {qty} {rules.base} at {buy_price} is below the exchange minimum "
            f"(min qty {rules.min_qty}, min order {rules.min_notional} {rules.quote})"
        )
        self._set_idle(slot, slot.blocked, out, armable=False)

    def _place(self, slot: Slot, side: Side, price: Decimal, qty: Decimal, out: list[Command]) -> None:
        assert slot.order is None
        slot.seq += 1
        cid = client_order_id(self._prefix, self.state.epoch, slot.index, side, slot.seq)
        slot.order = OpenOrder(client_order_id=cid, side=side, price=price, qty=qty)
        slot.state = SlotState.BUYING if side is Side.BUY else SlotState.SELLING
        slot.blocked = None
        self._by_cid[cid] = slot.index
        insort(self._buys if side is Side.BUY else self._sells, slot.index)
        out.append(PlaceOrder(client_order_id=cid, slot=slot.index, side=side, price=price, qty=qty))
        out.append(SlotChanged(slot.index, slot.state, cid, price, qty))

    def _close(self, slot: Slot) -> None:
        """Forget the slot's order (filled, canceled or rejected); the caller decides what comes next."""
        order = slot.order
        assert order is not None
        del self._by_cid[order.client_order_id]
        side_index = self._buys if order.side is Side.BUY else self._sells
        del side_index[bisect_left(side_index, slot.index)]
        slot.order = None

    def _set_idle(self, slot: Slot, reason: str | None, out: list[Command], *, armable: bool) -> None:
        slot.state = SlotState.IDLE
        if armable and self.state.phase is Phase.RUNNING:
            position = bisect_left(self._idle, slot.index)
            if position == len(self._idle) or self._idle[position] != slot.index:
                self._idle.insert(position, slot.index)
        out.append(SlotChanged(slot.index, SlotState.IDLE, reason=reason))

    def _halt(
        self, target: Status, error_message: str | None, reason: StopReason, out: list[Command]
    ) -> None:
        """Cancel every open order; the bot reaches `target` once each is confirmed closed."""
        state = self.state
        state.phase, state.halt_status, state.stop_reason = Phase.HALTING, target, reason
        if target is Status.ERROR:
            state.error_message = error_message
        state.sell_pending = (
            self._config.sell_base_on_stop and target is Status.STOPPED and reason in _SELLING_STOPS
        )
        self._idle.clear()
        for slot in state.slots:
            if slot.order is not None and not slot.order.cancel_requested:
                slot.order.cancel_requested = True
                out.append(CancelOrder(slot.order.client_order_id))
        self._finish_halt(out)

    def _finish_halt(self, out: list[Command]) -> None:
        state = self.state
        if state.phase is not Phase.HALTING or self._by_cid or state.market_sell is not None:
            return
        if state.sell_pending:
            state.sell_pending = False
            if self._sell_base(out):
                return  # the halt ends once the market sell is done
        state.trail_waits.clear()
        state.phase, state.status = Phase.HALTED, state.halt_status
        if state.status is not Status.ERROR:
            state.error_message = None
        out.append(SetStatus(state.status, state.error_message))

    def _fail(self, message: str, out: list[Command]) -> None:
        """Put a running bot in error at once, then cancel its orders (a second SetStatus marks the end)."""
        state = self.state
        if state.phase is not Phase.RUNNING:
            return
        state.status, state.error_message = Status.ERROR, message
        state.stop_reason = StopReason.ERROR
        out.append(SetStatus(Status.ERROR, message))
        self._halt(Status.ERROR, message, StopReason.ERROR, out)
