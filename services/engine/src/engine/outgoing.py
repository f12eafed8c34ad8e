"""Outgoing messages as outbox rows: user events (`events`) and stop confirmations (`bots`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from common.contracts.bots import BOTS_EXCHANGE
from common.contracts.envelope import new_message_id, payload_to_dict
from common.contracts.events import EVENTS_EXCHANGE, EventKind, user_events_key, wire_decimal
from common.trading.commands import BOT_STOPPED, BotStopped
from common.web import iso_utc
from engine.model import BotHandle, LevelView

CENT = Decimal("0.01")


def outbox_row(
    exchange: str, routing_key: str, payload: dict[str, Any], now: datetime, message_id: str | None = None
) -> dict[str, Any]:
    """One row of the bots schema's outbox (the columns common.outbox.enqueue writes)."""
    return {
        "message_id": message_id or new_message_id(),
        "exchange": exchange,
        "routing_key": routing_key,
        "payload": payload_to_dict(payload),
        "request_id": None,
        "created_at": now,
    }


def user_event(handle: BotHandle, kind: EventKind, body: dict[str, Any]) -> dict[str, Any]:
    """One WebSocket event about the bot."""
    return {"type": kind.value, "botId": str(handle.id), **body}


def user_events_row(handle: BotHandle, items: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """A transaction's user events about one bot, as one outbox row."""
    user = str(handle.row.user_id)
    payload = {"userId": user, "botId": str(handle.id), "events": items}
    return outbox_row(EVENTS_EXCHANGE, user_events_key(user), payload, now)


def trade_body(
    trade_id: uuid.UUID,
    side: str,
    price: Decimal,
    qty: Decimal,
    fee: Decimal,
    fee_currency: str,
    profit: Decimal | None,
    order_id: str,
    executed_at: datetime,
) -> dict[str, Any]:
    """A trade as GET /bots/:id/trades shows it (under `trade`)."""
    trade: dict[str, Any] = {
        "_id": str(trade_id),
        "type": side,
        "price": wire_decimal(price),
        "amount": wire_decimal(qty),
        "total": wire_decimal(price * qty),
        "fee": wire_decimal(fee),
        "feeCurrency": fee_currency,
        "orderId": order_id,
        "executedAt": iso_utc(executed_at),
    }
    if side == "sell":
        trade["profit"] = wire_decimal(profit if profit is not None else Decimal(0))
    return {"trade": trade}


def level_body(level: LevelView) -> dict[str, Any]:
    """A grid level as GET /bots/:id/grid-levels shows it (under `level`)."""
    fields: dict[str, Any] = {
        "_id": str(level.id),
        "price": wire_decimal(level.price),
        "type": level.type,
        "status": level.status,
    }
    if level.order_id is not None:
        fields["orderId"] = level.order_id
    if level.filled_at is not None:
        fields["filledAt"] = iso_utc(level.filled_at)
    return {"level": fields}


def status_body(status: str, error_message: str | None, stop_reason: str | None = None) -> dict[str, Any]:
    """A status change (and why the bot stopped, once it is not running)."""
    body: dict[str, Any] = {"status": status}
    if error_message:
        body["errorMessage"] = error_message
    if stop_reason:
        body["stopReason"] = stop_reason
    return body


def stats_body(handle: BotHandle) -> dict[str, Any]:
    """The bot's current statistics (currentProfit, profitPercent, totalTrades, lastExecutedAt)."""
    stats, investment = handle.stats, handle.row.investment_amount
    percent = (stats.profit / investment * 100).quantize(CENT, ROUND_HALF_UP) if investment else Decimal(0)
    return {
        "currentProfit": wire_decimal(stats.profit),
        "profitPercent": wire_decimal(percent),
        "totalTrades": stats.trades,
        "lastExecutedAt": iso_utc(stats.last_executed_at) if stats.last_executed_at else None,
    }


def stopped_row(bot_id: uuid.UUID, command_id: str, config_version: int, now: datetime) -> dict[str, Any]:
    """The `bot.stopped` confirmation the bots service waits for."""
    payload = BotStopped(bot_id=str(bot_id), config_version=config_version, command_id=command_id)
    return outbox_row(BOTS_EXCHANGE, BOT_STOPPED, payload.model_dump(mode="json"), now)
