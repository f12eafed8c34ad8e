"""The shared trading tables: the constraints that make double counting impossible, on both databases;
and the command contract between the bots service and the engine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.contracts.bots import BotLifecycle
from common.contracts.envelope import Envelope
from common.db import create_engine, create_session_factory
from common.exchanges import Exchange
from trading.commands import BotCommand, BotStopped
from trading.models import SCHEMA, Base, Bot, GridLevel, Order, Trade

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test process's PostgreSQL database, or a scratch SQLite file."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'trading.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[Factory]:
    """The trading tables in a scratch schema (PostgreSQL) or a scratch file (SQLite)."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, schemas=[SCHEMA])
        schema = None
    else:
        # Its own schema: the trading store's migrations own `bots` in the same test database.
        schema = f"trading_{uuid.uuid4().hex[:10]}"
        base = create_engine(database_url)
        engine = base.execution_options(schema_translate_map={SCHEMA: schema})
        async with base.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield create_session_factory(engine)
    finally:
        if schema is not None:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


def _bot(**overrides: Any) -> Bot:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "exchange": "upbit",
        "ticker": "KRW-BTC",
        "lower_price": Decimal(50000000),
        "upper_price": Decimal(70000000),
        "price_change_percent": Decimal(2),
        "grid_count": 16,
        "order_amount": Decimal(10000),
        "investment_amount": Decimal(160000),
        "market_rules": {},
    }
    values.update(overrides)
    return Bot(**values)


def _order(bot: Bot, client_id: str, exchange_id: str | None, exchange: str = "upbit") -> Order:
    return Order(
        id=uuid.uuid4(),
        bot_id=bot.id,
        exchange=exchange,
        client_order_id=client_id,
        exchange_order_id=exchange_id,
        slot=0,
        side="buy",
        price=Decimal(50000000),
        quantity=Decimal("0.0002"),
    )


def _trade(order: Order, fill_id: str) -> Trade:
    return Trade(
        bot_id=order.bot_id,
        order_id=order.id,
        fill_id=fill_id,
        side="buy",
        price=Decimal(50000000),
        amount=Decimal("0.0002"),
        total=Decimal(10000),
        fee=Decimal(5),
        fee_currency="KRW",
        executed_at=datetime(2025, 1, 23, tzinfo=UTC),
    )


async def _fails(factory: Factory, *rows: Any) -> bool:
    async with factory() as session:
        session.add_all(rows)
        try:
            await session.commit()
        except IntegrityError:
            return True
    return False


async def test_an_order_or_a_fill_can_be_recorded_only_once(factory: Factory) -> None:
    bot = _bot()
    order = _order(bot, "gb-1-s0-c1", "ex-1")
    async with factory() as session:
        session.add(bot)
        await session.flush()
        session.add_all([order, _order(bot, "gb-1-s1-c1", None), _order(bot, "gb-1-s2-c1", None)])
        await session.flush()
        session.add(_trade(order, "fill-1"))
        await session.commit()
    assert await _fails(factory, _order(bot, "gb-1-s0-c1", "ex-2"))  # same client order id
    assert await _fails(factory, _order(bot, "gb-1-s3-c1", "ex-1"))  # same exchange order id
    assert await _fails(factory, _trade(order, "fill-1"))  # the same fill twice
    # The same exchange id on the other exchange is another order; another fill is another trade.
    assert not await _fails(factory, _order(bot, "gb-1-s4-c1", "ex-1", exchange="binance"))
    assert not await _fails(factory, _trade(order, "fill-2"))


async def test_closed_vocabularies_and_exact_money(factory: Factory) -> None:
    assert await _fails(factory, _bot(status="paused"))
    assert await _fails(factory, _bot(mode="demo"))
    assert await _fails(factory, _bot(grid_count=0))
    bot = _bot(
        order_amount=Decimal("0.000000000000000001"), lower_price=Decimal("123456789.123456789012345678")
    )
    async with factory() as session:
        session.add(bot)
        await session.flush()
        session.add(GridLevel(bot_id=bot.id, level_index=0, price=Decimal("0.1")))
        await session.commit()
    assert await _fails(factory, GridLevel(bot_id=bot.id, level_index=0, price=Decimal("0.2")))
    assert await _fails(factory, GridLevel(bot_id=bot.id, level_index=1, price=Decimal(1), status="open"))
    async with factory() as session:
        stored = await session.get(Bot, bot.id)
        assert stored is not None
        assert stored.order_amount == Decimal("1E-18")
        assert stored.lower_price == Decimal("123456789.123456789012345678")
        assert stored.status == "stopped" and stored.config_version == 1 and stored.stop_command_id is None


def test_a_command_is_a_lifecycle_message_for_older_consumers() -> None:
    command = BotCommand(
        bot_id="b1",
        user_id="u1",
        exchange=Exchange.UPBIT,
        ticker="KRW-BTC",
        status="stopped",  # type: ignore[arg-type]
        config_version=3,
        command_id="c" * 32,
    )
    wire = Envelope(type="bot.stop", payload=command.model_dump(mode="json"), message_id="c" * 32).to_json()
    received = Envelope.from_json(wire)
    assert received.payload_as(BotCommand) == command
    lifecycle = received.payload_as(BotLifecycle)  # what market-data reads
    assert lifecycle.bot_id == "b1" and not lifecycle.is_running
    with pytest.raises(ValueError, match="config_version"):
        BotCommand.model_validate({**command.model_dump(), "config_version": 0})


def test_stop_confirmation() -> None:
    stopped = BotStopped.model_validate({"bot_id": "b1", "config_version": 2, "command_id": "c1", "extra": 1})
    assert stopped.open_orders == 0
    with pytest.raises(ValueError, match="open_orders"):
        BotStopped.model_validate(
            {"bot_id": "b1", "config_version": 2, "command_id": "c1", "open_orders": -1}
        )
