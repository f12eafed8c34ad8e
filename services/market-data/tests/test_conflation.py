"""Conflation: leading edge, one tick per interval per ticker, every trade folded, nothing lost on failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from common.contracts.market import PriceTick
from common.exchanges.ids import Exchange
from common.testing.wait import eventually
from market_data.conflate import Conflator, decimal_text, plain

D = Decimal
INTERVAL_MS = 50
MINUTE = 60_000


class Recorder:
    """A publisher that records ticks with their arrival time, and can be told to fail."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, PriceTick]] = []
        self.fail_next = 0

    async def publish(self, tick: PriceTick) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker down")
        self.ticks.append((time.monotonic(), tick))

    async def count(self, n: int) -> list[PriceTick]:
        await eventually(lambda: len(self.ticks) >= n, timeout=2)
        return [tick for _, tick in self.ticks]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def conflator(recorder: Recorder) -> AsyncIterator[Conflator]:
    conflator = Conflator(INTERVAL_MS, recorder.publish, "epoch-1")
    task = asyncio.create_task(conflator.run())
    yield conflator
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def trade(
    conflator: Conflator, trade_id: int, price: str, ts: int, qty: str = "0.5", ticker: str = "BTCUSDT"
) -> None:
    book = conflator.book(Exchange.BINANCE, ticker)
    conflator.add_trade(book, trade_id, float(price), price, qty, ts)


async def test_the_first_trade_is_published_at_once(conflator: Conflator, recorder: Recorder) -> None:
    started = time.monotonic()
    trade(conflator, 1, "100.50", 1_000)
    [tick] = await recorder.count(1)
    assert recorder.ticks[0][0] - started < INTERVAL_MS / 1000 / 2
    assert (tick.last, tick.high, tick.low, tick.seq, tick.trades) == (
        D("100.5"),
        D("100.5"),
        D("100.5"),
        1,
        1,
    )
    assert tick.epoch == "epoch-1" and tick.routing_key == "price.binance.BTCUSDT"


async def test_a_burst_is_folded_into_one_tick_per_interval(conflator: Conflator, recorder: Recorder) -> None:
    trade(conflator, 1, "100", 1_000)
    await recorder.count(1)
    prices = [f"{100 + (i % 37) - 18}.{i % 10}" for i in range(999)]
    for i, price in enumerate(prices, start=2):
        trade(conflator, i, price, 1_000 + i)
    ticks = await recorder.count(2)
    second = ticks[1]
    assert recorder.ticks[1][0] - recorder.ticks[0][0] >= INTERVAL_MS / 1000 * 0.9
    assert second.trades == 999 and second.seq == 2
    assert second.high == max(Decimal(p) for p in prices) and second.low == min(Decimal(p) for p in prices)
    assert second.last == plain(Decimal(prices[-1]))
    assert second.first_trade_at < second.last_trade_at
    trade(conflator, 5000, "99", 9_000)
    ticks = await recorder.count(3)
    assert len(ticks) == 3 and ticks[2].seq == 3
    assert recorder.ticks[2][0] - recorder.ticks[1][0] >= INTERVAL_MS / 1000 * 0.9


async def test_tickers_are_conflated_independently(conflator: Conflator, recorder: Recorder) -> None:
    trade(conflator, 1, "100", 1_000, ticker="BTCUSDT")
    trade(conflator, 1, "5", 1_000, ticker="XRPUSDT")
    ticks = await recorder.count(2)
    assert sorted(t.ticker for t in ticks) == ["BTCUSDT", "XRPUSDT"]
    assert all(t.seq == 1 for t in ticks)


async def test_duplicates_and_late_trades(conflator: Conflator, recorder: Recorder) -> None:
    trade(conflator, 10, "100", 10_000)
    await recorder.count(1)
    trade(conflator, 10, "100", 10_000)  # the same trade again (reconnection overlap)
    trade(conflator, 11, "101", 11_000)
    trade(conflator, 9, "90", 9_000)  # a late (backfilled) older trade
    ticks = await recorder.count(2)
    assert conflator.duplicates == 1
    assert (ticks[1].trades, ticks[1].last, ticks[1].high, ticks[1].low) == (2, D(101), D(101), D(90))


async def test_a_tick_the_broker_refused_is_folded_into_the_next(
    conflator: Conflator, recorder: Recorder
) -> None:
    recorder.fail_next = 1
    trade(conflator, 1, "100", 1_000)
    trade(conflator, 2, "120", 1_001)
    await eventually(lambda: conflator.publish_failures == 1, timeout=2)
    trade(conflator, 3, "110", 1_002)
    [tick] = await recorder.count(1)
    # seq 1 was lost: the consumer sees the gap, and seq 2 still carries every trade.
    assert (tick.seq, tick.trades, tick.high, tick.low, tick.last) == (2, 3, D(120), D(100), D(110))


async def test_extremes_of_an_unreplayable_gap_are_folded(conflator: Conflator, recorder: Recorder) -> None:
    trade(conflator, 1, "100", 1_000)
    await recorder.count(1)
    book = conflator.book(Exchange.BINANCE, "BTCUSDT")
    conflator.fold_extremes(book, "130", "80", 1_000, 61_000)
    ticks = await recorder.count(2)
    assert (ticks[1].high, ticks[1].low, ticks[1].last, ticks[1].trades) == (D(130), D(80), D(100), 0)


async def test_trades_build_minute_candles(conflator: Conflator) -> None:
    for i, (price, qty) in enumerate([("100", "0.1"), ("105", "0.2"), ("95", "0.3"), ("101", "0.4")]):
        trade(conflator, i, price, 5 * MINUTE + i * 1000, qty)
    trade(conflator, 99, "102", 6 * MINUTE + 5, "1")
    book = conflator.book(Exchange.BINANCE, "BTCUSDT")
    [closed] = book.closed_candles
    assert closed.row() == (5 * MINUTE, "100", "105", "95", "101", "1.0")
    assert book.candle is not None and book.candle.row() == (6 * MINUTE, "102", "102", "102", "102", "1")


def test_plain_decimals() -> None:
    assert str(plain(Decimal("96466.11000000"))) == "96466.11"
    assert str(plain(Decimal("1E+2"))) == "100"
    assert str(plain(Decimal("140000000.0"))) == "140000000"
    assert str(plain(Decimal("0.00001000"))) == "0.00001"
    assert decimal_text(Decimal("0.00000010")) == "0.0000001"
    tick = PriceTick.model_validate(
        {
            "exchange": "upbit",
            "ticker": "KRW-X",
            "last": "1E-7",
            "high": "0.0000001",
            "low": "1E-7",
            "seq": 1,
            "epoch": "e",
            "trades": 1,
            "first_trade_at": "2025-01-01T00:00:00Z",
            "last_trade_at": "2025-01-01T00:00:00Z",
            "published_at": "2025-01-01T00:00:00Z",
        }
    )
    assert tick.model_dump(mode="json")["last"] == "0.0000001"
