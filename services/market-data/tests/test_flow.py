"""Simulator -> market-data -> RabbitMQ `market` + Redis, over real WebSockets, RabbitMQ and Redis."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from common.bus import Bus
from common.contracts.bots import BOTS_EXCHANGE, BotEvent, BotLifecycle, BotStatus
from common.contracts.market import PriceTick
from common.exchanges.ids import Exchange
from common.testing.wait import eventually
from market_data.main import Runtime
from market_data.settings import Settings
from market_data.testing import PriceMover, TickSink, wait_for_topics

BTC_TOPICS = (
    "binance:btcusdt@trade",
    "binance:btcusdt@miniTicker",
    "upbit:trade:KRW-BTC",
    "upbit:ticker:KRW-BTC",
)


async def _stream_btc(client: httpx.AsyncClient, sim_http: httpx.AsyncClient) -> None:
    """Ask for both BTC prices (which gets them streamed) and wait for the subscriptions."""
    for path in ("/api/exchange/price/binance/BTCUSDT", "/api/exchange/price/upbit/KRW-BTC"):
        response = await client.get(path)
        assert response.status_code == 200, response.text
    await wait_for_topics(sim_http, *BTC_TOPICS)


def _after(ticks: list[PriceTick], since: float) -> list[PriceTick]:
    return [t for t in ticks if t.last_trade_at.timestamp() >= since - 0.001]


@pytest.mark.parametrize(("exchange", "ticker", "prices"), [
    ("binance", "BTCUSDT", ["100000.01", "100500", "99500.5"]),
    ("upbit", "KRW-BTC", ["140000000", "141000000", "139000000"]),
])  # fmt: skip
async def test_ticks_carry_last_high_low_and_seq(
    exchange: str,
    ticker: str,
    prices: list[str],
    client: httpx.AsyncClient,
    sim_http: httpx.AsyncClient,
    ticks: TickSink,
    set_price: PriceMover,
) -> None:
    await _stream_btc(client, sim_http)
    started = time.time()
    for price in prices:
        await set_price(exchange, ticker, price)
    await ticks.wait_for(lambda t: t.ticker == ticker and t.last == Decimal(prices[-1]))
    mine = _after(ticks.of(exchange, ticker), started)
    assert max(t.high for t in mine) == max(Decimal(p) for p in prices)
    assert min(t.low for t in mine) == min(Decimal(p) for p in prices)
    assert sum(t.trades for t in mine) == len(prices)
    every = ticks.of(exchange, ticker)
    assert [t.seq for t in every] == list(range(every[0].seq, every[0].seq + len(every)))
    assert len({t.epoch for t in every}) == 1
    assert all(t.low <= t.last <= t.high for t in every)


async def test_a_new_price_is_served_within_a_second(
    client: httpx.AsyncClient, sim_http: httpx.AsyncClient, set_price: PriceMover
) -> None:
    await _stream_btc(client, sim_http)
    for exchange, ticker, price in (("binance", "BTCUSDT", 101234.56), ("upbit", "KRW-BTC", 142000000)):
        await set_price(exchange, ticker, str(price))
        started = time.monotonic()

        async def served(path: str = f"/api/exchange/price/{exchange}/{ticker}", want: float = price) -> bool:
            body = (await client.get(path)).json()
            return bool(body["data"]["currentPrice"] == want)

        await eventually(served, timeout=1.0, interval=0.02)
        assert time.monotonic() - started < 1.0
    body = (await client.get("/api/exchange/price/upbit/KRW-BTC")).json()["data"]
    assert set(body) == {"ticker", "currentPrice", "change24h", "volume24h", "timestamp"}
    assert isinstance(body["change24h"], float) and body["volume24h"] > 0 and body["timestamp"].endswith("Z")


async def test_a_burst_is_conflated_to_one_tick_per_interval(
    client: httpx.AsyncClient,
    sim_http: httpx.AsyncClient,
    ticks: TickSink,
    set_price: PriceMover,
    settings: Settings,
) -> None:
    await _stream_btc(client, sim_http)
    started = time.time()
    prices = [str(95000 + (i * 7919) % 2000) for i in range(40)]
    for price in prices:
        await set_price("binance", "BTCUSDT", price)
    await set_price("binance", "BTCUSDT", "96000")
    await ticks.wait_for(
        lambda t: t.ticker == "BTCUSDT" and t.last == 96000 and t.last_trade_at.timestamp() >= started
    )
    mine = _after(ticks.of("binance", "BTCUSDT"), started)
    assert sum(t.trades for t in mine) == len(prices) + 1
    assert len(mine) < len(prices) / 2  # folded, not forwarded one by one
    interval = settings.price_tick_ms / 1000
    gaps = [b.published_at.timestamp() - a.published_at.timestamp() for a, b in itertools.pairwise(mine)]
    assert all(gap >= interval * 0.9 for gap in gaps), gaps
    assert max(t.high for t in mine) == max(Decimal(p) for p in prices)
    assert min(t.low for t in mine) == min(Decimal(p) for p in prices)


def _priced(ticker: str, price: Decimal) -> Callable[[PriceTick], bool]:
    return lambda t: t.ticker == ticker and t.last == price


def _reached(ticker: str, peak: Decimal, since: float) -> Callable[[PriceTick], bool]:
    return lambda t: t.ticker == ticker and t.high >= peak and t.last_trade_at.timestamp() >= since


@pytest.mark.settings(stream_backoff_initial_seconds=2.0)  # reconnecting takes 1-2 s: time to move prices
async def test_dropped_streams_resume_and_the_gap_is_backfilled(
    client: httpx.AsyncClient,
    sim_http: httpx.AsyncClient,
    ticks: TickSink,
    set_price: PriceMover,
    runtime: Runtime,
) -> None:
    await _stream_btc(client, sim_http)
    levels = {
        ("binance", "BTCUSDT"): (Decimal(100000), Decimal(101000)),
        ("upbit", "KRW-BTC"): (Decimal(140000000), Decimal(141000000)),
    }
    for (exchange, ticker), (base, _) in levels.items():
        await set_price(exchange, ticker, str(base))
        await ticks.wait_for(_priced(ticker, base))
    dropped = (await sim_http.post("/_sim/faults", json={"kind": "drop_websockets"})).json()["dropped"]
    assert dropped >= 2
    await wait_for_topics(sim_http, *BTC_TOPICS, present=False)
    crossed_at = time.time()
    # While nobody listens: up through the level and back.
    for (exchange, ticker), (base, peak) in levels.items():
        await set_price(exchange, ticker, str(peak))
        await set_price(exchange, ticker, str(base))
    topics = (await sim_http.get("/_sim/health")).json()["websocketTopics"]
    assert not set(BTC_TOPICS) & set(topics), "reconnected before the prices moved; the test proves nothing"
    for (_, ticker), (base, peak) in levels.items():
        tick = await ticks.wait_for(_reached(ticker, peak, crossed_at), within=10)
        assert tick.last == base and tick.low <= base
    assert all(stream.state.reconnects >= 1 for stream in runtime.streams.values())
    assert runtime.backfiller.completed >= 2 and runtime.backfiller.folded >= 4
    # And the live streams carry on by themselves.
    await set_price("binance", "BTCUSDT", "100123")
    await set_price("upbit", "KRW-BTC", "140123000")
    await ticks.wait_for(lambda t: t.ticker == "BTCUSDT" and t.last == Decimal("100123"))
    await ticks.wait_for(lambda t: t.ticker == "KRW-BTC" and t.last == Decimal("140123000"))


async def _publish_bot(bus: Bus, event: BotEvent, bot_id: str, ticker: str, status: BotStatus) -> None:
    message = BotLifecycle(
        bot_id=bot_id, user_id="u-1", exchange=Exchange.BINANCE, ticker=ticker, status=status
    )
    await bus.publish(BOTS_EXCHANGE, event.value, message)


async def test_bot_lifecycle_changes_the_streamed_tickers(
    consumer_bus: Bus, sim_http: httpx.AsyncClient, runtime: Runtime, ticks: TickSink, set_price: PriceMover
) -> None:
    eth = ("binance:ethusdt@trade", "binance:ethusdt@miniTicker")
    sol = ("binance:solusdt@trade",)
    await _publish_bot(consumer_bus, BotEvent.START, "bot-1", "ETHUSDT", BotStatus.RUNNING)
    await _publish_bot(consumer_bus, BotEvent.START, "bot-2", "ETHUSDT", BotStatus.RUNNING)
    await _publish_bot(consumer_bus, BotEvent.START, "bot-3", "SOLUSDT", BotStatus.RUNNING)
    await wait_for_topics(sim_http, *eth, *sol)
    await set_price("binance", "ETHUSDT", "3999.99")
    await ticks.wait_for(lambda t: t.ticker == "ETHUSDT" and t.last == Decimal("3999.99"))
    # One of two bots stops: the ticker stays; the other is deleted: it goes.
    await _publish_bot(consumer_bus, BotEvent.STOP, "bot-1", "ETHUSDT", BotStatus.STOPPED)
    await _publish_bot(consumer_bus, BotEvent.UPDATED, "bot-3", "SOLUSDT", BotStatus.ERROR)
    await wait_for_topics(sim_http, *sol, present=False)
    assert set(eth) <= set((await sim_http.get("/_sim/health")).json()["websocketTopics"])
    await _publish_bot(consumer_bus, BotEvent.DELETED, "bot-2", "ETHUSDT", BotStatus.STOPPED)
    await wait_for_topics(sim_http, *eth, present=False)
    assert runtime.streams[Exchange.BINANCE].wanted == frozenset()


@pytest.mark.settings(binance_ws_url="ws://127.0.0.1:9/binance", stream_backoff_initial_seconds=0.1)
async def test_ready_names_a_stream_that_cannot_connect(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/ready")).status_code == 200  # nothing to stream yet: idle is fine
    assert (await client.get("/api/exchange/price/binance/BTCUSDT")).status_code == 200  # REST still answers

    async def reported() -> bool:
        response = await client.get("/health/ready")
        body = response.json()
        return (
            response.status_code == 503 and body["error"]["details"]["streams"]["binance"]["reconnects"] >= 1
        )

    await eventually(reported, timeout=5)
    details = (await client.get("/health/ready")).json()["error"]["details"]
    assert details["down"] == ["stream:binance"]
    assert details["checks"]["stream:binance"] in ("connecting", "reconnecting")
    assert details["checks"]["cache"] == details["checks"]["bus"] == "ok"
    assert details["streams"]["binance"]["lastError"]


@pytest.mark.settings(display_tick_ms=2000)
async def test_the_display_stream_folds_the_ticks_to_one_per_display_interval(
    client: httpx.AsyncClient,
    sim_http: httpx.AsyncClient,
    ticks: TickSink,
    display_ticks: TickSink,
    set_price: PriceMover,
) -> None:
    await _stream_btc(client, sim_http)
    started = time.time()
    prices: list[str] = []
    for group in range(5):
        # Each group reaches the full stream before the next starts: several full ticks within one display one.
        batch = [str(95000 + (group * 8 + i) * 7919 % 2000) for i in range(8)] + [str(96000 + group)]
        for price in batch:
            await set_price("binance", "BTCUSDT", price)
        prices += batch
        await ticks.wait_for(lambda t, p=Decimal(batch[-1]): t.ticker == "BTCUSDT" and t.last == p)
    await display_ticks.wait_for(
        lambda t: t.ticker == "BTCUSDT" and t.last == 96004 and t.last_trade_at.timestamp() >= started
    )
    shown = _after(display_ticks.of("binance", "BTCUSDT"), started)
    full = _after(ticks.of("binance", "BTCUSDT"), started)
    # Every trade of the full stream is in the display stream, in fewer ticks, spaced by the interval.
    assert sum(t.trades for t in shown) == len(prices) == sum(t.trades for t in full)
    assert len(full) >= 5 and len(shown) < len(full)
    assert max(t.high for t in shown) == max(Decimal(p) for p in prices)
    assert min(t.low for t in shown) == min(Decimal(p) for p in prices)
    gaps = [b.published_at.timestamp() - a.published_at.timestamp() for a, b in itertools.pairwise(shown)]
    assert all(gap >= 2.0 * 0.9 for gap in gaps), gaps
    every = display_ticks.of("binance", "BTCUSDT")
    assert [t.seq for t in every] == list(range(every[0].seq, every[0].seq + len(every)))
