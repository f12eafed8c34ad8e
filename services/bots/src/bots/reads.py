"""The statements of the bot read routes: one per request, ownership folded in, built once at import.

Each read is one SELECT whose FROM starts at the user's bot (`bots` scoped to the token's user and to bots not
deleted), so no row means BOT_NOT_FOUND and the route needs no lookup of its own first. The statements are
built once (per variant of the optional filters) with bound parameters: SQLAlchemy then neither rebuilds nor
re-keys them per request, and Core selects of the columns the routes show load no ORM instances (nor the bot's
market rules). Measured in bench/bots_reads.py (docs/api-load.md).
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, Row, Select, Table, and_, bindparam, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from bots.stats import TradeStats, base_asset, fee_kind
from common.exchanges import Exchange, quote_currency
from trading.models import Bot, GridLevel, Order, Trade

BOTS = cast(Table, Bot.__table__)
LEVELS = cast(Table, GridLevel.__table__)
TRADES = cast(Table, Trade.__table__)
ORDERS = cast(Table, Order.__table__)


@dataclass(frozen=True, slots=True)
class BotView:
    """The columns of a bot the read routes show (fields named and ordered as the columns selected)."""

    id: uuid.UUID
    exchange: str
    ticker: str
    status: str
    mode: str
    grid_type: str
    grid_count: int
    lower_price: Decimal
    upper_price: Decimal
    price_change_percent: Decimal
    order_amount: Decimal
    stop_at_max: bool
    investment_amount: Decimal
    trigger_price: Decimal | None
    take_profit_price: Decimal | None
    stop_loss_price: Decimal | None
    sell_base_on_stop: bool
    trailing_up: bool
    trailing_up_limit: Decimal | None
    triggered: bool
    error_message: str | None
    error_code: str | None
    stop_reason: str | None
    created_at: datetime
    updated_at: datetime
    first_started_at: datetime | None
    last_executed_at: datetime | None


BOT_COLUMNS = tuple(BOTS.c[f.name] for f in dataclasses.fields(BotView))
_WIDTH = len(BOT_COLUMNS)


def _owned() -> ColumnElement[bool]:
    """The user's bot unless deleted: another user's bot is not found either."""
    return and_(BOTS.c.user_id == bindparam("user"), BOTS.c.deleted_at.is_(None))


# --- bots with their trade totals (list, one bot, performance) ------------------------------------------------

# PostgreSQL sums NUMERIC exactly, grouped per (bot, side, fee currency); the other bot columns depend on the
# key bots.id, so they may be selected as they are.
_GROUPED = (
    TRADES.c.side,
    TRADES.c.fee_currency,
    func.count(TRADES.c.id),
    func.sum(TRADES.c.amount),
    func.sum(TRADES.c.total),
    func.sum(TRADES.c.fee),
    func.sum(TRADES.c.profit),
    func.max(TRADES.c.executed_at),
)
# SQLite keeps money as text, which SQL would sum as floats: one row per trade, summed in Python.
_PLAIN = (
    TRADES.c.side,
    TRADES.c.fee_currency,
    TRADES.c.amount,
    TRADES.c.total,
    TRADES.c.fee,
    TRADES.c.profit,
    TRADES.c.executed_at,
)
_WITH_TRADES = BOTS.outerjoin(TRADES, TRADES.c.bot_id == BOTS.c.id)


@functools.cache
def _bots_with_totals(grouped: bool, one: bool, status: bool, exchange: bool) -> Select[Any]:
    query = select(*BOT_COLUMNS, *(_GROUPED if grouped else _PLAIN)).select_from(_WITH_TRADES).where(_owned())
    if one:
        query = query.where(BOTS.c.id == bindparam("bot"))
    if status:
        query = query.where(BOTS.c.status == bindparam("status"))
    if exchange:
        query = query.where(BOTS.c.exchange == bindparam("exchange"))
    if grouped:
        query = query.group_by(BOTS.c.id, TRADES.c.side, TRADES.c.fee_currency)
    # A bot's rows are adjacent: the order ends with its id.
    return query.order_by(BOTS.c.created_at.desc(), BOTS.c.id)


async def bots_with_totals(
    conn: AsyncConnection,
    user: uuid.UUID,
    *,
    bot_id: uuid.UUID | None = None,
    status: str | None = None,
    exchange: str | None = None,
) -> list[tuple[BotView, TradeStats]]:
    """The user's bots (one of them, or those of a status and exchange), newest first, each with the totals
    of its trades; bots without trades get empty totals."""
    grouped = conn.dialect.name == "postgresql"
    query = _bots_with_totals(grouped, bot_id is not None, status is not None, exchange is not None)
    params = {"user": user, "bot": bot_id, "status": status, "exchange": exchange}
    rows = await conn.execute(query, params)
    out: list[tuple[BotView, TradeStats]] = []
    assets: tuple[str, str] = ("", "")
    for row in rows:
        if not out or out[-1][0].id != row[0]:
            bot = BotView(*row[:_WIDTH])
            assets = _assets(bot)
            out.append((bot, TradeStats()))
        side = row[_WIDTH]
        if side is None:  # the bot has no trades
            continue
        if grouped:
            _, currency, count, amount, total, fee, profit, last = row[_WIDTH:]
        else:
            _, currency, amount, total, fee, profit, last = row[_WIDTH:]
            count = 1
        out[-1][1].add(
            side,
            fee_kind(currency, *assets),
            int(count),
            amount,
            total,
            fee or Decimal(0),
            profit or Decimal(0),
            last,
        )
    return out


def _assets(bot: BotView) -> tuple[str, str]:
    exchange = Exchange(bot.exchange)
    return quote_currency(exchange), base_asset(exchange, bot.ticker).upper()


@functools.cache
def _owned_bot() -> Select[Any]:
    return select(*BOT_COLUMNS).where(_owned(), BOTS.c.id == bindparam("bot"))


async def owned_view(conn: AsyncConnection, user: uuid.UUID, bot_id: uuid.UUID) -> BotView | None:
    """The user's bot (its shown columns) unless deleted."""
    row = (await conn.execute(_owned_bot(), {"user": user, "bot": bot_id})).first()
    return None if row is None else BotView(*row)


