"""Reads: the bot list with its summary, one bot, its grid levels, its trades and its performance."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.markets import MarketCatalog, cached_price
from bots.repository import BotRepository
from bots.responses import BotDetail, BotList, DailyPerformance, DayPerformance, Levels, Performance, Trades
from bots.service import owned_bot
from bots.stats import TradeStats, daily_stats, performance, trade_stats
from bots.views import bot_read, list_summary, trade_read
from common.cache import Cache
from common.contracts.public import GridLevelRead, Pagination
from common.dbtypes import utc_now
from common.exchanges import Exchange
from common.security import user_uuid
from trading.models import Bot


class BotQueries:
    """Every read of the bot routes, always scoped to the token's user and to bots not deleted."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        catalog: MarketCatalog,
        cache: Cache,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._factory = session_factory
        self._catalog = catalog
        self._cache = cache
        self._clock = clock

    async def _stats(self, session: AsyncSession, bots: list[Bot]) -> dict[uuid.UUID, TradeStats]:
        return await trade_stats(session, [(b.id, Exchange(b.exchange), b.ticker) for b in bots])

    async def list_bots(self, user_id: str, status: str | None, exchange: Exchange | None) -> BotList:
        """The user's bots after filters, newest first, with the summary over exactly those bots."""
        user = user_uuid(user_id)
        async with self._factory() as session:
            bots = await BotRepository(session).list_owned(user, status, exchange.value if exchange else None)
            stats = await self._stats(session, bots)
        return BotList(bots=[bot_read(b, stats[b.id]) for b in bots], summary=list_summary(bots, stats))

    async def get(self, user_id: str, bot_id: uuid.UUID | None) -> BotDetail:
        """Every field of one bot plus `currentPrice` from the price cache (null when none is cached)."""
        async with self._factory() as session:
            bot = await owned_bot(BotRepository(session), user_uuid(user_id), bot_id)
            stats = await self._stats(session, [bot])
        price = await cached_price(self._cache, bot.exchange, bot.ticker)
        read = bot_read(bot, stats[bot.id])
        return BotDetail(**dict(read), current_price=price, held_base=stats[bot.id].held_base)

    async def grid_levels(self, user_id: str, bot_id: uuid.UUID | None, status: str | None) -> Levels:
        """The bot's active levels ascending by price (trailing up retires some and adds others)."""
        async with self._factory() as session:
            repo = BotRepository(session)
            bot = await owned_bot(repo, user_uuid(user_id), bot_id)
            levels = await repo.levels(bot.id, status)
        return Levels(grid_levels=[GridLevelRead.model_validate(level) for level in levels])

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
        async with self._factory() as session:
            repo = BotRepository(session)
            bot = await owned_bot(repo, user_uuid(user_id), bot_id)
            total, rows = await repo.trades_page(bot.id, since=since, until=until, limit=limit, offset=offset)
        page = [trade_read(trade, order) for trade, order in rows]
        pagination = Pagination(total=total, limit=limit, offset=offset, has_more=offset + len(page) < total)
        return Trades(trades=page, pagination=pagination)

    async def performance(self, user_id: str, bot_id: uuid.UUID | None) -> Performance:
        """API.md's performance figures, every one from the trades table; held base marked to the market."""
        async with self._factory() as session:
            bot = await owned_bot(BotRepository(session), user_uuid(user_id), bot_id)
            stats = (await self._stats(session, [bot]))[bot.id]
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
        async with self._factory() as session:
            bot = await owned_bot(BotRepository(session), user_uuid(user_id), bot_id)
            days = await daily_stats(session, (bot.id, Exchange(bot.exchange), bot.ticker), since, until)
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
