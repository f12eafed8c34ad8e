"""How bots, levels and trades look on the wire (API.md field names; exact Decimals until here)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bots.stats import TradeStats, percent
from common.exchanges import Exchange, quote_currency
from common.i18n import t
from common.trading.models import Bot, BotStatus, GridLevel, Order, Trade
from common.web import iso_utc

# Errors the bots service itself puts on a bot, in both languages (the engine writes its own text).
ERROR_MESSAGES: dict[str, tuple[str, str]] = {
    "stop_unconfirmed": (
        "엔진이 봇 중지(미체결 주문 취소)를 확인하지 않았습니다. 다시 중지해 주세요",
        "The engine did not confirm the stop (cancelling open orders); please stop the bot again",
    ),
    "credential_invalidated": (
        "거래소 API 인증 정보가 더 이상 유효하지 않아 봇이 중지되었습니다",
        "The exchange rejected the stored API credentials; the bot was halted",
    ),
}


# orjson writes Python ints of 64 bits at most; larger whole numbers stay Decimals (written exactly too).
_INT_LIMIT = 2**63


def number(value: Decimal) -> int | Decimal:
    """A JSON number, exact (common.web writes Decimals digit for digit): 160000, not 160000.0."""
    if value == value.to_integral_value() and abs(value) < _INT_LIMIT:
        return int(value)
    return value


def error_message(bot: Bot) -> str | None:
    """The bot's error in the request's language when we know its cause, else the stored text."""
    if bot.error_code in ERROR_MESSAGES:
        ko, en = ERROR_MESSAGES[bot.error_code]
        return t(ko, en)
    return bot.error_message


def bot_fields(bot: Bot, stats: TradeStats) -> dict[str, Any]:
    """Every bot field of API.md (profit and trade counts from the trades table)."""
    profit = stats.realized_profit
    last = stats.last_executed_at or bot.last_executed_at
    return {
        "_id": str(bot.id),
        "exchange": bot.exchange,
        "ticker": bot.ticker,
        "status": bot.status,
        "mode": bot.mode,
        "gridType": bot.grid_type,
        "gridCount": bot.grid_count,
        "lowerPrice": number(bot.lower_price),
        "upperPrice": number(bot.upper_price),
        "priceChangePercent": number(bot.price_change_percent),
        "orderAmount": number(bot.order_amount),
        "stopAtMax": bot.stop_at_max,
        "investmentAmount": number(bot.investment_amount),
        "currentProfit": number(profit),
        "profitPercent": number(percent(profit, bot.investment_amount)),
        "totalTrades": stats.count,
        "createdAt": iso_utc(bot.created_at),
        "updatedAt": iso_utc(bot.updated_at),
        "lastExecutedAt": iso_utc(last) if last else None,
        "errorMessage": error_message(bot),
        # Why it is not running (API.md Wave 2); null while it runs, and for a bot never started.
        "stopReason": None if bot.status == BotStatus.RUNNING.value else bot.stop_reason,
    }


def list_summary(bots: Sequence[Bot], stats: Mapping[uuid.UUID, TradeStats]) -> dict[str, Any]:
    """`summary` of GET /bots: counts, and money per quote currency (KRW and USDT are never added together).

    `byCurrency` is always there; the top-level totalProfit/totalInvestment are the one currency's figures
    when the bots share a quote currency (0 when there are no bots), else null.
    """
    by_currency: dict[str, dict[str, Any]] = {}
    for bot in bots:
        figures = by_currency.setdefault(
            quote_currency(Exchange(bot.exchange)),
            {"totalBots": 0, "activeBots": 0, "totalProfit": Decimal(0), "totalInvestment": Decimal(0)},
        )
        figures["totalBots"] += 1
        figures["activeBots"] += bot.status == BotStatus.RUNNING.value
        figures["totalProfit"] += stats[bot.id].realized_profit
        figures["totalInvestment"] += bot.investment_amount
    totals: dict[str, Any] = {"totalProfit": None, "totalInvestment": None}
    if len(by_currency) <= 1:
        one = next(iter(by_currency.values()), {"totalProfit": Decimal(0), "totalInvestment": Decimal(0)})
        totals = {key: number(one[key]) for key in totals}
    return {
        "totalBots": len(bots),
        "activeBots": sum(1 for b in bots if b.status == BotStatus.RUNNING.value),
        **totals,
        "byCurrency": {currency: wire(figures) for currency, figures in sorted(by_currency.items())},
    }


def created_fields(bot: Bot) -> dict[str, Any]:
    """The 201 answer of POST /bots."""
    return {
        "botId": str(bot.id),
        "exchange": bot.exchange,
        "ticker": bot.ticker,
        "gridCount": bot.grid_count,
        "investmentAmount": number(bot.investment_amount),
        "status": bot.status,
        "mode": bot.mode,
        "gridType": bot.grid_type,
        "createdAt": iso_utc(bot.created_at),
    }


def level_fields(level: GridLevel) -> dict[str, Any]:
    """One grid level; `orderId` and `filledAt` only when set."""
    fields: dict[str, Any] = {
        "_id": str(level.id),
        "price": number(level.price),
        "type": level.type,
        "status": level.status,
    }
    if level.order_id is not None:
        fields["orderId"] = level.order_id
    if level.filled_at is not None:
        fields["filledAt"] = iso_utc(level.filled_at)
    return fields


def trade_fields(trade: Trade, order: Order) -> dict[str, Any]:
    """One trade; `profit` only on sells; `orderId` the exchange's id (paper: our client order id)."""
    fields: dict[str, Any] = {
        "_id": str(trade.id),
        "type": trade.side,
        "price": number(trade.price),
        "amount": number(trade.amount),
        "total": number(trade.total),
        "fee": number(trade.fee),
        "feeCurrency": trade.fee_currency,
        "orderId": order.exchange_order_id or order.client_order_id,
        "executedAt": iso_utc(trade.executed_at),
    }
    if trade.side == "sell":
        fields["profit"] = number(trade.profit if trade.profit is not None else Decimal(0))
    return fields


def wire(figures: dict[str, Any]) -> dict[str, Any]:
    """Decimals of a figures dict as JSON numbers."""
    return {k: number(v) if isinstance(v, Decimal) else v for k, v in figures.items()}