# --- grid levels ----------------------------------------------------------------------------------------------

_LEVEL_COLUMNS = (
    LEVELS.c.id,
    LEVELS.c.price,
    LEVELS.c.type,
    LEVELS.c.status,
    LEVELS.c.order_id,
    LEVELS.c.filled_at,
)


@functools.cache
def _levels(status: bool) -> Select[Any]:
    # Levels that trailing up moved the grid past are kept (inactive) for their history, not shown.
    condition = and_(LEVELS.c.bot_id == BOTS.c.id, LEVELS.c.active.is_(True))
    if status:
        condition = and_(condition, LEVELS.c.status == bindparam("status"))
    return (
        select(BOTS.c.id.label("bot_id"), *_LEVEL_COLUMNS)
        .select_from(BOTS.outerjoin(LEVELS, condition))
        .where(_owned(), BOTS.c.id == bindparam("bot"))
        .order_by(LEVELS.c.level_index)
    )


async def levels(
    conn: AsyncConnection, user: uuid.UUID, bot_id: uuid.UUID, status: str | None
) -> list[Row[Any]] | None:
    """The bot's active levels (optionally of one status) ascending by price; None when it is not the user's."""
    rows = (
        await conn.execute(_levels(status is not None), {"user": user, "bot": bot_id, "status": status})
    ).all()
    if not rows:
        return None
    shown = [row for row in rows if row.id is not None]
    # By price in Python (money is text on SQLite); ties, which a grid never has, keep the index order.
    return sorted(shown, key=lambda level: level.price)


# --- trades ---------------------------------------------------------------------------------------------------

_TRADE_COLUMNS = (
    TRADES.c.id,
    TRADES.c.side,
    TRADES.c.price,
    TRADES.c.amount,
    TRADES.c.total,
    TRADES.c.fee,
    TRADES.c.fee_currency,
    TRADES.c.profit,
    ORDERS.c.exchange_order_id,
    ORDERS.c.client_order_id,
    TRADES.c.executed_at,
)


@functools.cache
def _trades(since: bool, until: bool) -> Select[Any]:
    conditions = [TRADES.c.bot_id == bindparam("bot")]
    if since:
        conditions.append(TRADES.c.executed_at >= bindparam("since"))
    if until:
        conditions.append(TRADES.c.executed_at < bindparam("until"))
    # The page and the count are subqueries of their own, each planned as it was on its own (the page a
    # backward range scan of ix_trades_bot_id_executed_at that stops after offset + limit rows, the count
    # once): joined to the owned bot, an empty page still answers its row, so "not found" is "no row".
    page = (
        select(*_TRADE_COLUMNS, TRADES.c.created_at)
        .join_from(TRADES, ORDERS, TRADES.c.order_id == ORDERS.c.id)
        .where(*conditions)
        # Ties broken by insertion time, then id: pages never overlap or skip.
        .order_by(TRADES.c.executed_at.desc(), TRADES.c.created_at.desc(), TRADES.c.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery("page")
    )
    matching = select(func.count()).select_from(TRADES).where(*conditions).scalar_subquery()
    return (
        select(matching.label("matching"), *(page.c[c.name] for c in _TRADE_COLUMNS))
        .select_from(BOTS.outerjoin(page, true()))
        .where(_owned(), BOTS.c.id == bindparam("bot"))
        .order_by(page.c.executed_at.desc(), page.c.created_at.desc(), page.c.id.desc())
    )


async def trades_page(
    conn: AsyncConnection,
    user: uuid.UUID,
    bot_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[int, Sequence[Row[Any]]] | None:
    """How many trades of the bot were executed in [since, until), and one page of them (with their orders'
    ids), newest first; None when the bot is not the user's."""
    params = {
        "user": user,
        "bot": bot_id,
        "since": since,
        "until": until,
        "limit": limit,
        "offset": offset,
    }
    rows = (await conn.execute(_trades(since is not None, until is not None), params)).all()
    if not rows:
        return None
    return int(rows[0].matching), [row for row in rows if row.id is not None]
