"""Engine test support: settings, bots created the way the bots service creates them, commands, ticks."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bots.commands import command_payload
from bots.service import level_rows
from bots.stats import performance, trade_stats
from common.bus import Bus, Envelope
from common.cache import Cache
from common.contracts.bots import BOTS_EXCHANGE, BotEvent
from common.contracts.envelope import new_message_id
from common.contracts.market import MARKET_EXCHANGE, PriceTick
from common.exchanges import Exchange, sim_exchange_env
from common.grid import MarketRules, plan_grid
from common.testing.shared import shared_file
from engine.settings import Settings
from trading.models import Bot, GridLevel, Order, Trade

D = Decimal
INTERNAL_TOKEN = "engine-tests-internal-token-0123456789abcdef-0123456789abcdef"


def make_settings(
    database_url: str, redis_url: str, rabbitmq_url: str, namespace: str, sim_url: str, **overrides: Any
) -> Settings:
    """Engine settings for one test: its namespaces, the simulator, quick timings."""
    values: dict[str, Any] = {key.lower(): value for key, value in sim_exchange_env(sim_url).items()}
    values.update(
        environment="test",
        log_json=False,
        database_url=database_url,
        database_pool_size=20,
        redis_url=redis_url,
        cache_namespace=namespace,
        rabbitmq_url=rabbitmq_url,
        bus_namespace=namespace,
        internal_keys_token=INTERNAL_TOKEN,
        credentials_url="http://credentials.test",
        engine_id=f"engine-{namespace}",
        engine_shards=4,
        exchange_timeout_seconds=2.0,
        outbox_poll_seconds=0.2,
        reconcile_interval_seconds=3600,
        order_check_min_interval_seconds=0.0,
    )
    values.update(overrides)
    return Settings(**values)


def binance_rules() -> MarketRules:
    """Binance BTCUSDT as the simulator lists it (tick 0.01, step 0.00001, min notional 5)."""
    path = shared_file("wire", "binance_exchangeInfo_symbol_BTCUSDT_ccxt.json")
    info: dict[str, Any] = json.loads(path.read_text())
    market = {"id": "BTCUSDT", "base": "BTC", "quote": "USDT", "maker": 0.001, "taker": 0.001, "info": info}
    return MarketRules.from_ccxt_market(market)


@dataclass
class BotSpec:
    """A bot as POST /bots would create it."""

    exchange: str = "upbit"
    ticker: str = "KRW-BTC"
    lower: Decimal = field(default_factory=lambda: D(50_000_000))
    upper: Decimal = field(default_factory=lambda: D(70_000_000))
    percent: Decimal = field(default_factory=lambda: D(2))
    amount: Decimal = field(default_factory=lambda: D(10_000))
    mode: str = "paper"
    stop_at_max: bool = False
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # Grid options by their `bots` column names (trigger_price, stop_loss_price, trailing_up, …).
    options: dict[str, Any] = field(default_factory=dict)

    def rules(self) -> MarketRules:
        """The exchange rules the bots service stores with the bot."""
        return MarketRules.upbit_krw(base="BTC") if self.exchange == "upbit" else binance_rules()


class BotFactory:
    """Creates bots rows + grid levels exactly as the bots service does; cleans them up afterwards."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.factory = factory
        self.created: list[uuid.UUID] = []

    async def create(self, spec: BotSpec, *, status: str = "running", bot_id: uuid.UUID | None = None) -> Bot:
        """Insert the bot and its levels (status running: what autoStart commits)."""
        rules = spec.rules()
        plan = plan_grid(spec.lower, spec.upper, spec.percent, spec.amount, rules)
        now = datetime.now(UTC)
        bot = Bot(
            id=bot_id or uuid.uuid4(),
            user_id=spec.user_id,
            exchange=spec.exchange,
            ticker=spec.ticker,
            mode=spec.mode,
            grid_type="geometric",
            lower_price=spec.lower,
            upper_price=spec.upper,
            price_change_percent=spec.percent,
            grid_count=plan.grid_count,
            order_amount=spec.amount,
            investment_amount=plan.investment_amount,
            stop_at_max=spec.stop_at_max,
            status=status,
            market_rules=rules.to_dict(),
            config_version=1,
            created_at=now,
            updated_at=now,
            first_started_at=now,
            triggered=spec.options.get("trigger_price") is None,
            **spec.options,
        )
        async with self.factory() as session:
            session.add(bot)
            await session.flush()
            session.add_all(level_rows(bot.id, plan.levels))
            await session.commit()
        self.created.append(bot.id)
        return bot

    async def request_stop(self, bot_id: uuid.UUID) -> Bot:
        """What the bots service commits for a stop: the pending stop command id."""
        command_id = new_message_id()
        async with self.factory() as session:
            await session.execute(update(Bot).where(Bot.id == bot_id).values(stop_command_id=command_id))
            await session.commit()
        return await self.bot(bot_id)

    async def request_start(self, bot_id: uuid.UUID) -> Bot:
        """What the bots service commits for a start: running, no stop pending, no error or stop reason."""
        async with self.factory() as session:
            await session.execute(
                update(Bot)
                .where(Bot.id == bot_id)
                .values(
                    status="running",
                    stop_command_id=None,
                    stop_requested_at=None,
                    error_message=None,
                    error_code=None,
                    stop_reason=None,
                )
            )
            await session.commit()
        return await self.bot(bot_id)

    async def bot(self, bot_id: uuid.UUID) -> Bot:
        """The bot row now."""
        async with self.factory() as session:
            return (await session.execute(select(Bot).where(Bot.id == bot_id))).scalar_one()

    async def cleanup(self) -> None:
        """Take this test's bots out of every later engine's way."""
        if not self.created:
            return
        async with self.factory() as session:
            await session.execute(
                update(Bot)
                .where(Bot.id.in_(self.created))
                .values(status="stopped", stop_command_id=None, deleted_at=func.now())
            )
            await session.execute(
                update(Order)
                .where(Order.bot_id.in_(self.created), Order.status.in_(("new", "open")))
                .values(status="canceled")
            )
            await session.commit()


