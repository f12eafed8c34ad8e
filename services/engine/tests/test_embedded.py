"""The embedded mode (`make run`): SQLite, the in-process bus and cache — a paper bot trades there too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from engine_support import (
    BotFactory,
    BotSpec,
    TickPublisher,
    cache_price,
    orders_of,
    performance_of,
    publish_command,
    trades_of,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.bus import Bus
from common.cache import Cache
from common.contracts.bots import BotEvent
from common.db import create_engine, create_session_factory
from common.runtime import acquire_bus, acquire_cache, release_bus, release_cache
from common.testing.wait import eventually
from engine.runtime import EngineRuntime
from trading.migrate import upgrade
from trading.models import SCHEMA

D = Decimal


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file with the bots schema."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('engine-sqlite') / 'gridbot.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on it."""
    engine = create_engine(sqlite_url, schemas=[SCHEMA])
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def shared(namespace: str) -> AsyncIterator[tuple[Bus, Cache]]:
    """The process's in-memory bus and cache (what every service of the embedded mode shares)."""
    bus = await acquire_bus("memory://", namespace)
    cache = await acquire_cache("memory://", namespace)
    yield bus, cache
    await release_cache(cache)
    await release_bus(bus)


async def test_a_paper_round_trip_on_sqlite_and_the_in_process_bus(
    settings_for: Any,
    credentials: Any,
    sqlite_url: str,
    sqlite_db: async_sessionmaker[AsyncSession],
    shared: tuple[Bus, Cache],
) -> None:
    bus, cache = shared
    bots = BotFactory(sqlite_db)
    engine = EngineRuntime(
        settings_for(database_url=sqlite_url, redis_url="memory://", rabbitmq_url="memory://"),
        credentials_transport=credentials.transport(),
    )
    await engine.start()
    try:
        assert len(engine.shards) == 1  # one writer on SQLite
        bot = await bots.create(BotSpec())
        await cache_price(cache, "KRW-BTC", "53500000")
        await publish_command(bus, bot, BotEvent.START)
        await eventually(lambda: _open(sqlite_db, bot.id, 4), timeout=10)
        ticks = TickPublisher(bus)
        await ticks.send(ticks.tick(53_000_000, 53_500_000, 53_000_000))
        await eventually(lambda: _trades(sqlite_db, bot.id, 1), timeout=10)
        await eventually(lambda: _open(sqlite_db, bot.id, 4), timeout=10)  # three buys and the sell
        await ticks.send(ticks.tick(54_500_000, 54_500_000, 53_400_000))
        await eventually(lambda: _trades(sqlite_db, bot.id, 2), timeout=10)
        trades = await trades_of(sqlite_db, bot.id)
        sell = trades[1]
        assert sell.side == "sell" and sell.profit is not None and sell.profit > 0
        figures = await performance_of(sqlite_db, await bots.bot(bot.id), D(54_500_000))
        assert figures["totalProfit"] == sell.profit

        # Restarted: the bot is held dormant (from its stored state) and trades at the next crossing.
        await engine.stop()
        engine = EngineRuntime(engine.settings, credentials_transport=credentials.transport())
        await engine.start()
        handle = engine.registry.handles[bot.id]
        assert handle.dormant is not None and handle.watch is not None
        assert handle.watch.highest_buy is not None
        low = handle.watch.highest_buy
        await ticks.send(ticks.tick(low, low + 1000, low))
        await eventually(lambda: _trades(sqlite_db, bot.id, 3), timeout=10)
        assert engine.registry.handles[bot.id].dormant is None
    finally:
        if engine.started:
            await engine.stop()
        await bots.cleanup()


async def _open(db: async_sessionmaker[AsyncSession], bot_id: Any, count: int) -> bool:
    return sum(1 for o in await orders_of(db, bot_id) if o.status == "open") == count


async def _trades(db: async_sessionmaker[AsyncSession], bot_id: Any, count: int) -> bool:
    return len(await trades_of(db, bot_id)) == count
