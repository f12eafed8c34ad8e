"""Rows as the bot routes show them: the response models of bots.responses, built from the trading tables."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Row

from bots.reads import BotView
from bots.responses import BotDetail, BotRead, CreatedBot, CurrencySummary, Summary
from bots.stats import TradeStats
from common.contracts.public import BotFigures, GridLevelRead, TradeRead
from common.contracts.public import number as number  # the JSON number of a Decimal, as the routes write it
from common.exchanges import Exchange, quote_currency
from common.i18n import t
from trading.models import Bot, BotStatus

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


def error_message(bot: BotView) -> str | None:
    """The bot's error in the request's language when we know its cause, else the stored text."""
    if bot.error_code in ERROR_MESSAGES:
        ko, en = ERROR_MESSAGES[bot.error_code]
        return t(ko, en)
    return bot.error_message


def bot_read(bot: BotView, stats: TradeStats) -> BotRead:
    """Every bot field of API.md (profit and trade counts from the trades table)."""
    return BotRead(**_bot_fields(bot, stats))


def bot_detail(bot: BotView, stats: TradeStats, current_price: Decimal | None) -> BotDetail:
    """GET /bots/:id: every bot field, the latest market price and the base held (built once, not re-validated
    from a BotRead)."""
    return BotDetail(**_bot_fields(bot, stats), current_price=current_price, held_base=stats.held_base)


def _bot_fields(bot: BotView, stats: TradeStats) -> dict[str, Any]:
    figures = BotFigures.of(
        profit=stats.realized_profit,
        investment=bot.investment_amount,
        trades=stats.count,
        last_executed_at=stats.last_executed_at or bot.last_executed_at,
    )
    return dict(
        id=bot.id,
        exchange=bot.exchange,
        ticker=bot.ticker,
        status=bot.status,
        mode=bot.mode,
        grid_type=bot.grid_type,
        grid_count=bot.grid_count,
        lower_price=bot.lower_price,
        upper_price=bot.upper_price,
        price_change_percent=bot.price_change_percent,
        order_amount=bot.order_amount,
        stop_at_max=bot.stop_at_max,
        investment_amount=bot.investment_amount,
        trigger_price=bot.trigger_price,
        take_profit_price=bot.take_profit_price,
        stop_loss_price=bot.stop_loss_price,
        sell_base_on_stop=bot.sell_base_on_stop,
        trailing_up=bot.trailing_up,
        trailing_up_limit=bot.trailing_up_limit,
        triggered=bot.triggered,
        **dict(figures),
        created_at=bot.created_at,
        updated_at=bot.updated_at,
        error_message=error_message(bot),
        stop_reason=None if bot.status == BotStatus.RUNNING.value else bot.stop_reason,
    )


def list_summary(bots: Sequence[BotView], stats: Mapping[uuid.UUID, TradeStats]) -> Summary:
    """`summary` of GET /bots: counts, and money per quote currency (KRW and USDT are never added together).

    `byCurrency` is always there; the top-level totalProfit/totalInvestment are the one currency's figures
    when the bots share a quote currency (0 when there are no bots), else null.
    """
    by_currency: dict[str, CurrencySummary] = {}
    for bot in bots:
        figures = by_currency.setdefault(
            quote_currency(Exchange(bot.exchange)),
            CurrencySummary(
                total_bots=0, active_bots=0, total_profit=Decimal(0), total_investment=Decimal(0)
            ),
        )
        figures.total_bots += 1
        figures.active_bots += bot.status == BotStatus.RUNNING.value
        figures.total_profit += stats[bot.id].realized_profit
        figures.total_investment += bot.investment_amount
    profit: Decimal | None = None
    investment: Decimal | None = None
    if len(by_currency) <= 1:
        one = next(iter(by_currency.values()), None)
        profit = one.total_profit if one else Decimal(0)
        investment = one.total_investment if one else Decimal(0)
    return Summary(
        total_bots=len(bots),
        active_bots=sum(1 for b in bots if b.status == BotStatus.RUNNING.value),
        total_profit=profit,
        total_investment=investment,
        by_currency=dict(sorted(by_currency.items())),
    )


def created(bot: Bot) -> CreatedBot:
    """The 201 answer of POST /bots."""
    return CreatedBot(
        bot_id=bot.id,
        exchange=bot.exchange,
        ticker=bot.ticker,
        grid_count=bot.grid_count,
        investment_amount=bot.investment_amount,
        status=bot.status,
        mode=bot.mode,
        grid_type=bot.grid_type,
        created_at=bot.created_at,
    )


def level_read(row: Row[Any]) -> GridLevelRead:
    """One grid level of bots.reads' rows (built field by field: validating from the row's attributes tries
    each alias first, and a Row answers a missing name slowly)."""
    return GridLevelRead(
        id=row.id,
        price=row.price,
        type=row.type,
        status=row.status,
        order_id=row.order_id,
        filled_at=row.filled_at,
    )


def trade_read(row: Row[Any]) -> TradeRead:
    """One trade of a page (bots.reads); `orderId` the exchange's id (paper: our client order id)."""
    return TradeRead.of(
        trade_id=row.id,
        side=row.side,
        price=row.price,
        amount=row.amount,
        total=row.total,
        fee=row.fee,
        fee_currency=row.fee_currency,
        profit=row.profit,
        order_id=row.exchange_order_id or row.client_order_id,
        executed_at=row.executed_at,
    )
