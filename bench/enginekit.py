"""What the engine benchmarks share: a scratch database with the bots schema, paper bots seeded and started
as the bots service does it, market-data's price cache, and price ticks from another process.

Imported by bench/engine.py and bench/takeover.py (which put bench/ at the end of sys.path, or
bench/engine.py would shadow the `engine` package); engine processes are in enginereplicas.py.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import asyncpg
from sqlalchemy import insert

from bots.commands import command_payload
from common.bus import create_bus
from common.bus.port import make_envelope
from common.cache import Cache
from common.contracts.bots import BOTS_EXCHANGE, BotEvent
from common.contracts.market import MARKET_EXCHANGE, PriceTick
from common.db import create_engine, create_session_factory
from common.exchanges import Exchange
from common.grid import MarketRules, plan_grid
from common.runtime import acquire_cache, release_cache
from common.testing.shared import shared_dir
from trading.migrate import upgrade
from trading.models import SCHEMA, Bot, GridLevel
from trading.partitions import new_bot_id

D = Decimal
TICKERS = [f"B{n:02d}USDT" for n in range(20)]
BASE_PRICE = D(100_000)


def rules() -> MarketRules:
    """Binance BTCUSDT's rules (tick 0.01, step 0.00001, min notional 5)."""
    path = shared_dir() / "wire" / "binance_exchangeInfo_symbol_BTCUSDT_ccxt.json"
    if path.exists():
        info: dict[str, Any] = json.loads(path.read_text())
        market = {
            "id": "BTCUSDT",
            "base": "BTC",
            "quote": "USDT",
            "maker": 0.001,
            "taker": 0.001,
            "info": info,
        }
        return MarketRules.from_ccxt_market(market)
    return MarketRules.binance(
        base="BTC",
        quote="USDT",
        tick_size=D("0.01"),
        lot_step=D("0.00001"),
        min_qty=D("0.00001"),
        min_notional=D(5),
    )


# --- the database ---------------------------------------------------------------------------------------


async def create_database(admin: str) -> str:
    """A fresh database with the bots schema (trading.migrate); its SQLAlchemy URL."""
    name = f"gridbot_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = admin.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(upgrade, url)
    return url


async def drop_database(admin: str, url: str) -> None:
    """Drop a bench database."""
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


