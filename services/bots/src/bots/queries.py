"""Reads: the bot list with its summary, one bot, its grid levels, its trades and its performance."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from bots import reads
from bots.markets import MarketCatalog, cached_price
from bots.reads import BotView
from bots.responses import BotDetail, BotList, DailyPerformance, DayPerformance, Levels, Performance, Trades
from bots.stats import TradeStats, daily_stats, performance
from bots.views import bot_detail, bot_read, level_read, list_summary, trade_read
from common.cache import Cache
from common.contracts.public import Pagination
from common.dbtypes import utc_now
from common.errors import AppError, ErrorCode
from common.exchanges import Exchange
from common.security import user_uuid


class BotQueries:
    """Every read of the bot routes, always scoped to the token's user and to bots not deleted.

    Each read is one statement of bots.reads on a connection of its own: no session (no ORM instance is
    loaded) and no transaction (`engine` runs in AUTOCOMMIT: READ COMMITTED gave each statement its own
    snapshot anyway, and no connection waits idle in a transaction while the loop is busy).
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        catalog: MarketCatalog,
        cache: Cache,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._cache = cache
        self._clock = clock

    async def _one(self, user_id: str, bot_id: uuid.UUID | None) -> tuple[BotView, TradeStats]:
        if bot_id is not None:
            async with self._engine.connect() as conn:
                found = await reads.bots_with_totals(conn, user_uuid(user_id), bot_id=bot_id)
            if found:
                return found[0]
        raise AppError(ErrorCode.BOT_NOT_FOUND)

    async def list_bots(self, user_id: str, status: str | None, exchange: Exchange | None) -> BotList:
        """The user's bots after filters, newest first, with the summary over exactly those bots."""
        async with self._engine.connect() as conn:
            found = await reads.bots_with_totals(
                conn, user_uuid(user_id), status=status, exchange=exchange.value if exchange else None
            )
        bots = [bot for bot, _ in found]
        stats = {bot.id: totals for bot, totals in found}
        return BotList(bots=[bot_read(b, stats[b.id]) for b in bots], summary=list_summary(bots, stats))

    async def get(self, user_id: str, bot_id: uuid.UUID | None) -> BotDetail:
        """Every field of one bot plus `currentPrice` from the price cache (null when none is cached)."""
        bot, stats = await self._one(user_id, bot_id)
        price = await cached_price(self._cache, bot.exchange, bot.ticker)
        return bot_detail(bot, stats, price)

    async def grid_levels(self, user_id: str, bot_id: uuid.UUID | None, status: str | None) -> Levels:
        """The bot's active levels ascending by price (trailing up retires some and adds others)."""
        levels = None
        if bot_id is not None:
            async with self._engine.connect() as conn:
                levels = await reads.levels(conn, user_uuid(user_id), bot_id, status)
        if levels is None:
            raise AppError(ErrorCode.BOT_NOT_FOUND)
        return Levels(grid_levels=[level_read(level) for level in levels])

    async def trades(
        self,
        user_id: str,
        bot_id: uuid.UUID | None,
        *,
        limit: int,
        offset: int,
        since: datetime | None,
        until: datetime | None,
    ) -> Trades:
        """A page of the bot's trades executed in [since, until), newest first, and the pagination over the
        filtered whole."""
        found = None
        if bot_id is not None:
            async with self._engine.connect() as conn:
                found = await reads.trades_page(
                    conn, user_uuid(user_id), bot_id, since=since, until=until, limit=limit, offset=offset
                )
        if found is None:
            raise AppError(ErrorCode.BOT_NOT_FOUND)
        total, rows = found
        page = [trade_read(row) for row in rows]
        pagination = Pagination(total=total, limit=limit, offset=offset, has_more=offset + len(page) < total)
        return Trades(trades=page, pagination=pagination)

    async def performance(self, user_id: str, bot_id: uuid.UUID | None) -> Performance:
        """API.md's performance figures, every one from the trades table; held base marked to the market."""
        bot, stats = await self._one(user_id, bot_id)
        price: Decimal | None = None
        if stats.held_base != 0:
            exchange = Exchange(bot.exchange)
            price = await cached_price(self._cache, exchange, bot.ticker)
            if price is None:
                price = await self._catalog.last_price(exchange, bot.ticker)
        figures = performance(stats, bot.investment_amount, price, bot.first_started_at, self._clock())
        return Performance.model_validate(figures)

    async def daily(
        self, user_id: str, bot_id: uuid.UUID | None, since: datetime | None, until: datetime | None
    ) -> DailyPerformance:
        """The bot's trades in [since, until) per UTC day, oldest first; they add up to `performance`."""
        bot = None
        async with self._engine.connect() as conn:
            if bot_id is not None:
                bot = await reads.owned_view(conn, user_uuid(user_id), bot_id)
            if bot is None:
                raise AppError(ErrorCode.BOT_NOT_FOUND)
            days = await daily_stats(conn, (bot.id, Exchange(bot.exchange), bot.ticker), since, until)
        return DailyPerformance(
            days=[
                DayPerformance(
                    date=d.day.isoformat(),
                    profit=d.profit,
                    trades=d.buys + d.sells,
                    buy_trades=d.buys,
                    sell_trades=d.sells,
                    fees=d.fees,
                )
                for d in days
            ]
        )
