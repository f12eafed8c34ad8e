"""The paper broker: an exchange for paper bots whose book is the bot's open orders.

A tick fills every resting order its path reaches — a buy when the low reaches its price, a sell when the
high does — whole, at the order's price, with the exchange's maker fee (`gridcore.paper_fill`). Only
orders resting before the tick fill: orders placed because of its fills rest from the next tick on, as on a
real exchange. The path is the simulator's (and the backtester's): low before high when the tick closed
up, high first when it closed down; with stopAtMax and a high at upperPrice, nothing after the high fills.

Each fill is the `order.filled` message a live fill is, and the shard applies it through the same code as
the fill consumer (`handlers.apply_fill`), in the transaction of the batch that detected it, recorded under
that message's inbox id. An order is remembered as filled (`BotHandle.paper_filled`) from its detection
until its fill closes it, so no cancel un-fills it; after a restart, an order whose row says filled while
the core still holds it open (a fill message written by an earlier version of the engine, still on its
way) is remembered the same way, so no tick fills it again.
"""

from __future__ import annotations

from datetime import datetime

import gridcore
from engine.contracts import OrderFilledMessage
from engine.model import BotHandle
from gridcore import OrderFilled, Tick


def crossed_fills(handle: BotHandle, tick: Tick) -> list[OrderFilled]:
    """The fills of the bot's resting orders that the tick's path reaches, in path order.

    `gridcore.crossed_fills`, the rule the backtest replays too, over the orders not already detected.
    """
    return gridcore.crossed_fills(handle.core, tick, handle.paper_filled)


def fill_message(
    handle: BotHandle, fill: OrderFilled, executed_at: datetime, published_at: datetime | None
) -> OrderFilledMessage:
    """The `order.filled` message of a paper fill."""
    found = handle.core.open_order(fill.client_order_id)
    assert found is not None
    return OrderFilledMessage(
        bot_id=str(handle.id),
        exchange=handle.row.exchange,
        mode="paper",
        client_order_id=fill.client_order_id,
        exchange_order_id=None,
        fill_id=fill.fill_id,
        side=found[1].side.value,
        price=fill.price,
        qty=fill.qty,
        fee=fill.fee,
        fee_currency=fill.fee_currency,
        is_final=fill.is_final,
        executed_at=executed_at,
        trigger_published_at=published_at,
    )
