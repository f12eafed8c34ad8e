"""The `order.filled` message of a live fill: what every source of fills (streams, checks, reconciliation) sends."""

from __future__ import annotations

from engine.contracts import OrderFilledMessage
from engine.live.client import ExchangeFill
from engine.model import BotHandle
from gridcore import Side


def fill_message(
    handle: BotHandle, cid: str, exchange_order_id: str, side: Side, fill: ExchangeFill
) -> OrderFilledMessage:
    """The `order.filled` message of one live fill of the bot's order `cid`."""
    return OrderFilledMessage(
        bot_id=str(handle.id),
        exchange=handle.row.exchange,
        mode="live",
        client_order_id=cid,
        exchange_order_id=exchange_order_id,
        fill_id=fill.fill_id,
        side=side.value,
        price=fill.price,
        qty=fill.qty,
        fee=fill.fee,
        fee_currency=fill.fee_currency,
        # The core closes an order when its fills add up to its quantity, whatever order they come in.
        is_final=False,
        executed_at=fill.executed_at,
    )