async def cache_price(cache: Cache, ticker: str, price: str, exchange: str = "upbit") -> None:
    """Write a price the way market-data does: with the time of its last trade (now), so it counts as fresh."""
    await cache.hset(
        f"price:{exchange}:{ticker}", {"price": price, "timestamp": datetime.now(UTC).isoformat()}
    )


async def publish_command(bus: Bus, bot: Bot, event: BotEvent, status: str = "running") -> Envelope:
    """A lifecycle command as the bots service's outbox relays it (message id = command id)."""
    command_id = bot.stop_command_id if event is BotEvent.STOP and bot.stop_command_id else new_message_id()
    payload = command_payload(bot, status, command_id)
    return await bus.publish(BOTS_EXCHANGE, event.value, payload, message_id=command_id)


class TickPublisher:
    """Price ticks as market-data publishes them (one epoch, seq +1 per tick)."""

    def __init__(self, bus: Bus, exchange: str = "upbit", ticker: str = "KRW-BTC") -> None:
        self.bus = bus
        self.exchange = exchange
        self.ticker = ticker
        self.epoch = uuid.uuid4().hex[:12]
        self._seq = itertools.count(1)

    def tick(
        self, last: Decimal | int | str, high: Decimal | int | str, low: Decimal | int | str
    ) -> PriceTick:
        """The next tick."""
        now = datetime.now(UTC)
        return PriceTick(
            exchange=Exchange(self.exchange),
            ticker=self.ticker,
            last=D(last),
            high=D(high),
            low=D(low),
            seq=next(self._seq),
            epoch=self.epoch,
            trades=1,
            first_trade_at=now,
            last_trade_at=now,
            published_at=now,
        )

    async def send(self, tick: PriceTick, message_id: str | None = None) -> Envelope:
        """Publish a tick (non-persistent, as market-data does)."""
        return await self.bus.publish(
            MARKET_EXCHANGE, tick.routing_key, tick, message_id=message_id, persistent=False
        )


async def orders_of(factory: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> list[Order]:
    """The bot's orders, oldest first."""
    async with factory() as session:
        rows = await session.execute(
            select(Order).where(Order.bot_id == bot_id).order_by(Order.created_at, Order.slot)
        )
        return list(rows.scalars())


async def trades_of(factory: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> list[Trade]:
    """The bot's trades, oldest first."""
    async with factory() as session:
        rows = await session.execute(select(Trade).where(Trade.bot_id == bot_id).order_by(Trade.created_at))
        return list(rows.scalars())


async def levels_of(factory: async_sessionmaker[AsyncSession], bot_id: uuid.UUID) -> list[GridLevel]:
    """The bot's grid level rows, ascending."""
    async with factory() as session:
        rows = await session.execute(
            select(GridLevel).where(GridLevel.bot_id == bot_id).order_by(GridLevel.level_index)
        )
        return list(rows.scalars())


async def performance_of(
    factory: async_sessionmaker[AsyncSession], bot: Bot, price: Decimal
) -> dict[str, Any]:
    """GET /bots/:id/performance's figures, computed by the bots service's own code."""
    async with factory() as session:
        stats = await trade_stats(session, [(bot.id, Exchange(bot.exchange), bot.ticker)])
    return performance(stats[bot.id], bot.investment_amount, price, bot.first_started_at, datetime.now(UTC))


class EventSink:
    """Every message seen on one exchange, in arrival order."""

    def __init__(self) -> None:
        self.received: list[Envelope] = []

    async def handle(self, envelope: Envelope) -> None:
        """Bus handler."""
        self.received.append(envelope)

    def of(self, kind: str, bot_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """User events of one type (about one bot), unpacked from the per-transaction messages, in order."""
        return [
            {**event, "userId": e.payload["userId"]}
            for e in self.received
            for event in e.payload.get("events", [])
            if event.get("type") == kind and (bot_id is None or event.get("botId") == str(bot_id))
        ]

    def typed(self, routing_key: str) -> list[Envelope]:
        """Envelopes with this routing key."""
        return [e for e in self.received if e.type == routing_key]


@dataclass
class CredentialsStub:
    """The credentials service's internal route as the engine relies on it, served in-process."""

    token: str = INTERNAL_TOKEN
    keys: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    calls: int = 0

    def set(self, user_id: uuid.UUID | str, exchange: str, api_key: str, secret: str) -> None:
        """Give a user keys on an exchange."""
        self.keys[(str(user_id), exchange)] = (api_key, secret)

    async def _keys(self, request: Request) -> JSONResponse:
        self.calls += 1
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"success": False, "error": {"code": "INVALID_TOKEN"}}, status_code=401)
        found = self.keys.get((request.path_params["user_id"], request.path_params["exchange"]))
        if found is None:
            return JSONResponse(
                {"success": False, "error": {"code": "CREDENTIAL_NOT_FOUND"}}, status_code=404
            )
        return JSONResponse({"success": True, "data": {"apiKey": found[0], "secretKey": found[1]}})

    def app(self) -> Starlette:
        """The route as an ASGI app."""
        return Starlette(routes=[Route("/internal/credentials/{user_id}/{exchange}", self._keys)])

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport serving the route in-process."""
        return httpx.ASGITransport(self.app())


async def market_pause(rng: random.Random) -> None:
    """The simulated market's own pace between two trades (scenario timing, not a wait for the engine)."""
    await asyncio.sleep(rng.uniform(0.05, 0.3))