def plain(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def seed(url: str, count: int, rng: random.Random) -> list[Bot]:
    """N running paper bots with their grid levels (random geometric grids around the price), inserted as
    the bots service creates them."""
    market = rules()
    now = datetime.now(UTC)
    bots: list[dict[str, Any]] = []
    levels: list[dict[str, Any]] = []
    for n in range(count):
        lower = (BASE_PRICE * D(1 - rng.uniform(0.04, 0.12))).quantize(D("0.01"))
        upper = (BASE_PRICE * D(1 + rng.uniform(0.04, 0.12))).quantize(D("0.01"))
        percent = D(str(round(rng.uniform(0.4, 1.5), 2)))
        plan = plan_grid(lower, upper, percent, D(20), market)
        ticker = TICKERS[n % len(TICKERS)]
        # As the bots service makes ids: in the market's partition.
        bot_id = new_bot_id("binance", ticker, uuid.UUID(int=rng.getrandbits(128), version=4))
        bots.append(
            {
                "id": bot_id,
                "user_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "exchange": "binance",
                "ticker": ticker,
                "mode": "paper",
                "grid_type": "geometric",
                "lower_price": lower,
                "upper_price": upper,
                "price_change_percent": percent,
                "grid_count": plan.grid_count,
                "order_amount": D(20),
                "investment_amount": plan.investment_amount,
                "stop_at_max": False,
                "status": "running",
                "market_rules": market.to_dict(),
                "config_version": 1,
                "created_at": now,
                "updated_at": now,
                "first_started_at": now,
            }
        )
        for i, price in enumerate(plan.levels):
            levels.append(
                {
                    "id": uuid.uuid4(),
                    "bot_id": bot_id,
                    "level_index": i,
                    "price": price,
                    "type": "buy" if i < len(plan.levels) - 1 else "sell",
                    "status": "available",
                    "updated_at": now,
                }
            )
    engine = create_engine(url, schemas=[SCHEMA])
    async with create_session_factory(engine)() as session, session.begin():
        for start in range(0, len(bots), 2000):
            await session.execute(insert(Bot), bots[start : start + 2000])
        for start in range(0, len(levels), 5000):
            await session.execute(insert(GridLevel), levels[start : start + 5000])
    await engine.dispose()
    return [Bot(**row) for row in bots]


async def send_starts(rabbitmq: str, namespace: str, bots: Iterable[Bot]) -> None:
    """`bot.start` for each bot, as the bots service's outbox relays it (every replica hears it, its owner
    starts the bot)."""
    bus = create_bus(rabbitmq, namespace)
    await bus.start()
    try:
        batch: list[Any] = []
        for bot in bots:
            command_id = uuid.uuid4().hex
            payload = command_payload(bot, "running", command_id)
            batch.append(bus.publish(BOTS_EXCHANGE, BotEvent.START.value, payload, message_id=command_id))
            if len(batch) >= 500:
                await asyncio.gather(*batch)
                batch.clear()
        await asyncio.gather(*batch)
    finally:
        await bus.close()


class PriceCache:
    """Market-data's price cache for the tickers, kept fresh (a bot starts around a price ≤ 10 s old)."""

    def __init__(self, redis: str, namespace: str) -> None:
        self.redis, self.namespace = redis, namespace
        self._task: asyncio.Task[None] | None = None
        self._cache: Cache | None = None

    async def start(self) -> None:
        """Write every ticker's price now, then every 2 s."""
        self._cache = await acquire_cache(self.redis, self.namespace)
        await self._write()
        self._task = asyncio.create_task(self._loop())

    async def _write(self) -> None:
        assert self._cache is not None
        stamp = datetime.now(UTC).isoformat()
        for ticker in TICKERS:
            await self._cache.hset(f"price:binance:{ticker}", {"price": str(BASE_PRICE), "timestamp": stamp})

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(2)
            await self._write()

    async def stop(self) -> None:
        """Stop refreshing; release the cache."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._cache is not None:
            await release_cache(self._cache)


# --- ticks ----------------------------------------------------------------------------------------------


class Market:
    """Per-ticker prices and tick sequences (one publisher epoch)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.epoch = uuid.uuid4().hex[:12]
        self.seq = dict.fromkeys(TICKERS, 0)
        self.price = dict.fromkeys(TICKERS, BASE_PRICE)

    def tick(self, ticker: str, move: float) -> PriceTick:
        """The next tick of a ticker, the price moved by `move` (a fraction, e.g. 0.001 = 0.1 %)."""
        before = self.price[ticker]
        after = (before * D(1 + move)).quantize(D("0.01"))
        # Keep every ticker inside the band the grids cover.
        after = min(max(after, BASE_PRICE * D("0.9")), BASE_PRICE * D("1.1"))
        self.price[ticker] = after
        self.seq[ticker] += 1
        now = datetime.now(UTC)
        return PriceTick(
            exchange=Exchange.BINANCE,
            ticker=ticker,
            last=after,
            high=max(before, after),
            low=min(before, after),
            seq=self.seq[ticker],
            epoch=self.epoch,
            trades=1,
            first_trade_at=now,
            last_trade_at=now,
            published_at=now,
        )


@dataclass
class Published:
    """What a tick publisher did: ticks sent, when it published (wall clock), and its CPU seconds."""

    sent: int
    started: float
    ended: float
    cpu_s: float  # the whole process, its start included
    cpu_publishing_s: float

    @property
    def per_s(self) -> float:
        """Ticks per second while it published."""
        return self.sent / max(1e-9, self.ended - self.started)


async def _publish(
    url: str,
    namespace: str,
    market: Market,
    rate: float,
    seconds: float,
    move: float,
    stop: Any,
    prebuilt: bool,
) -> Published:
    """Ticks round-robin over the tickers at `rate`/s as market-data's envelopes (non-persistent), on a
    channel without publisher confirms: the publisher shares the engines' two cores and should cost little.
    `prebuilt`: every tick is built before the clock starts (their publication times are then stale, which
    only the latency figures would read)."""
    connection = await aio_pika.connect(url)
    sent = 0
    try:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.declare_exchange(
            f"{namespace}.{MARKET_EXCHANGE}", aio_pika.ExchangeType.TOPIC, durable=True
        )

        def message(n: int) -> tuple[aio_pika.Message, str]:
            tick = market.tick(TICKERS[n % len(TICKERS)], market.rng.gauss(0, move))
            envelope = make_envelope(tick.routing_key, tick, None, None)
            body = aio_pika.Message(
                envelope.to_json(),
                content_type="application/json",
                message_id=envelope.message_id,
                type=envelope.type,
                timestamp=envelope.occurred_at,
                delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
            )
            return body, tick.routing_key

        ready = [message(n) for n in range(int(rate * seconds))] if prebuilt else []
        cpu = time.process_time()
        started = time.time()
        while not stop.is_set() and (elapsed := time.time() - started) < seconds:
            due = min(2000, int(rate * elapsed) - sent)
            if due <= 0:
                await asyncio.sleep(0.002)
                continue
            batch = []
            for _ in range(due):
                body, key = ready[sent] if sent < len(ready) else message(sent)
                batch.append(exchange.publish(body, key))
                sent += 1
            await asyncio.gather(*batch)
        ended = time.time()
    finally:
        await connection.close()
    return Published(sent, started, ended, time.process_time(), time.process_time() - cpu)


def _publisher(url: str, namespace: str, market: Market, rate: float, seconds: float, move: float, stop: Any, prebuilt: bool, out: Any) -> None:  # fmt: skip
    published = asyncio.run(_publish(url, namespace, market, rate, seconds, move, stop, prebuilt))
    out.put((published, market.seq, market.price, market.rng.getstate()))


class TickStream:
    """Ticks from another process at `rate`/s for `seconds` (or until `stop()`): the publisher's CPU is its
    own; the market's state (sequences, prices, random state) comes back when it ends."""

    def __init__(self, rabbitmq: str, namespace: str, market: Market) -> None:
        self.rabbitmq, self.namespace, self.market = rabbitmq, namespace, market
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._out = self._context.Queue()
        self.process: Any = None

    def start(self, rate: float, move: float, seconds: float = 3600.0, *, prebuilt: bool = False) -> None:
        """Start publishing."""
        self._stop.clear()
        args = (
            self.rabbitmq,
            self.namespace,
            self.market,
            rate,
            seconds,
            move,
            self._stop,
            prebuilt,
            self._out,
        )
        self.process = self._context.Process(target=_publisher, args=args, daemon=True)
        self.process.start()

    async def wait(self) -> Published:
        """Until the publisher ends by itself."""
        published, self.market.seq, self.market.price, state = await asyncio.to_thread(self._out.get)
        self.market.rng.setstate(state)
        await asyncio.to_thread(self.process.join)
        assert isinstance(published, Published)
        return published

    async def stop(self) -> Published:
        """Stop publishing."""
        self._stop.set()
        return await self.wait()
