"""Outgoing messages as outbox rows: user events (`events`) and stop confirmations (`bots`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from common import tracing
from common.context import request_id_var
from common.contracts.bots import BOTS_EXCHANGE
from common.contracts.envelope import new_message_id, payload_to_dict
from common.contracts.events import (
    EVENTS_EXCHANGE,
    BotStatsEvent,
    BotStatusEvent,
    GridLevelEvent,
    TradeEvent,
    UserEvent,
    user_events_key,
)
from common.contracts.public import BotFigures, GridLevelRead, TradeRead
from engine.model import BotHandle, LevelView
from trading.commands import BOT_STOPPED, BotStopped


def outbox_row(
    exchange: str, routing_key: str, payload: dict[str, Any], now: datetime, message_id: str | None = None
) -> dict[str, Any]:
    """One row of the engine's outbox (the columns common.outbox.enqueue writes), with the request id
    and trace of the work that caused it (the shard makes them current)."""
    return {
        "message_id": message_id or new_message_id(),
        "exchange": exchange,
        "routing_key": routing_key,
        "payload": payload_to_dict(payload),
        "request_id": request_id_var.get(),
        "traceparent": tracing.current_traceparent(),
        "created_at": now,
    }


def user_events_row(handle: BotHandle, items: list[UserEvent], now: datetime) -> dict[str, Any]:
    """A transaction's user events about one bot, as one outbox row."""
    user = str(handle.row.user_id)
    events = [item.model_dump(mode="json") for item in items]
    payload = {"userId": user, "botId": str(handle.id), "events": events}
    return outbox_row(EVENTS_EXCHANGE, user_events_key(user), payload, now)


def trade_event(
    handle: BotHandle,
    trade_id: uuid.UUID,
    side: str,
    price: Decimal,
    qty: Decimal,
    fee: Decimal,
    fee_currency: str,
    profit: Decimal | None,
    order_id: str,
    executed_at: datetime,
) -> TradeEvent:
    """A fill as the trade GET /bots/:id/trades will show."""
    trade = TradeRead.of(
        trade_id=trade_id,
        side=side,
        price=price,
        amount=qty,
        total=price * qty,
        fee=fee,
        fee_currency=fee_currency,
        profit=profit,
        order_id=order_id,
        executed_at=executed_at,
    )
    return TradeEvent(bot_id=str(handle.id), trade=trade)


def level_event(handle: BotHandle, level: LevelView) -> GridLevelEvent:
    """A grid level as GET /bots/:id/grid-levels shows it."""
    return GridLevelEvent(bot_id=str(handle.id), level=GridLevelRead.model_validate(level))


def status_event(
    handle: BotHandle, status: str, error_message: str | None, stop_reason: str | None = None
) -> BotStatusEvent:
    """A status change (and why the bot stopped, once it is not running)."""
    return BotStatusEvent(
        bot_id=str(handle.id), status=status, error_message=error_message, stop_reason=stop_reason
    )


def stats_event(handle: BotHandle) -> BotStatsEvent:
    """The bot's current figures (currentProfit, profitPercent, totalTrades, lastExecutedAt)."""
    stats = handle.stats
    figures = BotFigures.of(
        profit=stats.profit,
        investment=handle.row.investment_amount,
        trades=stats.trades,
        last_executed_at=stats.last_executed_at,
    )
    return BotStatsEvent(bot_id=str(handle.id), **dict(figures))


def stopped_row(bot_id: uuid.UUID, command_id: str, config_version: int, now: datetime) -> dict[str, Any]:
    """The `bot.stopped` confirmation the bots service waits for."""
    payload = BotStopped(bot_id=str(bot_id), config_version=config_version, command_id=command_id)
    return outbox_row(BOTS_EXCHANGE, BOT_STOPPED, payload.model_dump(mode="json"), now)
