"""One bot's part of a batch: core events in, the rows, messages and exchange calls they cause out.

`Step.feed` drives the core and turns each command into what must be written in the batch's transaction
(orders, trades, level rows, bot status, the new core state, outbox messages) and what must be done after
it commits (live orders to place or cancel). A paper exchange confirms a cancel at once, so paper cancels
are fed back into the core inside the same step (unless the paper broker already filled that order: its
fill closes it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from common.contracts.events import UserEvent
from common.tracing import Origin
from engine import outgoing
from engine.levels import AVAILABLE, refresh
from engine.model import BotHandle, LevelView, OrderRef
from gridcore import (
    MARKET_SLOT,
    CancelOrder,
    Command,
    Event,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    Phase,
    PlaceOrder,
    RecordTrade,
    SellMarket,
    SetStatus,
    Side,
    SlotChanged,
    Status,
    StopReason,
    market_fill,
)

NEW, OPEN, FILLED, CANCELED, REJECTED = "new", "open", "filled", "canceled", "rejected"


@dataclass
class HaltDone:
    """A halt completed in this step: the status it ended in and why (written once the bot row was looked at)."""

    status: Status
    error_message: str | None
    stop_reason: StopReason | None


@dataclass
class Step:
    """Everything one bot's events of one batch produce."""

    handle: BotHandle
    now: datetime
    order_inserts: list[dict[str, Any]] = field(default_factory=list)
    order_updates: dict[str, OrderRef] = field(default_factory=dict)
    # Inbox ids of fills applied in this step without a message of their own (paper fills), claimed with
    # the step's writes: a copy of such a fill arriving later is dropped like any redelivery.
    inbox_claims: list[tuple[str, str]] = field(default_factory=list)
    paper_fills: int = 0  # fills the paper broker made in this step
    trade_inserts: list[dict[str, Any]] = field(default_factory=list)
    level_updates: dict[int, None] = field(default_factory=dict)  # insertion-ordered set
    outbox: list[dict[str, Any]] = field(default_factory=list)
    user_events: list[UserEvent] = field(default_factory=list)
    state_changed: bool = False
    new_version: int | None = None  # the engine state version once committed
    last_executed_at: datetime | None = None
    error_write: str | None = None  # status `error` to write now (a failure while orders still close)
    halt_done: HaltDone | None = None
    places: list[PlaceOrder | SellMarket] = field(default_factory=list)
    level_inserts: list[dict[str, Any]] = field(default_factory=list)  # levels trailing up added
    triggered_write: bool | None = None  # bots.triggered to write (the core's, when the row differs)
    cancels: list[str] = field(default_factory=list)
    # When the price move that led to this step's orders was published (latency figures).
    triggers: list[datetime] = field(default_factory=list)
    # The origin (request id, trace) of the last traced work of the step: its user events continue it.
    origin: Origin | None = None
    _touched: set[int] = field(default_factory=set)
    _fills_at: dict[int, tuple[Side, str]] = field(default_factory=dict)
    _stats_changed: bool = False

    # --- driving the core -----------------------------------------------------------------------------

    def feed(self, event: Event, *, executed_at: datetime | None = None) -> None:
        """Apply one event (and, for paper bots, the cancel confirmations it causes) to the core."""
        handle = self.handle
        queue: list[Event] = [event]
        while queue:
            current = queue.pop(0)
            commands = handle.core.handle(current)
            self.state_changed = True
            self._note_closed(current)
            for command in commands:
                self._apply(command, queue, executed_at or self.now)

    def _note_closed(self, event: Event) -> None:
        """The order an event closed, with the status its row gets."""
        if not isinstance(event, OrderFilled | OrderCanceled | OrderRejected):
            return
        cid = event.client_order_id
        ref = self.handle.orders.get(cid)
        if ref is None or self.handle.core.open_order(cid) is not None:
            return
        if isinstance(event, OrderFilled):
            ref.status = FILLED
        else:
            ref.status = CANCELED if isinstance(event, OrderCanceled) else REJECTED
        self.order_updates[cid] = ref
        del self.handle.orders[cid]
        self.handle.paper_filled.discard(cid)

    def _apply(self, command: Command, queue: list[Event], executed_at: datetime) -> None:
        handle = self.handle
        if isinstance(command, PlaceOrder):
            self._place(command, command.slot)
        elif isinstance(command, SellMarket):
            self._place(command, MARKET_SLOT)
            if handle.is_paper:
                # The paper exchange fills a market sell at once, at the price the core last saw (the
                # backtest's rule too: gridcore.replay), with the taker fee.
                queue.append(market_fill(handle.core, command, command.price))
        elif isinstance(command, CancelOrder):
            if not handle.is_paper:
                self.cancels.append(command.client_order_id)
            elif command.client_order_id not in handle.paper_filled:
                # The paper exchange cancels at once; an order it already filled is closed by its fill.
                queue.append(OrderCanceled(command.client_order_id))
        elif isinstance(command, RecordTrade):
            self._trade(command, executed_at)
        elif isinstance(command, SetStatus):
            self._status(command)
        elif isinstance(command, SlotChanged):
            self._touched.update((command.slot, command.slot + 1))

    def _place(self, command: PlaceOrder | SellMarket, slot: int) -> None:
        handle = self.handle
        ref = OrderRef(
            id=uuid.uuid4(),
            client_order_id=command.client_order_id,
            slot=slot,
            side=command.side if isinstance(command, PlaceOrder) else Side.SELL,
            price=command.price,
            qty=command.qty,
            # A paper order rests the moment it is recorded; a live one is `new` until the exchange acks it.
            status=OPEN if handle.is_paper else NEW,
        )
        handle.orders[ref.client_order_id] = ref
        self.order_inserts.append(
            {
                "id": ref.id,
                "bot_id": handle.id,
                "exchange": handle.row.exchange,
                "client_order_id": ref.client_order_id,
                "exchange_order_id": None,
                "slot": ref.slot,
                "side": ref.side.value,
                "price": ref.price,
                "quantity": ref.qty,
                "filled_quantity": Decimal(0),
                "status": ref.status,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )
        if not handle.is_paper:
            self.places.append(command)

    def _trade(self, command: RecordTrade, executed_at: datetime) -> None:
        handle = self.handle
        ref = handle.orders.get(command.client_order_id) or self.order_updates.get(command.client_order_id)
        if ref is None:
            raise LookupError(f"no order row for {command.client_order_id} of bot {handle.id}")
        ref.filled_qty += command.qty
        self.order_updates[ref.client_order_id] = ref
        trade_id = uuid.uuid4()
        self.trade_inserts.append(
            {
                "id": trade_id,
                "bot_id": handle.id,
                "order_id": ref.id,
                "fill_id": command.fill_id,
                "side": command.side.value,
                "price": command.price,
                "amount": command.qty,
                "total": command.price * command.qty,
                "fee": command.fee,
                "fee_currency": command.fee_currency,
                "profit": command.profit,
                "executed_at": executed_at,
                "created_at": self.now,
            }
        )
        stats = handle.stats
        stats.trades += 1
        if command.profit is not None:
            stats.profit += command.profit
        if stats.last_executed_at is None or executed_at > stats.last_executed_at:
            stats.last_executed_at = executed_at
        self.last_executed_at = stats.last_executed_at
        self._stats_changed = True
        if ref.slot != MARKET_SLOT:  # a market sell fills at no level of the grid
            level = command.slot if command.side is Side.BUY else command.slot + 1
            self._fills_at[level] = (command.side, command.client_order_id)
            self._touched.add(level)
        order_id = ref.exchange_order_id or ref.client_order_id
        event = outgoing.trade_event(
            handle,
            trade_id,
            command.side.value,
            command.price,
            command.qty,
            command.fee,
            command.fee_currency,
            command.profit,
            order_id,
            executed_at,
        )
        self.user_events.append(event)

    def _status(self, command: SetStatus) -> None:
        handle = self.handle
        state = handle.core.state
        halted = state.phase is Phase.HALTED
        message = command.error_message
        if halted and handle.halt_note:
            # What the driver could not do for the halt (orders left at the exchange), for the user to see.
            message = f"{message} {handle.halt_note}" if message else handle.halt_note
        reason = state.stop_reason if command.status is not Status.RUNNING else None
        event = outgoing.status_event(handle, command.status.value, message, reason.value if reason else None)
        self.user_events.append(event)
        if halted:
            self.halt_done = HaltDone(state.status, message, state.stop_reason)
        elif command.status is Status.ERROR:
            self.error_write = command.error_message

    def touch(self, slot: int) -> None:
        """The slot's level rows need a look at the end of the step."""
        self._touched.update((slot, slot + 1))

    # --- after the events -----------------------------------------------------------------------------

    def finish(self) -> None:
        """Level rows and statistics events for what the events changed."""
        handle = self.handle
        self._follow_grid()
        levels = handle.levels
        for index in sorted(self._touched):
            if index >= len(levels):
                continue
            level = levels[index]
            if refresh(handle.core, level, self._fills_at.get(index), self.now):
                self.level_updates[index] = None
                self.user_events.append(outgoing.level_event(handle, level))
        self._touched.clear()
        self._fills_at.clear()
        if self._stats_changed:
            self.user_events.append(outgoing.stats_event(handle))
            self._stats_changed = False
        if self.user_events:
            self.outbox.append(outgoing.user_events_row(handle, self.user_events, self.now))
            self.user_events = []

    def _follow_grid(self) -> None:
        """Rows for the levels trailing up added, a look at those it moved past, and `triggered`."""
        handle = self.handle
        state = handle.core.state
        levels = handle.levels
        if state.added_levels:
            prices = state.all_levels()
            for index in range(len(levels), len(prices)):
                level = LevelView(uuid.uuid4(), index, prices[index], Side.BUY.value, AVAILABLE, None, None)
                levels.append(level)
                self.level_inserts.append(
                    {
                        "id": level.id,
                        "bot_id": handle.id,
                        "level_index": index,
                        "price": level.price,
                        "type": level.type,
                        "status": level.status,
                        "order_id": None,
                        "filled_at": None,
                        "active": True,
                        "updated_at": self.now,
                    }
                )
                self._touched.add(index)
            self._touched.update(i for i in range(min(state.low_slot, len(levels))) if levels[i].active)
        if handle.row.triggered != state.triggered:
            handle.row.triggered = self.triggered_write = state.triggered

    @property
    def writes_anything(self) -> bool:
        """False when the events changed nothing that needs a transaction."""
        return bool(
            self.state_changed
            or self.order_inserts
            or self.order_updates
            or self.trade_inserts
            or self.outbox
            or self.halt_done
            or self.level_inserts
            or self.triggered_write is not None
        )
